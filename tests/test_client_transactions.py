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
import functools
import logging
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


def sa_url(db: Any) -> str:
    return f"postgresql+psycopg://alice@/{db.name}?host={db.cluster.base}&port={db.cluster.port}"


@pytest.mark.parametrize("factory", [psycopg.ClientCursor, functools.partial(psycopg.ClientCursor)],
                         ids=["class", "partial"])
def test_sqlalchemy_over_client_binding_psycopg_still_binds_on_the_server(db: Any, cluster: Any,
                                                                         factory: Any) -> None:
    """Over postgresql+psycopg hush runs its statements on the driver's connection through
    its own server-binding cursor: the engine's cursor_factory (a class or any callable)
    cannot put a value into the statement text."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    value = canary()
    engine = create_engine(sa_url(db), connect_args={"cursor_factory": factory})
    try:
        with Session(engine) as session:
            hush.Secrets(session, "acme").save("k", value)
            session.commit()
        with engine.connect() as conn:
            assert hush.Secrets(conn, "acme").get("k").value == value
    finally:
        engine.dispose()
    assert stored(db, "k") == [(1,)]
    assert not log_has(cluster, db, value)


def test_sqlalchemy_echo_never_logs_a_value(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    """echo=True logs every statement SQLAlchemy runs with its parameters, and echo="debug"
    its rows: hush's statements are not SQLAlchemy's, so neither the saved value nor the read one shows."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    value = canary()
    engine = create_engine(sa_url(db), echo="debug")
    try:
        with caplog.at_level(logging.DEBUG, logger="sqlalchemy.engine"), Session(engine) as session:
            session.execute(text("SELECT :x"), {"x": "echo-works"})
            hush.Secrets(session, "acme").save("k", value)
            assert hush.Secrets(session, "acme").get("k").value == value
            session.commit()
    finally:
        engine.dispose()
    assert "echo-works" in caplog.text  # the log really shows parameters
    assert value not in caplog.text
    assert stored(db, "k") == [(1,)]


def test_sqlalchemy_connection_commit_as_you_go(db: Any) -> None:
    """A Connection from engine.connect() (SQLAlchemy 2.0's commit as you go): a hush call
    begins its transaction as a statement would, conn.commit() commits it, close() without
    commit rolls it back."""
    from sqlalchemy import create_engine

    engine = create_engine(sa_url(db))
    try:
        with engine.connect() as conn:
            hush.Secrets(conn, "acme").save("kept", "v")
            assert conn.in_transaction()
            conn.commit()
        with engine.connect() as conn:
            hush.Secrets(conn, "acme").save("dropped", "v")
    finally:
        engine.dispose()
    assert stored(db, "kept") == [(1,)] and stored(db, "dropped") == []


def test_save_many_over_an_autocommit_sqlalchemy_connection_is_all_or_nothing(db: Any) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(sa_url(db), isolation_level="AUTOCOMMIT")
    try:
        with Session(engine) as session:
            with pytest.raises(hush.ValueTooLarge):
                hush.Secrets(session, "acme").save_many([(f"b/{i}", "v") for i in range(4)] + [("b/big", "x" * 70_000)],
                                                        batch_size=2)
    finally:
        engine.dispose()
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE name LIKE 'b/%'") == [(0,)]


def test_a_progress_callback_that_raises_undoes_the_save(db: Any) -> None:
    def progress(done: int, total: int) -> None:
        raise RuntimeError("stop")
    with db.connect("alice", autocommit=True) as conn:
        with pytest.raises(RuntimeError):
            hush.Secrets(conn, "acme").save_many({"p/a": "1", "p/b": "2"}, progress=progress)
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE name LIKE 'p/%'") == [(0,)]


def test_a_caught_error_in_client_transaction_does_not_pass_for_a_commit(db: Any) -> None:
    """A caught hush error aborts the server's transaction; its COMMIT would quietly roll
    back. The block raises TransactionAborted instead of returning as if saved."""
    with hush.connect(db.dsn("alice")) as client:
        with pytest.raises(hush.TransactionAborted):
            with client.transaction() as conn:
                s = hush.Secrets(conn, "acme")
                s.save("t", "v")
                try:
                    s.delete("not-there")
                except hush.SecretNotFound:
                    pass
        assert client.tenant("acme").save("after", "v").version == 1  # the connection went back clean

    async def main() -> None:
        async with await hush.aio.connect(db.dsn("alice")) as client:
            with pytest.raises(hush.TransactionAborted):
                async with client.transaction() as conn:
                    s = hush.aio.AsyncSecrets(conn, "acme")
                    await s.save("t", "v")
                    try:
                        await s.delete("not-there")
                    except hush.SecretNotFound:
                        pass
    asyncio.run(main())
    assert stored(db, "t") == []


def test_a_session_role_left_on_a_lent_connection_is_reset(db: Any) -> None:
    """SET ROLE in client.connection() would be the authority, and the audited role, of the
    next call on that pooled connection, from any thread: hush resets it."""
    with hush.connect(db.dsn("gateway"), min_size=1, max_size=1) as client:
        with client.connection() as conn:
            conn.execute("SET ROLE acme_app")
            assert hush.Secrets(conn, "acme").save("k", "v").version == 1
        with client.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("gateway",)
        with pytest.raises(hush.PermissionDenied):
            client.tenant("acme").get("k")


def test_a_value_in_the_wrong_argument_stays_out_of_errors_and_the_log(db: Any, cluster: Any) -> None:
    value = canary()
    with hush.connect(db.dsn("alice")) as client:
        acme = client.tenant("acme")
        saved = acme.save("k", "v")
        calls = [lambda: acme.get_by_id(value), lambda: acme.exists_by_id(value), lambda: acme.delete_by_id(value),
                 lambda: acme.update_by_id(value, str(saved.id)), lambda: acme.get("k", version=value),
                 lambda: acme.save("k", "v2", expires_at=value), lambda: acme.save("k", "v2", expected_version=value)]
        for call in calls:
            with pytest.raises(hush.InvalidArgument) as e:
                call()
            assert value not in str(e.value) and value not in repr(e.value)
    assert not log_has(cluster, db, value)
