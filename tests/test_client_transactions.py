"""Which transaction each entry point writes in, and that no driver set-up puts a value
into query text.

A pool (yours or hush.connect's) gets a transaction of hush's own per call, committed
before the connection goes back, autocommit or not: saved means saved. Your connection
or session: hush joins your transaction and you commit (or roll back) it. Parameters are
bound on the server whatever cursor class the connection was given (Django's psycopg
backend gives ClientCursor); set-ups that hush cannot steer (a SQLAlchemy engine whose
psycopg connections bind on the client, psycopg2) are refused with how to fix them."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import hush
import hush.aio


def stored(db: Any, name: str) -> list[tuple[Any, ...]]:
    return db.sql("SELECT current_version FROM hush.secrets WHERE tenant_id = 'acme' AND name = %s", [name])


def test_a_plain_pool_commits_each_call(db: Any) -> None:
    """psycopg_pool's default connections are not autocommit, and the pool rolls back what
    a returned connection left open: hush commits first."""
    with ConnectionPool(db.dsn("alice"), min_size=1, max_size=2, open=True) as pool:
        s = hush.Secrets(pool, "acme")
        assert s.save("k", "v1").version == 1
        assert s.save("k", "v2").version == 2
        s.save_many({"a": "1", "b": "2"})
        assert hush.save_secret(pool, "acme", "c", "3").version == 1
        s.delete("c")
    assert stored(db, "k") == [(2,)]
    assert db.sql("SELECT name, deleted_at IS NOT NULL FROM hush.secrets WHERE tenant_id = 'acme' "
                  "AND name IN ('a', 'b', 'c') ORDER BY name") == [("a", False), ("b", False), ("c", True)]


def test_a_failed_call_on_a_plain_pool_leaves_nothing_and_the_connection_clean(db: Any) -> None:
    with ConnectionPool(db.dsn("alice"), min_size=1, max_size=1, open=True) as pool:
        s = hush.Secrets(pool, "acme")
        with pytest.raises(hush.VersionConflict):
            s.save_many({"x": "1"}) and s.save("x", "2", expected_version=0)
        with pytest.raises(hush.InvalidName):
            s.save("", "v")
        assert s.get("x").version == 1  # the same (only) connection, usable, nothing half-done
        with pool.connection() as conn:  # given back with no transaction left open
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert stored(db, "x") == [(1,)]


def test_an_async_plain_pool_commits_each_call(db: Any) -> None:
    async def main() -> None:
        async with AsyncConnectionPool(db.dsn("alice"), min_size=1, max_size=2, open=False) as pool:
            s = hush.aio.AsyncSecrets(pool, "acme")
            assert (await s.save("k", "v1")).version == 1
            await s.save_many({"a": "1"})
    asyncio.run(main())
    assert stored(db, "k") == [(1,)]
    assert stored(db, "a") == [(1,)]


def test_your_connection_decides(db: Any) -> None:
    """Over a non-autocommit connection hush joins your transaction: rolled back, nothing;
    committed, there. Over an autocommit one each call commits at once."""
    with db.connect("alice", autocommit=False) as conn:
        hush.Secrets(conn, "acme").save("gone", "v")
        conn.rollback()
        hush.Secrets(conn, "acme").save("kept", "v")
        assert stored(db, "kept") == []  # not yet: your transaction is open
        conn.commit()
    assert stored(db, "gone") == [] and stored(db, "kept") == [(1,)]
    with db.connect("alice", autocommit=True) as conn:
        hush.Secrets(conn, "acme").save("now", "v")
        assert stored(db, "now") == [(1,)]


def test_hush_connect_passes_pool_options_and_commits(db: Any) -> None:
    configured: list[int] = []

    def configure(conn: psycopg.Connection[Any]) -> None:
        configured.append(conn.info.backend_pid)
    with hush.connect(db.dsn("alice"), pool_options={"configure": configure, "max_idle": 60}) as client:
        client.tenant("acme").save("k", "v")
        assert client.pool.max_idle == 60
    assert configured and stored(db, "k") == [(1,)]


def canary() -> str:
    return f"binding-canary-{uuid.uuid4()}"


def log_has(cluster: Any, db: Any, text: str) -> bool:
    with db.connect() as su:
        su.execute("SELECT pg_catalog.pg_sleep(0.2)")  # let the logger write
    return text in cluster.log.read_text(errors="replace")


def test_a_client_binding_connection_still_binds_on_the_server(db: Any, cluster: Any) -> None:
    """psycopg's ClientCursor, which Django's psycopg backend sets by default, would write
    the value into the statement: hush's statements go through a server-binding cursor."""
    value = canary()
    with psycopg.connect(db.dsn("alice"), autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        hush.Secrets(conn, "acme").save("k", value)
        assert hush.Secrets(conn, "acme").get("k").value == value
        conn.execute("SELECT %s::text", ["client-bound-" + value[-8:]])  # your own statements stay yours
    assert log_has(cluster, db, "client-bound-" + value[-8:])  # the log really shows client-bound text
    assert not log_has(cluster, db, value)


def test_an_async_client_binding_connection_still_binds_on_the_server(db: Any, cluster: Any) -> None:
    value = canary()

    async def main() -> None:
        conn = await psycopg.AsyncConnection.connect(db.dsn("alice"), autocommit=True,
                                                     cursor_factory=psycopg.AsyncClientCursor)
        async with conn:
            await hush.aio.AsyncSecrets(conn, "acme").save("k", value)
            assert (await hush.aio.AsyncSecrets(conn, "acme").get("k")).value == value
    asyncio.run(main())
    assert not log_has(cluster, db, value)


def test_sqlalchemy_with_client_binding_is_refused_before_anything_is_sent(db: Any, cluster: Any) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    value = canary()
    engine = create_engine(f"postgresql+psycopg://alice@/{db.name}?host={db.cluster.base}&port={db.cluster.port}",
                           connect_args={"cursor_factory": psycopg.ClientCursor})
    try:
        with Session(engine) as session:
            with pytest.raises(hush.InvalidArgument, match="drop cursor_factory"):
                hush.Secrets(session, "acme").save("k", value)
        with engine.connect() as conn:
            with pytest.raises(hush.InvalidArgument, match="ClientCursor"):
                hush.Secrets(conn, "acme").get("k")
    finally:
        engine.dispose()
    assert stored(db, "k") == []
    assert not log_has(cluster, db, value)


def test_async_sqlalchemy_with_client_binding_is_refused(db: Any) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def main() -> None:
        engine = create_async_engine(
            f"postgresql+psycopg://alice@/{db.name}?host={db.cluster.base}&port={db.cluster.port}",
            connect_args={"cursor_factory": psycopg.AsyncClientCursor})
        try:
            async with AsyncSession(engine) as session:
                with pytest.raises(hush.InvalidArgument, match="AsyncClientCursor"):
                    await hush.aio.AsyncSecrets(session, "acme").save("k", "v")
        finally:
            await engine.dispose()
    asyncio.run(main())
    assert stored(db, "k") == []
