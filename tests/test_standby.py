"""On a standby every transaction is read-only: audited reads fail closed
(SH021) instead of reading without an audit row; unaudited tenants and
metadata calls still work there."""
from __future__ import annotations

import time

import psycopg
import pytest

from helpers import get, raises_sqlstate, save


@pytest.fixture
def standby(cluster):
    sb = cluster.start_standby()
    yield sb
    sb.stop()


def _caught_up(primary_db, sb, dbname: str) -> None:
    (lsn,) = primary_db.sql("SELECT pg_current_wal_lsn()::text")[0]
    for _ in range(200):
        try:
            with psycopg.connect(sb.dsn(dbname), autocommit=True) as c:
                if c.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0]:
                    return
        except psycopg.OperationalError:
            pass  # database not replayed yet
        time.sleep(0.1)
    raise AssertionError("standby did not catch up")


def test_standby_reads_fail_closed_while_audited(db, standby):
    with db.connect("alice") as a:
        save(a, "acme", "k", "acme-value")
    with db.connect("bob") as b:
        save(b, "globex", "k", "globex-value")
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.configure_tenant('globex', audit_reads => false)")
    _caught_up(db, standby, db.name)
    with psycopg.connect(standby.dsn(db.name, user="alice"), autocommit=True) as a:
        assert a.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with raises_sqlstate("SH021"):
            get(a, "acme", "k")
        assert a.execute("SELECT name FROM hush.list_secrets('acme')").fetchall() == [("k",)]
        with raises_sqlstate("SH020"):
            get(a, "globex", "k")
    with psycopg.connect(standby.dsn(db.name, user="bob"), autocommit=True) as b:
        assert get(b, "globex", "k")["value"] == "globex-value"
