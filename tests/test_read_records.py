"""A value leaves hush only after the record of its read is committed, apart from
the caller's transaction: ROLLBACK, ROLLBACK TO a savepoint, a terminated
backend or a vanished client leave the record; READ ONLY transactions read and
are recorded; when the record cannot be written, no value leaves (SH022).

The caller's side runs as non-superuser roles (alice: a writer of acme). The
recorder's settings are changed with ALTER SYSTEM (only the server's
configuration counts) and reset after each test.

The recorder itself (where it connects, as whom, its settings, what it refuses) is
test_read_records_recorder.py's."""
from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest

from helpers import get, last_audit_id, raises_sqlstate, rows, save
from oauth_helpers import fresh_server, login, register, tenant_oauth
from read_record_helpers import VALUE, records, save_value


def test_the_two_rollbacks_of_the_issue_leave_their_records(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "db/password", VALUE)
        save(a, "acme", "stripe_api_key", VALUE + "-2")
    since = last_audit_id(db)
    with db.connect("alice", autocommit=False) as a:
        a.execute("BEGIN")
        assert a.execute("SELECT value FROM hush.get_secret('acme', 'db/password')").fetchone() == (VALUE,)
        a.execute("ROLLBACK")
        a.execute("BEGIN")
        a.execute("SAVEPOINT s")
        assert a.execute("SELECT value FROM hush.get_secrets('acme', ARRAY['stripe_api_key'])").fetchone() == \
            (VALUE + "-2",)
        a.execute("ROLLBACK TO s")
        a.execute("COMMIT")
    recs = records(db, since)
    assert [(r["action"], r["secret_name"], r["db_role"], r["tenant_id"]) for r in recs] == [
        ("read", "db/password", "alice", "acme"), ("read", "stripe_api_key", "alice", "acme")]
    assert all(r["caller_xact"] == "none" for r in recs)  # neither transaction had written anything
    assert all(VALUE not in repr(r) for r in recs)


def test_caller_xact_tells_committed_from_aborted_readers(db: Any) -> None:
    since = save_value(db)
    for end in ("commit", "rollback"):
        with db.connect("alice", autocommit=False) as a:
            save(a, "acme", f"written-before-{end}", "x")  # the reader's transaction has an id now
            txid = a.execute("SELECT txid_current()").fetchone()[0]
            get(a, "acme", "k")
            # The record is there before the reader ends, and says it is still running.
            rec = [r for r in records(db, since) if r["action"] == "read"][-1]
            assert rec["detail"]["caller_txid"] == txid and rec["caller_xact"] == "in progress"
            getattr(a, end)()
    reads = [r for r in records(db, since) if r["action"] == "read"]
    assert [r["caller_xact"] for r in reads] == ["committed", "aborted"]
    with db.connect("alice") as a:  # the application's own view of its tenant's trail shows it too
        mine = rows(a, "SELECT action, caller_xact FROM hush.audit_log('acme', action => 'read')")
    assert [m["caller_xact"] for m in mine] == ["aborted", "committed"]  # newest first


def test_a_terminated_reader_and_a_vanished_client_leave_the_record(db: Any) -> None:
    since = save_value(db)
    a = db.connect("alice", autocommit=False)
    save(a, "acme", "other", "x")
    get(a, "acme", "k")
    with db.connect() as su:
        su.execute("SELECT pg_terminate_backend(%s)", [a.info.backend_pid])
    with pytest.raises(psycopg.OperationalError):
        a.execute("SELECT 1")
    a.close()
    # A client process that dies mid-transaction, value in hand.
    script = ("import os, sys, psycopg; c = psycopg.connect(sys.argv[1]); "
              "c.execute(\"SELECT hush.save_secret('acme', 'other2', 'x')\"); "
              "print(c.execute(\"SELECT value FROM hush.get_secret('acme', 'k')\").fetchone()[0], flush=True); "
              "os._exit(0)")
    out = subprocess.run([sys.executable, "-c", script, db.dsn("alice")], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == VALUE, out.stderr
    recs = [r for r in records(db, since)]
    assert [(r["action"], r["secret_name"]) for r in recs] == [("read", "k"), ("read", "k")]
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE name IN ('other', 'other2')") == [(0,)]
    for _ in range(100):  # the server notices the closed socket and aborts the second reader
        if [r["caller_xact"] for r in records(db, since)] == ["aborted", "aborted"]:
            break
        time.sleep(0.05)
    assert [r["caller_xact"] for r in records(db, since)] == ["aborted", "aborted"]


def test_who_and_where_come_from_the_readers_backend(db: Any) -> None:
    save_value(db)
    db.sql("CREATE ROLE carol LOGIN IN ROLE hush_reader")
    db.sql("SELECT hush.grant_tenant('carol', 'acme')")
    since = last_audit_id(db)
    with psycopg.connect(db.cluster.dsn(db.name, user="alice", host="127.0.0.1", application_name="billing"),
                         autocommit=True) as a:
        db.sql("GRANT carol TO alice")
        a.execute("SET ROLE carol")  # the code runs as carol: the record says so, and who logged in
        get(a, "acme", "k")
        pid = a.info.backend_pid
    (rec,) = records(db, since)
    assert (rec["db_role"], rec["session_role"], rec["application_name"], str(rec["client_addr"])) == \
        ("carol", "alice", "billing", "127.0.0.1")
    assert rec["detail"]["pid"] == pid and rec["detail"]["caller_txid"] is None
    # Written by the recorder's own transaction, never the reader's.
    assert rec["txid"] > 0 and rec["outcome"] == "ok"


def test_read_only_transactions_read_and_record_and_writes_get_hushs_code(db: Any) -> None:
    since = save_value(db)
    with db.connect("alice", autocommit=False) as a:
        a.execute("SET TRANSACTION READ ONLY")
        assert get(a, "acme", "k")["value"] == VALUE
        assert a.execute("SELECT value FROM hush.get_secret_by_id('acme', (SELECT id FROM hush.list_secrets('acme') "
                         "WHERE name = 'k'))").fetchone() == (VALUE,)
        with raises_sqlstate("SH021"):
            a.execute("SELECT hush.delete_secret('acme', 'k')")
    assert [r["action"] for r in records(db, since)] == ["read", "read"]


def test_a_read_this_node_cannot_open_is_refused_before_it_is_recorded(db: Any) -> None:
    save_value(db)
    db.sql("INSERT INTO hush.root_keys (key_id) VALUES (repeat('e', 32))")
    db.sql("ALTER TABLE hush.secret_versions DISABLE TRIGGER USER")
    db.sql("UPDATE hush.secret_versions SET key_id = repeat('e', 32) WHERE tenant_id = 'acme'")
    since = last_audit_id(db)
    with db.connect("alice") as a, raises_sqlstate("SH030"):
        get(a, "acme", "k")
    assert records(db, since) == []


def test_oauth_values_leaving_are_recorded_whatever_the_transaction_does(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        login(oa)
        _url, state, binding = oa.start_authorization("idp")  # pending: its PKCE verifier leaves on consume
    since = last_audit_id(db)
    with db.connect("alice", autocommit=False) as a:
        account = a.execute("SELECT account FROM hush.oauth_connections('acme')").fetchone()[0]
        generation = db.sql("SELECT generation FROM hush.oauth_connections")[0][0]
        assert a.execute("SELECT client_secret FROM hush.oauth_provider('acme', 'idp')").fetchone() == ("app-secret",)
        assert a.execute("SELECT hush.oauth_token('acme', 'idp')").fetchone()[0]
        assert a.execute("SELECT refresh_token FROM hush.oauth_connection_tokens('acme', 'idp')").fetchone()[0]
        lease = a.execute("SELECT outcome, refresh_token FROM hush.oauth_claim_refresh('acme', 'idp', %s, 'me', 60, %s)",
                          [account, generation]).fetchone()
        assert lease[0] == "claimed" and lease[1]
        assert a.execute("SELECT code_verifier FROM hush.oauth_consume(%s, %s)", [state, binding]).fetchone()[0]
        a.rollback()
    got = [(r["action"], r["secret_name"], r["db_role"], r["caller_xact"]) for r in records(db, since)]
    assert got == [("oauth_client_secret_read", "idp", "alice", "none"), ("oauth_token_read", "idp", "alice", "none"),
                   ("oauth_tokens_read", "idp", "alice", "none"), ("oauth_refresh_claim", "idp", "alice", "aborted"),
                   ("oauth_callback", "idp", "alice", "aborted")]
    assert "app-secret" not in repr(records(db, since))


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
def test_switching_auditing_off_and_reading_in_one_transaction_records(db: Any, isolation: str) -> None:
    """A tenant never configured (no row yet) and one already configured: an admin who may
    also read switches auditing off and reads in the same transaction, then rolls back."""
    role = "adam_reads_" + isolation.split()[0].lower()
    db.sql(f"CREATE ROLE {role} LOGIN IN ROLE hush_admin, hush_reader")
    db.sql("SELECT hush.grant_tenant(%s, '*')", [role])
    save_value(db)
    with db.connect("bob") as b:
        save(b, "globex", "k", VALUE)
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.configure_tenant('globex', audit_reads => true)")
    since = last_audit_id(db)
    for tenant in ("acme", "globex"):
        with db.connect(role, autocommit=False) as adm:
            adm.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
            adm.execute("SELECT 1")
            adm.execute("SELECT hush.configure_tenant(%s, audit_reads => false)", [tenant])
            adm.execute("SAVEPOINT s")
            adm.execute("SELECT hush.configure_tenant(%s, audit_reads => false)", [tenant])
            adm.execute("RELEASE s")
            assert get(adm, tenant, "k")["value"] == VALUE
            adm.rollback()
    reads = [(r["tenant_id"], r["db_role"]) for r in records(db, since) if r["action"] == "read"]
    assert reads == [("acme", role), ("globex", role)]


def test_read_auditing_off_counts_only_once_settled(db: Any) -> None:
    """Switching read auditing off takes effect for reads once committed, and switching it back
    on takes effect at once, even for a REPEATABLE READ snapshot taken before."""
    db.sql("CREATE ROLE adam_reader LOGIN IN ROLE hush_admin, hush_reader")
    db.sql("SELECT hush.grant_tenant('adam_reader', 'acme')")
    since = save_value(db)
    # An admin who may also read switches auditing off in its own transaction, reads, rolls back.
    with db.connect("adam_reader", autocommit=False) as adm:
        adm.execute("SELECT hush.configure_tenant('acme', audit_reads => false)")
        adm.execute("SAVEPOINT s")  # in a subtransaction too
        adm.execute("SELECT hush.configure_tenant('acme', audit_reads => false)")
        assert get(adm, "acme", "k")["value"] == VALUE
        adm.rollback()
    reads = lambda: [(r["action"], r["db_role"]) for r in records(db, since) if r["action"] == "read"]  # noqa: E731
    assert reads() == [("read", "adam_reader")]
    # Off, committed: a reader's snapshot is taken; auditing goes back on; the old snapshot
    # still shows it off, and the read is recorded all the same.
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.configure_tenant('acme', audit_reads => false)")
    with db.connect("alice") as a:
        get(a, "acme", "k")  # settled off: not recorded
    assert reads() == [("read", "adam_reader")]
    with db.connect("alice", autocommit=False) as a:
        a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        a.execute("SELECT count(*) FROM hush.list_secrets('acme')")  # the snapshot
        with db.connect("adam") as adm:
            adm.execute("SELECT hush.configure_tenant('acme', audit_reads => true)")
        assert get(a, "acme", "k")["value"] == VALUE
        a.rollback()
    assert reads() == [("read", "adam_reader"), ("read", "alice")]
