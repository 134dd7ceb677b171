"""The client over a primary and its streaming standby, all real servers:
hush.connect(dsn, read_dsn=...) sends the calls that only read to the read pool
and everything else to the primary's; a read whose record the primary cannot
take raises ReadNotRecorded with no value; a multi-host DSN with
target_session_attrs=read-write follows a failover with the same client object.
The tests that stop a primary start their own (never the session's cluster)."""
from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import hush
import hush.aio
from hush.devcluster import Cluster

from helpers import last_audit_id, save
from oauth_helpers import fresh_server, register
from replica_helpers import caught_up, guarded, primary_and_standby, promote


def in_recovery(conn: psycopg.Connection[Any]) -> bool:
    return bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])  # type: ignore[index]


# -- routing, on the session's cluster and a standby of it ----------------------------------

def test_reads_go_to_the_standby_and_everything_else_to_the_primary(db: Any, standby: Cluster) -> None:
    read_dsn = standby.dsn(db.name, user="rita")  # a hush_reader: it could not write even on a primary
    with hush.connect(db.dsn("alice"), read_dsn=read_dsn, max_size=2) as client:
        assert repr(client) == "<hush.Client pool='hush' read_pool='hush-read'>"
        acme = client.tenant("acme")
        saved = acme.save("k", "v1", tags=["t"])
        assert db.sql("SELECT count(*) FROM hush.secrets WHERE name = 'k'") == [(1,)]  # on the primary at once
        caught_up(db.dsn(), standby.dsn(db.name))
        since = last_audit_id(db)
        assert acme.get("k").value == "v1"
        assert acme.get_by_id(saved.id).value == "v1"
        assert [s.value for s in acme.get_many(["k"])] == ["v1"]
        # Served by the standby as rita, recorded on the primary before the values left.
        recs = db.sql("SELECT action, secret_name, db_role, detail->>'standby' FROM hush.audit_log "
                      "WHERE id > %s ORDER BY id", [since])
        assert recs == [("read", "k", "rita", "true")] * 3
        with client.read_connection() as c:
            assert in_recovery(c) and c.info.port == standby.port
        with client.connection() as c:
            assert not in_recovery(c)
        with client.transaction() as c:
            assert not in_recovery(c)
            hush.Secrets(c, "acme").save("in-tx", "v")
        assert acme.update("k", "v2").version == 2  # check-and-set and friends: the primary
    assert client.pool.closed and client.read_pool is not None and client.read_pool.closed


def test_a_client_whose_primary_role_cannot_read_still_reads(db: Any, standby: Cluster) -> None:
    """otto holds no hush role: a read that reached the primary would raise PermissionDenied."""
    with db.connect("alice") as a:
        save(a, "acme", "k", "v1", tags=["t"])
    caught_up(db.dsn(), standby.dsn(db.name))
    with hush.connect(db.dsn("otto"), read_dsn=standby.dsn(db.name, user="alice")) as client:
        acme = client.tenant("acme")
        assert acme.get("k").value == "v1"
        assert acme.exists("k") and not acme.exists("nope")
        assert [m.name for m in acme.list().data] == ["k"]
        assert [m.name for m in acme.iter_all()] == ["k"]
        assert [m.name for m in acme.search("k").data] == ["k"]
        assert [v.version for v in acme.versions("k")] == [1]
        with pytest.raises(hush.PermissionDenied):  # the primary, as otto
            acme.save("k2", "v")
        with pytest.raises(hush.PermissionDenied):
            acme.delete("k")
        with client.read_connection() as c:  # a write on the standby itself: SH021
            with pytest.raises(hush.ReadOnlyWrite):
                hush.Secrets(c, "acme").save("k3", "v")
    assert db.sql("SELECT count(*) FROM hush.secrets") == [(1,)]


def test_no_fallback_to_the_primary_unless_the_read_dsn_lists_it(db: Any, standby: Cluster) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", "v1")
    caught_up(db.dsn(), standby.dsn(db.name))
    primary = db.cluster
    listed = make_conninfo(host=f"{standby.base},{primary.base}", port=f"{standby.port},{primary.port}",
                           dbname=db.name, user="alice", target_session_attrs="prefer-standby")
    with hush.connect(db.dsn("alice"), read_dsn=standby.dsn(db.name, user="alice"), timeout=2) as strict, \
            hush.connect(db.dsn("alice"), read_dsn=listed, timeout=2) as fallback:
        for client in (strict, fallback):
            assert client.tenant("acme").get("k").value == "v1"
            with client.read_connection() as c:
                assert in_recovery(c)
        assert standby.pg_ctl_stop()
        since = last_audit_id(db)
        with pytest.raises(hush.DatabaseUnavailable):  # after `timeout` seconds
            guarded(lambda: strict.tenant("acme").get("k"))
        assert fallback.tenant("acme").get("k").value == "v1"
        with fallback.read_connection() as c:
            assert not in_recovery(c)
    assert db.sql("SELECT db_role, detail->>'standby' FROM hush.audit_log WHERE id > %s", [since]) == [
        ("alice", None)]


def test_async_client_routes_the_same_way(db: Any, standby: Cluster) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", "v1")
    caught_up(db.dsn(), standby.dsn(db.name))

    async def main() -> None:
        client = await hush.aio.connect(db.dsn("otto"), read_dsn=standby.dsn(db.name, user="alice"), max_size=2)
        async with client:
            assert repr(client) == "<hush.aio.AsyncClient pool='hush-async' read_pool='hush-async-read'>"
            acme = client.tenant("acme")
            assert (await acme.get("k")).value == "v1"
            assert [s.value for s in await acme.get_many(["k"])] == ["v1"]
            assert await acme.exists("k")
            assert [m.name for m in (await acme.list()).data] == ["k"]
            assert [m.name async for m in acme.iter_all()] == ["k"]
            with pytest.raises(hush.PermissionDenied):
                await acme.save("k2", "v")
            async with client.read_connection() as c:
                assert (await (await c.execute("SELECT pg_is_in_recovery()")).fetchone()) == (True,)
            async with client.transaction() as c:
                assert (await (await c.execute("SELECT pg_is_in_recovery()")).fetchone()) == (False,)
        assert client.pool.closed and client.read_pool is not None and client.read_pool.closed
    asyncio.run(main())


def test_oauth_token_reads_go_to_the_standby_and_token_state_to_the_primary(db: Any, standby: Cluster,
                                                                           oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with hush.connect(db.dsn("alice"), read_dsn=standby.dsn(db.name, user="rita")) as client:
        oa = client.tenant("acme").oauth
        register(oa, srv)                                   # the primary (rita could not)
        first = oa.client_credentials("idp", ["api:read"])  # stored on the primary
        caught_up(db.dsn(), standby.dsn(db.name))
        since = last_audit_id(db)
        assert oa.access_token("idp") == first.access_token  # still valid: read on the standby
        assert [p.name for p in oa.providers()] == ["idp"]
        assert [c.provider for c in oa.connections()] == ["idp"]
        assert srv.token_count("client_credentials") == 1
        recs = db.sql("SELECT action, db_role, detail->>'standby' FROM hush.audit_log WHERE id > %s", [since])
        assert recs == [("oauth_token_read", "rita", "true")]


# -- the tests' own primary and standby: stopped, promoted --------------------------------

def test_with_the_primary_down_an_audited_read_raises_read_not_recorded() -> None:
    with primary_and_standby() as (primary, sb):
        with psycopg.connect(primary.dsn("app", user="alice"), autocommit=True) as a:
            save(a, "acme", "k", "v1")
        caught_up(primary.dsn("app"), sb.dsn("app"))
        with hush.connect(primary.dsn("app", user="alice"), read_dsn=sb.dsn("app", user="alice")) as client:
            acme = client.tenant("acme")
            assert acme.get("k").value == "v1"
            assert primary.pg_ctl_stop()
            for read in (lambda: acme.get("k"), lambda: acme.get_many(["k"])):
                with pytest.raises(hush.ReadNotRecorded):  # and no value
                    guarded(read)
            # What records nothing is still served.
            assert acme.exists("k") and [m.name for m in acme.list().data] == ["k"]
            primary.pg_ctl_start()
            assert acme.get("k").value == "v1"  # recorded again, with no reconnection of ours
        with psycopg.connect(primary.dsn("app"), autocommit=True) as c:
            recs = c.execute("SELECT detail->>'standby' FROM hush.audit_log WHERE action = 'read'").fetchall()
        assert recs == [("true",), ("true",)]


def test_a_multi_host_dsn_follows_a_failover() -> None:
    with primary_and_standby() as (primary, sb):
        both = {"host": f"{primary.base},{sb.base}", "port": f"{primary.port},{sb.port}", "dbname": "app",
                "user": "alice"}
        dsn = make_conninfo(**both, target_session_attrs="read-write")
        read_dsn = make_conninfo(**both, target_session_attrs="prefer-standby")
        with hush.connect(dsn, read_dsn=read_dsn, max_size=4) as client:
            acme = client.tenant("acme")
            acme.save("before", "v1")
            # Three idle connections to the primary in the pool, all to die with it.
            with client.connection() as c1, client.connection() as c2, client.connection() as c3:
                assert {c.info.port for c in (c1, c2, c3)} == {primary.port}
            caught_up(primary.dsn("app"), sb.dsn("app"))
            assert acme.get("before").value == "v1"
            with client.read_connection() as r:
                assert in_recovery(r) and r.info.port == sb.port

            assert primary.pg_ctl_stop()
            promote(sb)

            # The same client object; not one call fails.
            assert guarded(lambda: acme.save("after", "v2")).version == 1
            assert acme.update("before", "v1b", expected_version=1).version == 2
            assert acme.get("before").value == "v1b" and acme.get("after").value == "v2"
            assert acme.get("before", version=1).value == "v1"
            with client.connection() as c:
                assert not in_recovery(c) and c.info.port == sb.port
            with client.transaction() as c:
                hush.Secrets(c, "acme").save("in-tx", "v3")
            assert {m.name for m in acme.iter_all()} == {"before", "after", "in-tx"}
        with psycopg.connect(sb.dsn("app"), autocommit=True) as c:  # the new primary recorded its reads itself
            recs = c.execute("SELECT detail->>'standby' FROM hush.audit_log WHERE action = 'read' ORDER BY id"
                             ).fetchall()
        assert recs == [("true",)] + [(None,)] * 3
