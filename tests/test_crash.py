"""Nothing lost: a kill -9 of a backend in the middle of writing leaves every
committed secret readable and every committed audit row in place. A killed
backend restarts the whole cluster, so this test gets a cluster of its own."""
from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest

from hush import devcluster as pgcluster
from helpers import get

ROLE_SETUP = """
CREATE EXTENSION hush CASCADE;
CREATE ROLE crash_app LOGIN IN ROLE hush_writer;
SELECT hush.grant_tenant('crash_app', 'acme');
"""


@pytest.fixture
def own_cluster(cluster):  # `cluster` ensures the extension is installed
    c = pgcluster.Cluster(settings={"fsync": "on"}).start()
    yield c
    c.stop()


def test_kill_9_during_a_bulk_save_loses_nothing_committed(own_cluster):
    c = own_cluster
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        su.execute(ROLE_SETUP)
    with psycopg.connect(c.dsn(user="crash_app"), autocommit=True) as a:
        a.execute("SELECT count(*) FROM hush.save_secrets('acme', %s, %s)",
                  [[f"kept{i}" for i in range(500)], [f"value-{i}" for i in range(500)]])
        a.execute("SELECT hush.save_secret('acme', 'kept0', 'value-0-v2')")
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        audit_before = su.execute("SELECT count(*), max(id) FROM hush.audit_log").fetchone()

    victim = psycopg.connect(c.dsn(user="crash_app"))
    pid = victim.info.backend_pid
    errors: list[Exception] = []

    def write_until_killed() -> None:
        try:
            for n in range(200):  # one open transaction, batch after batch
                victim.execute("SELECT count(*) FROM hush.save_secrets('acme', %s, %s)",
                               [[f"lost{n}-{i}" for i in range(500)], ["x" * 100] * 500])
        except psycopg.Error as e:
            errors.append(e)

    t = threading.Thread(target=write_until_killed)
    t.start()
    time.sleep(1.0)
    os.kill(pid, signal.SIGKILL)
    t.join(60)
    victim.close()
    assert errors, "the writer should have lost its connection"

    for _ in range(100):  # the postmaster restarts every backend and recovers
        try:
            with psycopg.connect(c.dsn(user="crash_app"), autocommit=True) as a:
                assert get(a, "acme", "kept499")["value"] == "value-499"
                assert get(a, "acme", "kept0")["value"] == "value-0-v2"
                assert get(a, "acme", "kept0", 1)["value"] == "value-0"
                got = dict(a.execute("SELECT name, value FROM hush.get_secrets('acme', %s)",
                                     [[f"kept{i}" for i in range(1, 500)]]).fetchall())
                assert got == {f"kept{i}": f"value-{i}" for i in range(1, 500)}
                assert a.execute("SELECT count(*) FROM hush.list_secrets('acme', name_prefix => 'lost')").fetchone() == (0,)
                a.execute("SELECT hush.save_secret('acme', 'after-crash', 'ok')")
            break
        except psycopg.OperationalError:
            time.sleep(0.2)
    else:
        raise AssertionError("the server did not come back")
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        # Every audit row committed before the crash is there.
        assert su.execute("SELECT count(*), max(id) FROM hush.audit_log WHERE id <= %s",
                          [audit_before[1]]).fetchone() == audit_before
        rows = su.execute("SELECT action, count(*) FROM hush.audit_log WHERE secret_name LIKE 'kept%%'"
                          " AND action IN ('create', 'new_version') GROUP BY 1 ORDER BY 1").fetchall()
        assert rows == [("create", 500), ("new_version", 1)]
        assert su.execute("SELECT count(*) FROM hush.audit_log WHERE secret_name LIKE 'lost%%'").fetchone() == (0,)
