"""hush.schedule_maintenance registers the maintenance jobs with pg_cron, and
pg_cron runs them as the hush_admin role that scheduled them, given the grants
the docs name ("Scheduling maintenance"). pg_cron needs shared_preload_libraries, so this test has a
cluster of its own; its schedules are minute-grained, so the wait is up to a
minute."""
from __future__ import annotations

import time
from typing import Iterator

import psycopg
import pytest

from docs_text import blocks, section
from helpers import raises_sqlstate, rows, save
from hush import devcluster as pgcluster

JOBS = {"hush-audit-partitions": "SELECT hush.create_audit_partitions()",
        "hush-audit-seal": "SELECT hush.seal_audit()",
        "hush-audit-retention": "SELECT hush.cleanup_audit_logs(2555)",
        "hush-purge-deleted": "SELECT hush.purge_deleted_secrets()",
        "hush-oauth-cleanup": "SELECT hush.cleanup_oauth(90)",
        "hush-secret-upkeep": "SELECT hush.maintain_secrets(90)"}


@pytest.fixture
def cron_cluster() -> Iterator[pgcluster.Cluster]:
    c = pgcluster.Cluster(settings={"shared_preload_libraries": "'pg_cron'", "cron.database_name": "'postgres'",
                                    "cron.use_background_workers": "on", "max_worker_processes": "16"}).start()
    try:
        yield c
    finally:
        c.stop()


def readme_scheduler_grants() -> list[str]:
    """The docs' statements that let a login role with hush_admin schedule with pg_cron."""
    [block] = blocks(section("Scheduling maintenance"), "sql")
    sql = "\n".join(line for line in block.splitlines() if not line.startswith("--"))
    return [s.strip() for s in sql.split(";") if s.strip()]


def test_jobs_are_registered_and_each_runs(cron_cluster):
    with psycopg.connect(cron_cluster.dsn(), autocommit=True) as su:
        su.execute("CREATE EXTENSION pg_cron")
        su.execute("CREATE EXTENSION hush CASCADE")
        # This month's partition first; the partitions job then adds the next months'.
        su.execute("SELECT hush.create_audit_partitions(0)")
        partitions = "SELECT count(*) FROM hush.maintenance_log WHERE task = 'create_audit_partition'"
        assert su.execute(partitions).fetchone() == (1,)
        save(su, "acme", "k", "v")
        jobs = rows(su, "SELECT * FROM hush.schedule_maintenance()")
        assert {j["jobname"]: j["command"] for j in jobs} == JOBS
        assert {j["jobname"]: j["schedule"] for j in jobs}["hush-audit-seal"] == "* * * * *"
        assert {j["jobname"]: j["schedule"] for j in jobs}["hush-secret-upkeep"] == "47 * * * *"  # hourly
        # Calling it again updates the jobs in place.
        again = rows(su, "SELECT * FROM hush.schedule_maintenance(3650)")
        assert {j["jobid"] for j in again} == {j["jobid"] for j in jobs}
        registered = rows(su, "SELECT jobid, jobname, command, database, active FROM cron.job ORDER BY jobid")
        assert [(r["jobname"], r["database"], r["active"]) for r in registered] == [
            (name, "postgres", True) for name in JOBS]
        assert registered[2]["command"] == "SELECT hush.cleanup_audit_logs(3650)"
        assert rows(su, "SELECT * FROM hush.schedule_maintenance(3650, 30)")[4]["command"] == \
            "SELECT hush.cleanup_oauth(30)"
        assert rows(su, "SELECT * FROM hush.schedule_maintenance(3650, 30, 7)")[5]["command"] == \
            "SELECT hush.maintain_secrets(7)"
        su.execute("SELECT cron.unschedule(jobid) FROM cron.job")

        # The jobs that run are scheduled by a login role with hush_admin, as the docs
        # set it up; without their grants pg_cron refuses it.
        create_role, *grants = readme_scheduler_grants()
        assert create_role.startswith("CREATE ROLE hush_maint ") and len(grants) == 2
        su.execute(create_role)
        with psycopg.connect(cron_cluster.dsn(user="hush_maint"), autocommit=True) as adm, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            adm.execute("SELECT * FROM hush.schedule_maintenance(3650)")
        for grant in grants:
            su.execute(grant)
        with psycopg.connect(cron_cluster.dsn(user="hush_maint"), autocommit=True) as adm:
            assert {j["jobname"] for j in rows(adm, "SELECT * FROM hush.schedule_maintenance(3650)")} == set(JOBS)
        registered = rows(su, "SELECT jobid, username FROM cron.job")
        assert {r["username"] for r in registered} == {"hush_maint"} and len(registered) == len(JOBS)
        # A superuser's call takes them over rather than adding a second set; then back to hush_maint.
        su.execute("SELECT * FROM hush.schedule_maintenance(3650)")
        assert su.execute("SELECT username, count(*) FROM cron.job GROUP BY 1").fetchall() == [
            ("postgres", len(JOBS))]
        su.execute("SELECT cron.unschedule(jobid) FROM cron.job")
        with psycopg.connect(cron_cluster.dsn(user="hush_maint"), autocommit=True) as adm:
            adm.execute("SELECT * FROM hush.schedule_maintenance(3650)")
        registered = rows(su, "SELECT jobid, username FROM cron.job")
        assert {r["username"] for r in registered} == {"hush_maint"} and len(registered) == len(JOBS)

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
        runs = rows(su, "SELECT j.jobname, r.start_time, r.end_time, r.return_message "
                        "FROM cron.job_run_details r JOIN cron.job j USING (jobid) ORDER BY r.start_time")
        assert su.execute("SELECT count(*) > 0 FROM hush.audit_seals").fetchone() == (True,), runs
        assert su.execute(partitions).fetchone()[0] >= 4  # the next three months' too, by the job
        assert su.execute("SELECT count(*) > 0 FROM hush.maintenance_log WHERE task = 'cleanup_oauth'").fetchone() \
            == (True,), runs
        assert su.execute("SELECT count(*) > 0 FROM hush.maintenance_log WHERE task = 'maintain_secrets'").fetchone() \
            == (True,), runs


def test_without_pg_cron_it_says_what_to_run(db):
    with db.connect("adam") as adm:
        with raises_sqlstate("SH060") as ei:
            adm.execute("SELECT * FROM hush.schedule_maintenance()")
        hint = ei.value.diag.message_hint
        for call in ("hush.seal_audit()", "hush.create_audit_partitions()", "hush.cleanup_audit_logs(2555)",
                     "hush.purge_deleted_secrets()", "hush.cleanup_oauth(90)", "hush.maintain_secrets(90)"):
            assert call in hint
        with raises_sqlstate("SH004"):
            adm.execute("SELECT * FROM hush.schedule_maintenance(2555, 0)")
        for days in (0, 36501, None):
            with raises_sqlstate("SH004"):
                adm.execute("SELECT * FROM hush.schedule_maintenance(2555, 90, %s)", [days])
    with db.connect("alice") as a, pytest.raises(psycopg.errors.InsufficientPrivilege):
        a.execute("SELECT hush.schedule_maintenance()")
