"""Audit rows: written by every change (in the caller's transaction) and every
read of a value (committed apart from it: tests/test_read_records.py), never
holding a value, append-only for everyone."""
from __future__ import annotations

import psycopg
import pytest

from helpers import get, raises_sqlstate, rows, save

VALUE = "audit-canary-value-91b2"


def test_every_change_and_read_is_audited_without_values(db):
    with psycopg.connect(db.cluster.dsn(db.name, user="alice", host="127.0.0.1", application_name="billing-svc"),
                         autocommit=True) as a:
        sid = save(a, "acme", "k", VALUE)["id"]
        get(a, "acme", "k")
        a.execute("SELECT hush.update_secret('acme', 'k', description => 'd')")
        a.execute("SELECT hush.update_secret('acme', 'k', %s)", [VALUE + "2"])
        a.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['k'])")
        a.execute("SELECT hush.delete_secret('acme', 'k')")
        a.execute("SELECT hush.restore_secret('acme', 'k')")
        a.execute("SELECT hush.destroy_secret('acme', 'k', ARRAY[1])")
        # Metadata calls are not value reads: no audit rows.
        a.execute("SELECT * FROM hush.list_secrets('acme')")
        a.execute("SELECT hush.secret_exists('acme', 'k')")
        txids = {a.execute("SELECT txid_current()").fetchone()[0]}
    with db.connect("audrey") as aud:
        log = rows(aud, "SELECT * FROM hush.audit_log WHERE tenant_id = 'acme' AND db_role = 'alice' ORDER BY id")
    assert [(r["action"], r["version"]) for r in log] == [
        ("create", 1), ("read", 1), ("update_metadata", 1), ("new_version", 2), ("read", 2),
        ("delete", 2), ("restore", 2), ("destroy", 1)]
    for r in log:
        assert r["secret_id"] == sid and r["secret_name"] == "k" and r["outcome"] == "ok"
        assert r["session_role"] == "alice" and r["application_name"] == "billing-svc"
        assert str(r["client_addr"]) == "127.0.0.1"
        assert r["txid"] > 0 and r["txid"] not in txids
        assert VALUE not in repr(r)
    assert len({r["txid"] for r in log}) == len(log)  # one transaction per autocommit call


def test_rollback_takes_the_secret_and_its_audit_row_but_not_the_read(db):
    (since,) = db.sql("SELECT COALESCE(max(id), 0) FROM hush.audit_log")[0]
    with db.connect("alice", autocommit=False) as a:
        save(a, "acme", "k", "v")
        get(a, "acme", "k")
        a.rollback()
        assert a.execute("SELECT hush.secret_exists('acme', 'k')").fetchone() == (False,)
    # The write never happened; the value left all the same, and its record says the reader aborted.
    assert db.sql("SELECT action, version, hush.caller_xact(detail) FROM hush.audit_log WHERE id > %s", [since]) == \
        [("read", 1, "aborted")]
    with db.connect("alice", autocommit=False) as a:
        save(a, "acme", "k", "v")
        a.commit()
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'create'") == [(1,)]


@pytest.mark.parametrize("user", ["postgres", "audrey", "adam"])
def test_audit_log_is_append_only_even_for_the_owner(db, user):
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    with db.connect(user) as conn:
        if user == "postgres":  # the superuser has every privilege: the trigger stops it
            for q in ("UPDATE hush.audit_log SET action = 'x'", "DELETE FROM hush.audit_log",
                      "TRUNCATE hush.audit_log"):
                with raises_sqlstate("SH040"):
                    conn.execute(q)
        else:
            for q in ("UPDATE hush.audit_log SET action = 'x'", "DELETE FROM hush.audit_log",
                      "TRUNCATE hush.audit_log"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(q)
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'create'") == [(1,)]


def test_auditors_and_admins_see_every_tenant(db):
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    with db.connect("bob") as b:
        save(b, "globex", "k", "v")
    for role in ("audrey", "adam"):
        with db.connect(role) as conn:
            tenants = {t for (t,) in conn.execute("SELECT DISTINCT tenant_id FROM hush.audit_log WHERE action = 'create'")}
            assert tenants == {"acme", "globex"}


def test_read_auditing_switch_and_read_only_transactions(db):
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    reads = "SELECT count(*) FROM hush.audit_log WHERE action = 'read'"
    # Read auditing on (the default): a read in a READ ONLY transaction is served and recorded.
    with db.connect("alice", autocommit=False) as a:
        a.execute("SET TRANSACTION READ ONLY")
        assert get(a, "acme", "k")["value"] == "v"
        assert a.execute("SELECT value FROM hush.get_secrets('acme', ARRAY['k'])").fetchone() == ("v",)
        assert a.execute("SELECT count(*) FROM hush.list_secrets('acme')").fetchone() == (1,)  # no value read
        with raises_sqlstate("SH021"):  # a write is refused there, with hush's code
            save(a, "acme", "k2", "v")
        a.rollback()
    assert db.sql(reads) == [(2,)]
    with db.connect("adam") as adm:
        row = rows(adm, "SELECT * FROM hush.configure_tenant('acme', audit_reads => false)")[0]
        assert row["audit_reads"] is False and row["max_value_bytes"] == 65536
    before = db.sql(reads)
    with db.connect("alice", autocommit=False) as a:
        a.execute("SET TRANSACTION READ ONLY")
        assert get(a, "acme", "k")["value"] == "v"
        a.commit()
    with db.connect("alice") as a:
        get(a, "acme", "k")
    assert db.sql(reads) == before
    # The switch itself is audited, by whom and to what.
    assert db.sql("SELECT db_role, detail->>'audit_reads' FROM hush.audit_log WHERE action = 'configure_tenant'") == \
        [("adam", "false")]
    # Other tenants keep read auditing.
    with db.connect("bob") as b:
        save(b, "globex", "k", "v")
        get(b, "globex", "k")
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'read' AND tenant_id = 'globex'") == [(1,)]


def test_only_admins_configure_tenants(db):
    with db.connect("alice") as a, pytest.raises(psycopg.errors.InsufficientPrivilege):
        a.execute("SELECT hush.configure_tenant('acme', audit_reads => false)")
    with db.connect("adam") as adm, raises_sqlstate("SH004"):
        adm.execute("SELECT hush.configure_tenant('acme', max_value_bytes => 0)")
