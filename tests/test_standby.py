"""On a standby every transaction is read-only: audited reads are served there,
their records committed on the primary first (primary_conninfo, nothing to
configure); writes fail with SH021. Failures of the primary, restarts and a
failover: tests/test_replicas.py."""
from __future__ import annotations

import psycopg

from helpers import get, raises_sqlstate, save
from replica_helpers import caught_up


def test_audited_standby_reads_are_recorded_on_the_primary(db, standby):
    with db.connect("alice") as a:
        save(a, "acme", "k", "acme-value")
    with db.connect("bob") as b:
        save(b, "globex", "k", "globex-value")
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.configure_tenant('globex', audit_reads => false)")
    caught_up(db.dsn(), standby.dsn(db.name))
    (since,) = db.sql("SELECT max(id) FROM hush.audit_log")[0]
    with psycopg.connect(standby.dsn(db.name, user="alice", application_name="replica-reader"),
                         autocommit=True) as a:
        assert a.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        pid = a.info.backend_pid
        assert get(a, "acme", "k")["value"] == "acme-value"
        assert a.execute("SELECT value FROM hush.get_secrets('acme', ARRAY['k'])").fetchone() == ("acme-value",)
        assert a.execute("SELECT name FROM hush.list_secrets('acme')").fetchall() == [("k",)]
        with raises_sqlstate("SH020"):
            get(a, "globex", "k")
        with raises_sqlstate("SH021"):  # a write on a standby: hush's code, not a raw 25006
            save(a, "acme", "k2", "v")
    # Committed on the primary before the values left, with who and where from the standby's session.
    recs = db.sql("SELECT tenant_id, action, db_role, session_role, application_name, detail->>'standby', "
                  "(detail->>'pid')::int, hush.caller_xact(detail) FROM hush.audit_log WHERE id > %s ORDER BY id",
                  [since])
    assert recs == [("acme", "read", "alice", "alice", "replica-reader", "true", pid, "none")] * 2
    with psycopg.connect(standby.dsn(db.name, user="bob"), autocommit=True) as b:
        assert get(b, "globex", "k")["value"] == "globex-value"  # unaudited tenant: nothing to record
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE id > %s", [since]) == [(2,)]
