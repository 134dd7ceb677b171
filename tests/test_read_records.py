"""A value leaves hush only after the record of its read is committed, apart from
the caller's transaction: ROLLBACK, ROLLBACK TO a savepoint, a terminated
backend or a vanished client leave the record; READ ONLY transactions read and
are recorded; when the record cannot be written, no value leaves (SH022).

The caller's side runs as non-superuser roles (alice: a writer of acme). The
recorder's settings are changed with ALTER SYSTEM (only the server's
configuration counts) and reset after each test."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
import pytest

from helpers import get, last_audit_id, raises_sqlstate, rows, save
from oauth_helpers import fresh_server, login, register, tenant_oauth
from replica_helpers import guarded

VALUE = "read-record-canary-4f1e"


def _records(db: Any, since: int) -> list[dict]:
    with db.connect("audrey") as aud:  # the auditor reads the table itself
        return rows(aud, "SELECT *, hush.caller_xact(detail) AS caller_xact FROM hush.audit_log "
                         "WHERE id > %s ORDER BY id", [since])


@contextmanager
def recorder_settings(db: Any, **settings: str) -> Iterator[None]:
    """hush.recorder_* in the server's configuration for the backends started inside."""
    with db.connect() as su:
        for name, value in settings.items():  # SET first: ALTER SYSTEM knows no placeholder yet (42704)
            su.execute(f"SET hush.recorder_{name} = '{value}'")
            su.execute(f"ALTER SYSTEM SET hush.recorder_{name} = '{value}'")
        su.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        with db.connect() as su:
            for name, value in settings.items():
                su.execute(f"SET hush.recorder_{name} = '{value}'")
                su.execute(f"ALTER SYSTEM RESET hush.recorder_{name}")
            su.execute("SELECT pg_reload_conf()")


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
    recs = _records(db, since)
    assert [(r["action"], r["secret_name"], r["db_role"], r["tenant_id"]) for r in recs] == [
        ("read", "db/password", "alice", "acme"), ("read", "stripe_api_key", "alice", "acme")]
    assert all(r["caller_xact"] == "none" for r in recs)  # neither transaction had written anything
    assert all(VALUE not in repr(r) for r in recs)


def test_caller_xact_tells_committed_from_aborted_readers(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    since = last_audit_id(db)
    for end in ("commit", "rollback"):
        with db.connect("alice", autocommit=False) as a:
            save(a, "acme", f"written-before-{end}", "x")  # the reader's transaction has an id now
            txid = a.execute("SELECT txid_current()").fetchone()[0]
            get(a, "acme", "k")
            # The record is there before the reader ends, and says it is still running.
            rec = [r for r in _records(db, since) if r["action"] == "read"][-1]
            assert rec["detail"]["caller_txid"] == txid and rec["caller_xact"] == "in progress"
            getattr(a, end)()
    reads = [r for r in _records(db, since) if r["action"] == "read"]
    assert [r["caller_xact"] for r in reads] == ["committed", "aborted"]
    with db.connect("alice") as a:  # the application's own view of its tenant's trail shows it too
        mine = rows(a, "SELECT action, caller_xact FROM hush.audit_log('acme', action => 'read')")
    assert [m["caller_xact"] for m in mine] == ["aborted", "committed"]  # newest first


def test_a_terminated_reader_and_a_vanished_client_leave_the_record(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    since = last_audit_id(db)
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
    recs = [r for r in _records(db, since)]
    assert [(r["action"], r["secret_name"]) for r in recs] == [("read", "k"), ("read", "k")]
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE name IN ('other', 'other2')") == [(0,)]
    for _ in range(100):  # the server notices the closed socket and aborts the second reader
        if [r["caller_xact"] for r in _records(db, since)] == ["aborted", "aborted"]:
            break
        time.sleep(0.05)
    assert [r["caller_xact"] for r in _records(db, since)] == ["aborted", "aborted"]


def test_who_and_where_come_from_the_readers_backend(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    db.sql("CREATE ROLE carol LOGIN IN ROLE hush_reader")
    db.sql("SELECT hush.grant_tenant('carol', 'acme')")
    since = last_audit_id(db)
    with psycopg.connect(db.cluster.dsn(db.name, user="alice", host="127.0.0.1", application_name="billing"),
                         autocommit=True) as a:
        db.sql("GRANT carol TO alice")
        a.execute("SET ROLE carol")  # the code runs as carol: the record says so, and who logged in
        get(a, "acme", "k")
        pid = a.info.backend_pid
    (rec,) = _records(db, since)
    assert (rec["db_role"], rec["session_role"], rec["application_name"], str(rec["client_addr"])) == \
        ("carol", "alice", "billing", "127.0.0.1")
    assert rec["detail"]["pid"] == pid and rec["detail"]["caller_txid"] is None
    # Written by the recorder's own transaction, never the reader's.
    assert rec["txid"] > 0 and rec["outcome"] == "ok"


def test_read_only_transactions_read_and_record_and_writes_get_hushs_code(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    since = last_audit_id(db)
    with db.connect("alice", autocommit=False) as a:
        a.execute("SET TRANSACTION READ ONLY")
        assert get(a, "acme", "k")["value"] == VALUE
        assert a.execute("SELECT value FROM hush.get_secret_by_id('acme', (SELECT id FROM hush.list_secrets('acme') "
                         "WHERE name = 'k'))").fetchone() == (VALUE,)
        with raises_sqlstate("SH021"):
            a.execute("SELECT hush.delete_secret('acme', 'k')")
    assert [r["action"] for r in _records(db, since)] == ["read", "read"]


def test_a_recorder_it_cannot_reach_means_no_value(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    since = last_audit_id(db)
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts the TCP handshake and never answers: a primary that hangs
    try:
        for sock, timeout in ((refused, "2000"), (silent, "300")):
            port = sock.getsockname()[1]
            with recorder_settings(db, conninfo=f"host=127.0.0.1 port={port}", timeout_ms=timeout):
                with db.connect("alice", autocommit=False) as a:
                    heard: list[str] = []
                    a.add_notice_handler(lambda d: heard.append(str(d.message_primary)))
                    a.execute("SET client_min_messages = log")  # asking for LOG lines gets none of hush's
                    with raises_sqlstate("SH022") as ei:
                        guarded(lambda: get(a, "acme", "k"))
                    assert not any("recorder at" in h for h in heard), heard
                    a.rollback()
                    # Not a value; where it tried (from settings only superusers read) goes to the
                    # server log, not to alice.
                    assert VALUE not in str(ei.value) and "could not be written" in str(ei.value)
                    assert f"port {port}" not in str(ei.value) and "server log" in str(ei.value)
                    assert f"recorder at 127.0.0.1 port {port} as postgres" in db.cluster.log.read_text()
                    a.execute("SET TRANSACTION READ ONLY")  # and no way around it
                    with raises_sqlstate("SH022"):
                        guarded(lambda: a.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['k'])"))
        with db.connect("alice") as a:  # back to the default: reads flow again
            assert get(a, "acme", "k")["value"] == VALUE
    finally:
        refused.close()
        silent.close()
    assert [r["action"] for r in _records(db, since)] == ["read"]


def test_a_bad_timeout_setting_fails_closed_with_a_clear_message(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    with recorder_settings(db, timeout_ms="soon"):
        with db.connect("alice") as a, raises_sqlstate("SH022") as ei:
            get(a, "acme", "k")
    assert "hush.recorder_timeout_ms" in str(ei.value) and VALUE not in str(ei.value)


def test_a_session_cannot_point_its_reads_at_a_recorder_of_its_own(db: Any) -> None:
    """Only the server's configuration names the recorder: a SET in the session is ignored."""
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
        a.execute("SET hush.recorder_conninfo = 'host=127.0.0.1 port=1'")
        a.execute("SET hush.recorder_timeout_ms = '100'")
        since = last_audit_id(db)
        assert get(a, "acme", "k")["value"] == VALUE
    assert len(_records(db, since)) == 1


def test_one_recorder_connection_per_reading_backend_and_it_recovers(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    recorders = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    with db.connect("alice") as a:
        name = f"hush recorder for {a.info.backend_pid}"
        assert db.sql(recorders, [name]) == []  # opened lazily, on the first read
        for _ in range(5):
            get(a, "acme", "k")
        a.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['k'])")
        (first,) = db.sql(recorders, [name])
        db.sql("SELECT pg_terminate_backend(%s)", [first[0]])  # the recorder's session dies between reads
        since = last_audit_id(db)
        assert get(a, "acme", "k")["value"] == VALUE  # one retry on a new connection
        assert len(_records(db, since)) == 1
        (second,) = db.sql(recorders, [name])
        assert second != first
    for _ in range(100):  # and it goes with its backend
        if not db.sql(recorders, [name]):
            break
        time.sleep(0.05)
    assert db.sql(recorders, [name]) == []


def test_the_recorder_waits_for_no_lock_the_reader_holds(db: Any) -> None:
    """A reader holding a lock the record's INSERT needs fails closed within the recorder's
    lock_timeout: its backend waits on its own second connection, which the deadlock
    detector cannot see. (Only a superuser can take such a lock on the audit trail.)"""
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    since = last_audit_id(db)
    with db.connect(autocommit=False) as su:
        su.execute("LOCK TABLE hush.audit_log IN SHARE MODE")
        with raises_sqlstate("SH022") as ei:
            guarded(lambda: get(su, "acme", "k"))
        assert "55P03" in str(ei.value)  # lock_not_available: the recorder's lock_timeout
        su.rollback()
    assert _records(db, since) == []


def test_records_cannot_be_forged(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    since = last_audit_id(db)
    with db.connect("alice") as a, pytest.raises(psycopg.errors.InsufficientPrivilege):
        a.execute("SELECT hush._record('{}', '\\x00')")
    db.sql("CREATE ROLE rec LOGIN IN ROLE hush_recorder")
    body = ('{"tenant": "acme", "db_role": "bob", "session_role": "bob", "application_name": "", '
            '"client_addr": null, "rows": [["read", null, "k", 1, {}]], "key_id": "%s", "nonce": "00"}')
    kid = db.sql("SELECT key_id FROM hush.root_keys LIMIT 1")[0][0]
    with db.connect("rec") as r:
        for proof in ("\\x" + "00" * 32, "\\x"):
            with raises_sqlstate("42501"):
                r.execute("SELECT hush._record(%s, %s::bytea)", [body % kid, proof])
        with raises_sqlstate("42501"):
            r.execute("SELECT hush._record('not json', '\\x00')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # and nothing else of hush
            r.execute("SELECT * FROM hush.audit_log")
    assert _records(db, since) == []


def test_a_least_privilege_recorder_role_through_a_pg_ident_map(db: Any) -> None:
    """The README's recipe: a login role in hush_recorder, peer authentication mapped from the
    server's OS user only, hush.recorder_conninfo naming it."""
    data = db.cluster.data
    hba, ident = (data / "pg_hba.conf"), (data / "pg_ident.conf")
    saved = hba.read_text(), ident.read_text()
    hba.write_text("local all hush_rec peer map=hushrec\nlocal all not_rec peer map=hushrec\n" + saved[0])
    ident.write_text(saved[1] + "\nhushrec postgres hush_rec\nhushrec postgres not_rec\n")
    db.sql("SELECT pg_reload_conf()")
    try:
        db.sql("CREATE ROLE hush_rec LOGIN IN ROLE hush_recorder")
        db.sql("CREATE ROLE not_rec LOGIN")
        with db.connect("alice") as a:
            save(a, "acme", "k", VALUE)
        with pytest.raises(psycopg.OperationalError, match="[Pp]eer"):  # only the server's OS user is mapped
            db.connect("hush_rec").close()
        since = last_audit_id(db)
        with recorder_settings(db, conninfo="user=hush_rec"):
            with db.connect("alice") as a:
                assert get(a, "acme", "k")["value"] == VALUE
                who = db.sql("SELECT usename FROM pg_stat_activity WHERE application_name = %s",
                             [f"hush recorder for {a.info.backend_pid}"])
            assert who == [("hush_rec",)]
        with recorder_settings(db, conninfo="user=not_rec"):  # logs in, but may not record: no value
            with db.connect("alice") as a, raises_sqlstate("SH022"):
                get(a, "acme", "k")
            with db.connect() as su, raises_sqlstate("SH022") as ei:  # a superuser is told why
                get(su, "acme", "k")
            assert "42501" in str(ei.value) and "as not_rec" in str(ei.value)
        recs = _records(db, since)
        assert [(r["action"], r["db_role"]) for r in recs] == [("read", "alice")]
    finally:
        hba.write_text(saved[0])
        ident.write_text(saved[1])
        db.sql("SELECT pg_reload_conf()")


def test_a_read_this_node_cannot_open_is_refused_before_it_is_recorded(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    db.sql("INSERT INTO hush.root_keys (key_id) VALUES (repeat('e', 32))")
    db.sql("ALTER TABLE hush.secret_versions DISABLE TRIGGER USER")
    db.sql("UPDATE hush.secret_versions SET key_id = repeat('e', 32) WHERE tenant_id = 'acme'")
    since = last_audit_id(db)
    with db.connect("alice") as a, raises_sqlstate("SH030"):
        get(a, "acme", "k")
    assert _records(db, since) == []


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
    got = [(r["action"], r["secret_name"], r["db_role"], r["caller_xact"]) for r in _records(db, since)]
    assert got == [("oauth_client_secret_read", "idp", "alice", "none"), ("oauth_token_read", "idp", "alice", "none"),
                   ("oauth_tokens_read", "idp", "alice", "none"), ("oauth_refresh_claim", "idp", "alice", "aborted"),
                   ("oauth_callback", "idp", "alice", "aborted")]
    assert "app-secret" not in repr(_records(db, since))


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"])
def test_switching_auditing_off_and_reading_in_one_transaction_records(db: Any, isolation: str) -> None:
    """A tenant never configured (no row yet) and one already configured: an admin who may
    also read switches auditing off and reads in the same transaction, then rolls back."""
    role = "adam_reads_" + isolation.split()[0].lower()
    db.sql(f"CREATE ROLE {role} LOGIN IN ROLE hush_admin, hush_reader")
    db.sql("SELECT hush.grant_tenant(%s, '*')", [role])
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
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
    reads = [(r["tenant_id"], r["db_role"]) for r in _records(db, since) if r["action"] == "read"]
    assert reads == [("acme", role), ("globex", role)]


def test_read_auditing_off_counts_only_once_settled(db: Any) -> None:
    """Switching read auditing off takes effect for reads once committed, and switching it back
    on takes effect at once, even for a REPEATABLE READ snapshot taken before."""
    db.sql("CREATE ROLE adam_reader LOGIN IN ROLE hush_admin, hush_reader")
    db.sql("SELECT hush.grant_tenant('adam_reader', 'acme')")
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    since = last_audit_id(db)
    # An admin who may also read switches auditing off in its own transaction, reads, rolls back.
    with db.connect("adam_reader", autocommit=False) as adm:
        adm.execute("SELECT hush.configure_tenant('acme', audit_reads => false)")
        adm.execute("SAVEPOINT s")  # in a subtransaction too
        adm.execute("SELECT hush.configure_tenant('acme', audit_reads => false)")
        assert get(adm, "acme", "k")["value"] == VALUE
        adm.rollback()
    reads = lambda: [(r["action"], r["db_role"]) for r in _records(db, since) if r["action"] == "read"]  # noqa: E731
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


def _signed_body(dbf: Any, **over: Any) -> tuple[str, bytes, str]:
    """A record body and MAC made as hush makes them: only with the keyring, which here the
    test holds (as the server's OS user would)."""
    import base64
    import hashlib
    import json
    import os as _os
    from test_keys import key_id
    line = dbf.cluster.key_lines[0]
    key = base64.b64decode(line)
    nonce = _os.urandom(16).hex()
    # alice may read acme's names: hush._record asks the reader's grants again (recheck.py).
    payload = {"tenant": "acme", "db_role": "alice", "session_role": "alice", "application_name": "",
               "client_addr": None, "rows": [["read", None, "k", 1, {}]], "key_id": key_id(line), "nonce": nonce,
               "db": dbf.name, "at": int(time.time())}
    payload.update(over)
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    mac = hashlib.blake2b(body.encode(), key=key, digest_size=32, person=b"hush-read-record").digest()
    receipt = hashlib.blake2b(b"recorded " + nonce.encode(), key=key, digest_size=32,
                              person=b"hush-read-record").hexdigest()
    return body, mac, receipt


def test_a_signed_record_counts_only_in_its_database_and_while_fresh(db: Any) -> None:
    db.sql("CREATE ROLE rec2 LOGIN IN ROLE hush_recorder")
    since = last_audit_id(db)
    with db.connect("rec2") as r:
        for over in ({"db": "postgres"}, {"at": int(time.time()) - 3600}, {"at": int(time.time()) + 3600},
                     {"at": "now"}):
            body, mac, _ = _signed_body(db, **over)
            with raises_sqlstate("42501") as ei:
                r.execute("SELECT hush._record(%s, %s)", [body, mac])
            assert "replay" in str(ei.value)
        body, mac, receipt = _signed_body(db)
        assert r.execute("SELECT hush._record(%s, %s)", [body, mac]).fetchone() == (receipt,)
    assert [(x["action"], x["db_role"]) for x in _records(db, since)] == [("read", "alice")]


def test_a_password_in_the_recorder_setting_is_refused(db: Any) -> None:
    """Any role can SHOW hush.recorder_conninfo: hush will not use a password from it."""
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    with recorder_settings(db, conninfo="user=postgres password=hunter2"):
        with db.connect("otto") as o:
            assert o.execute("SHOW hush.recorder_conninfo").fetchone()[0].endswith("hunter2")  # hence the refusal
        with db.connect("alice") as a, raises_sqlstate("SH022") as ei:
            get(a, "acme", "k")
        assert "password" in str(ei.value) and "hunter2" not in str(ei.value)


def test_a_superuser_recorder_never_takes_the_reserved_slots(db: Any) -> None:
    """On a primary the default recorder logs in as the bootstrap superuser, which may use
    superuser_reserved_connections: it refuses to once only those are left."""
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    (limit,) = db.sql("SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int")[0]
    held = []
    try:
        with db.connect("alice", autocommit=False) as reader:
            # The reader's own statistics snapshot, taken before the slots fill up, changes nothing:
            # the recorder's side counts, afresh.
            reader.execute("SELECT count(*) FROM pg_stat_activity")
            while True:  # fill every slot outside the reserve (the refusal says so)
                try:
                    held.append(db.connect("otto"))
                except psycopg.OperationalError as e:
                    assert "reserved" in str(e)
                    break
            assert len(held) < limit
            with raises_sqlstate("SH022"):
                get(reader, "acme", "k")
            reader.rollback()
            # The DBA still gets in: the recorder let go of the reserved slot at once.
            with db.connect() as su:
                assert su.execute("SELECT 1").fetchone() == (1,)
            held.pop().close()
            for _ in range(50):  # a slot is free again
                try:
                    assert get(reader, "acme", "k")["value"] == VALUE
                    break
                except psycopg.Error:
                    reader.rollback()
                    time.sleep(0.1)
            else:
                raise AssertionError("no read once a slot was free")
    finally:
        for c in held:
            c.close()


def test_a_configuration_reload_repoints_open_sessions(db: Any) -> None:
    """After a reload (a standby re-pointed at a new primary, a new recorder_conninfo), sessions
    already open record where the configuration now says, not where they first did."""
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
        get(a, "acme", "k")  # the target is worked out and the connection opened
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        try:
            with recorder_settings(db, conninfo=f"host=127.0.0.1 port={closed.getsockname()[1]}"):
                for _ in range(50):  # the reload reaches the backend at its next command
                    try:
                        get(a, "acme", "k")
                    except psycopg.Error as e:
                        assert e.sqlstate == "SH022"
                        break
                    time.sleep(0.05)
                else:
                    raise AssertionError("the open session kept its old recorder")
        finally:
            closed.close()
        for _ in range(50):
            try:
                assert get(a, "acme", "k")["value"] == VALUE
                break
            except psycopg.Error:
                time.sleep(0.05)
        else:
            raise AssertionError("the open session did not come back to the default recorder")
