"""The recorder: the connection each reading backend opens to commit its records (one
per backend, opened on the first read, recovered when it dies), what the server's
configuration alone may name for it (hush.recorder_conninfo, recorder_timeout_ms; a
reload repoints open sessions), the least-privilege role it may log in as, and what
fails closed (SH022): a recorder it cannot reach, a bad setting, a password in the
setting, a lock the reader holds, a superuser's reserved slots. Records cannot be forged
or replayed. The caller's side runs as non-superuser roles (alice: a writer of acme)."""
from __future__ import annotations

import socket
import time
from typing import Any

import psycopg
import pytest

from helpers import get, last_audit_id, raises_sqlstate, save
from read_record_helpers import VALUE, recorder_settings, records, save_value, signed_body
from replica_helpers import guarded


def test_a_recorder_it_cannot_reach_means_no_value(db: Any) -> None:
    since = save_value(db)
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
    assert [r["action"] for r in records(db, since)] == ["read"]


def test_a_bad_timeout_setting_fails_closed_with_a_clear_message(db: Any) -> None:
    save_value(db)
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
    assert len(records(db, since)) == 1


def test_one_recorder_connection_per_reading_backend_and_it_recovers(db: Any) -> None:
    save_value(db)
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
        assert len(records(db, since)) == 1
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
    since = save_value(db)
    with db.connect(autocommit=False) as su:
        su.execute("LOCK TABLE hush.audit_log IN SHARE MODE")
        with raises_sqlstate("SH022") as ei:
            guarded(lambda: get(su, "acme", "k"))
        assert "55P03" in str(ei.value)  # lock_not_available: the recorder's lock_timeout
        su.rollback()
    assert records(db, since) == []


def test_records_cannot_be_forged(db: Any) -> None:
    since = save_value(db)
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
    assert records(db, since) == []


def test_a_least_privilege_recorder_role_through_a_pg_ident_map(db: Any) -> None:
    """The recipe of docs/audit.md: a login role in hush_recorder, peer authentication mapped from the
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
        recs = records(db, since)
        assert [(r["action"], r["db_role"]) for r in recs] == [("read", "alice")]
    finally:
        hba.write_text(saved[0])
        ident.write_text(saved[1])
        db.sql("SELECT pg_reload_conf()")


def test_a_signed_record_counts_only_in_its_database_and_while_fresh(db: Any) -> None:
    db.sql("CREATE ROLE rec2 LOGIN IN ROLE hush_recorder")
    since = last_audit_id(db)
    with db.connect("rec2") as r:
        for over in ({"db": "postgres"}, {"at": int(time.time()) - 3600}, {"at": int(time.time()) + 3600},
                     {"at": "now"}):
            body, mac, _ = signed_body(db, **over)
            with raises_sqlstate("42501") as ei:
                r.execute("SELECT hush._record(%s, %s)", [body, mac])
            assert "replay" in str(ei.value)
        body, mac, receipt = signed_body(db)
        assert r.execute("SELECT hush._record(%s, %s)", [body, mac]).fetchone() == (receipt,)
    assert [(x["action"], x["db_role"]) for x in records(db, since)] == [("read", "alice")]


def test_a_password_in_the_recorder_setting_is_refused(db: Any) -> None:
    """Any role can SHOW hush.recorder_conninfo: hush will not use a password from it."""
    save_value(db)
    with recorder_settings(db, conninfo="user=postgres password=hunter2"):
        with db.connect("otto") as o:
            assert o.execute("SHOW hush.recorder_conninfo").fetchone()[0].endswith("hunter2")  # hence the refusal
        with db.connect("alice") as a, raises_sqlstate("SH022") as ei:
            get(a, "acme", "k")
        assert "password" in str(ei.value) and "hunter2" not in str(ei.value)


def test_a_superuser_recorder_never_takes_the_reserved_slots(db: Any) -> None:
    """On a primary the default recorder logs in as the bootstrap superuser, which may use
    superuser_reserved_connections: it refuses to once only those are left."""
    save_value(db)
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
