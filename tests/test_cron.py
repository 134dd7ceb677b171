"""hush.schedule_maintenance registers the maintenance jobs with pg_cron, and
pg_cron runs them. pg_cron needs shared_preload_libraries, so this test has a
cluster of its own; its schedules are minute-grained, so the wait is up to a
minute."""
from __future__ import annotations

import time
from typing import Iterator

import psycopg
import pytest

from helpers import raises_sqlstate, rows, save
from hush import devcluster as pgcluster

JOBS = {"hush-audit-partitions": "SELECT hush.create_audit_partitions()",
        "hush-audit-seal": "SELECT hush.seal_audit()",
        "hush-audit-retention": "SELECT hush.cleanup_audit_logs(2555)",
        "hush-purge-deleted": "SELECT hush.purge_deleted_secrets()"}


@pytest.fixture
def cron_cluster() -> Iterator[pgcluster.Cluster]:
    c = pgcluster.Cluster(settings={"shared_preload_libraries": "'pg_cron'", "cron.database_name": "'postgres'",
                                    "cron.use_background_workers": "on", "max_worker_processes": "16"}).start()
    try:
        yield c
    finally:
        c.stop()


def test_jobs_are_registered_and_each_runs(cron_cluster):
    with psycopg.connect(cron_cluster.dsn(), autocommit=True) as su:
        su.execute("CREATE EXTENSION pg_cron")
        su.execute("CREATE EXTENSION hush CASCADE")
        save(su, "acme", "k", "v")
        jobs = rows(su, "SELECT * FROM hush.schedule_maintenance()")
        assert {j["jobname"]: j["command"] for j in jobs} == JOBS
        assert {j["jobname"]: j["schedule"] for j in jobs}["hush-audit-seal"] == "* * * * *"
        # Calling it again updates the jobs in place.
        again = rows(su, "SELECT * FROM hush.schedule_maintenance(3650)")
        assert {j["jobid"] for j in again} == {j["jobid"] for j in jobs}
        registered = rows(su, "SELECT jobid, jobname, command, database, active FROM cron.job ORDER BY jobid")
        assert [(r["jobname"], r["database"], r["active"]) for r in registered] == [
            (name, "postgres", True) for name in JOBS]
        assert registered[2]["command"] == "SELECT hush.cleanup_audit_logs(3650)"
        # The daily jobs would not run in a test's lifetime: make every job run next minute.
        for r in registered:
            su.execute("SELECT cron.alter_job(%s, schedule => '* * * * *')", [r["jobid"]])
        ids = {r["jobid"] for r in registered}
        deadline = time.monotonic() + 75
        done: dict[int, str] = {}
        while time.monotonic() < deadline and len(done) < len(ids):
            time.sleep(1)
            for jobid, status, message in su.execute(
                    "SELECT jobid, status, return_message FROM cron.job_run_details "
                    "WHERE status IN ('succeeded', 'failed')"):
                done[jobid] = f"{status}: {message}"
        assert ids <= done.keys(), f"jobs {sorted(ids - done.keys())} did not run within 75 s"
        assert all(v.startswith("succeeded") for v in done.values()), done
        # And they did their work.
        assert su.execute("SELECT count(*) > 0 FROM hush.audit_seals").fetchone() == (True,)
        assert su.execute("SELECT count(*) FROM hush.maintenance_log WHERE task = 'create_audit_partition'"
                          ).fetchone()[0] >= 4


def test_without_pg_cron_it_says_what_to_run(db):
    with db.connect("adam") as adm:
        with raises_sqlstate("SH060") as ei:
            adm.execute("SELECT * FROM hush.schedule_maintenance()")
        hint = ei.value.diag.message_hint
        for call in ("hush.seal_audit()", "hush.create_audit_partitions()", "hush.cleanup_audit_logs(2555)",
                     "hush.purge_deleted_secrets()"):
            assert call in hint
    with db.connect("alice") as a, pytest.raises(psycopg.errors.InsufficientPrivilege):
        a.execute("SELECT hush.schedule_maintenance()")
