"""A primary and a streaming standby of their own (pg_basebackup -R, no hush
setting on the standby beyond the keyring it shares), for what the session's
cluster cannot go through: the primary stopped, restarted, failed over.
Audited reads on the standby are recorded on the primary before the value
leaves; without a primary they fail closed (SH022), never hang."""
from __future__ import annotations

import socket
from typing import Any, Iterator

import psycopg
import pytest

from hush.devcluster import Cluster
from helpers import get, raises_sqlstate, save
from replica_helpers import DB, caught_up, guarded, primary_and_standby, promote

VALUE = "replica-canary-7d2a"


class Pair:
    """A primary and its standby (replica_helpers.primary_and_standby), acme's secret k on both."""

    def __init__(self, primary: Cluster, standby: Cluster) -> None:
        self.primary, self.standby = primary, standby
        with self.connect("alice") as a:
            save(a, "acme", "k", VALUE)
        self.caught_up()

    def connect(self, user: str = "postgres", node: Any = None, **kw: Any) -> psycopg.Connection:
        return psycopg.connect((node or self.primary).dsn(DB, user=user), autocommit=True, **kw)

    def records(self, node: Any = None) -> list[tuple]:
        with self.connect(node=node) as c:
            return c.execute("SELECT action, db_role, detail->>'standby', hush.caller_xact(detail) "
                             "FROM hush.audit_log WHERE action = 'read' ORDER BY id").fetchall()

    def caught_up(self) -> None:
        caught_up(self.primary.dsn(DB), self.standby.dsn(DB))


@pytest.fixture
def pair() -> Iterator[Pair]:
    with primary_and_standby(keys=2) as (primary, standby):
        yield Pair(primary, standby)


def test_primary_down_fails_closed_and_a_restart_is_followed(pair: Pair) -> None:
    with pair.connect("alice", node=pair.standby) as a:
        assert get(a, "acme", "k")["value"] == VALUE  # the recorder's connection is open now
        pair.primary.pg_ctl_stop()
        with raises_sqlstate("SH022") as ei:  # refused: the kept connection is dead, a new one refused
            guarded(lambda: get(a, "acme", "k"))
        assert VALUE not in str(ei.value) and "no value" in str(ei.value)
        with pair.connect("alice", node=pair.standby) as fresh, raises_sqlstate("SH022"):
            guarded(lambda: get(fresh, "acme", "k"))
        assert a.execute("SELECT count(*) FROM hush.list_secrets('acme')").fetchone() == (1,)  # no value: served
        pair.primary.pg_ctl_start()
        assert get(a, "acme", "k")["value"] == VALUE  # the same session reconnects
    assert pair.records() == [("read", "alice", "true", "none")] * 2


def test_a_primary_that_never_answers_costs_the_deadline_only(pair: Pair) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        with pair.connect(node=pair.standby) as su:  # the standby's own configuration overrides the default
            for name, value in (("conninfo", f"host=127.0.0.1 port={silent.getsockname()[1]}"),
                                ("timeout_ms", "500")):
                su.execute(f"SET hush.recorder_{name} = '{value}'")
                su.execute(f"ALTER SYSTEM SET hush.recorder_{name} = '{value}'")
            su.execute("SELECT pg_reload_conf()")
        with pair.connect(node=pair.standby) as su, raises_sqlstate("SH022") as ei:
            guarded(lambda: get(su, "acme", "k"))
        assert "deadline" in str(ei.value)  # a superuser is told why; anyone else, the server log
        with pair.connect("alice", node=pair.standby) as a, raises_sqlstate("SH022"):
            guarded(lambda: get(a, "acme", "k"))
    finally:
        silent.close()
    assert pair.records() == []


def test_failover_reads_go_on_and_the_old_records_stay(pair: Pair) -> None:
    with pair.connect("alice", node=pair.standby) as a:
        get(a, "acme", "k")
        pair.primary.pg_ctl_stop()
        promote(pair.standby)
        assert a.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        # The same session reads on, its records now written on this node (the new primary).
        assert get(a, "acme", "k")["value"] == VALUE
        save(a, "acme", "after-failover", "v")  # and writes
        with pair.connect("alice", node=pair.standby) as b:
            assert get(b, "acme", "after-failover")["value"] == "v"
    assert pair.records(node=pair.standby) == [("read", "alice", "true", "none"), ("read", "alice", None, "none"),
                                               ("read", "alice", None, "none")]
    with pair.connect(node=pair.standby) as su:  # the trail, records from before the failover included, verifies
        su.execute("SELECT hush.seal_audit()")
        assert su.execute("SELECT ok FROM hush.verify_audit()").fetchone() == (True,)


def test_each_node_says_which_registered_keys_its_keyring_lacks(pair: Pair) -> None:
    # The standby gets a keyring of its own holding the first key only.
    own = pair.standby.write_keyfile(pair.primary.key_lines[:1], path=pair.standby.base / "keys" / "own.keys")
    with pair.connect(node=pair.standby) as su:
        su.execute(f"ALTER SYSTEM SET hush.root_key_file = '{own}'")
        su.execute("SELECT pg_reload_conf()")
    from test_keys import key_id
    second = key_id(pair.primary.key_lines[1])
    warnings: list[str] = []
    with pair.connect("adam") as adm:
        adm.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
        adm.execute("SELECT hush.add_root_key(%s)", [second])
        # Streaming, but its keyring not reported yet (it has recorded no read): said so.
        assert len(warnings) == 1 and "1 standby(s) stream" in warnings[0] and "0 reported" in warnings[0]
        with pair.connect("alice", node=pair.standby) as a:
            get(a, "acme", "k")  # its recorder connection reports the keyring, key ids only
        warnings.clear()
        adm.execute("SELECT hush.activate_root_key(%s)", [second])
        assert len(warnings) == 1 and second in warnings[0] and "is not in the keyring of standby" in warnings[0]
        reported = adm.execute("SELECT key_ids FROM hush.node_keyrings").fetchall()
        assert reported == [([key_id(pair.primary.key_lines[0])],)]
    with pair.connect("alice") as a:
        save(a, "acme", "k", "sealed-with-the-second-key")
    pair.caught_up()
    with pair.connect("adam", node=pair.standby) as adm:
        status = dict(adm.execute("SELECT key_id, loaded FROM hush.root_key_status() WHERE state <> 'unregistered'")
                      .fetchall())
    assert status[second] is False and status[key_id(pair.primary.key_lines[0])] is True
    with pair.connect("alice", node=pair.standby) as a, raises_sqlstate("SH030") as ei:
        get(a, "acme", "k")
    assert second in str(ei.value)
    assert len(pair.records()) == 1  # the read above; the refused one recorded nothing


def test_a_seal_lost_in_an_asynchronous_failover_shows_against_a_kept_head_hash(pair: Pair) -> None:
    pair.standby.pg_ctl_stop()  # the standby falls behind (asynchronous replication)...
    with pair.connect("alice") as a:
        save(a, "acme", "late", "v")
    with pair.connect() as su:
        kept = su.execute("SELECT head_hash FROM hush.seal_audit()").fetchone()[0]  # ...an auditor keeps this
    pair.primary.pg_ctl_stop("immediate")  # the primary dies before the standby catches up
    pair.standby.pg_ctl_start()
    promote(pair.standby)
    with pair.connect(node=pair.standby) as su:
        alone = su.execute("SELECT ok, problem FROM hush.verify_audit()").fetchone()
        assert alone == (True, None)  # the chain it has is consistent: only the kept hash shows the loss
        v = su.execute("SELECT ok, problem FROM hush.verify_audit(known_head => %s)", [kept]).fetchone()
        assert v == (False, "seal_missing")
        assert su.execute("SELECT count(*) FROM hush.secrets WHERE name = 'late'").fetchone() == (0,)


def test_standby_readers_never_hold_the_primarys_reserved_slots(pair: Pair) -> None:
    """pg_basebackup -R -U postgres leaves a superuser in primary_conninfo: its recorder logins
    could take the primary's superuser_reserved_connections. hush._record refuses to record
    over such a slot and the standby drops the connection at once."""
    held: list[psycopg.Connection] = []
    try:
        while True:
            try:
                held.append(pair.connect("otto"))
            except psycopg.OperationalError as e:
                assert "reserved" in str(e)
                break
        for _ in range(3):  # more standby readers than the primary keeps in reserve
            with pair.connect("alice", node=pair.standby) as a, raises_sqlstate("SH022"):
                guarded(lambda: get(a, "acme", "k"))
        with pair.connect() as su:  # the DBA still gets in
            assert su.execute("SELECT 1").fetchone() == (1,)
    finally:
        for c in held:
            c.close()
    with pair.connect("alice", node=pair.standby) as a:
        assert get(a, "acme", "k")["value"] == VALUE
    assert pair.records() == [("read", "alice", "true", "none")]
