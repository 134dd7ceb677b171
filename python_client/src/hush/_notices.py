"""What the server says beside a result: the WARNINGs of hush.root_key_status()
(why the keyring did not load) and of add/activate_root_key (a standby whose
keyring lacks the key), caught on the connection the call runs on.

Notices reach a psycopg connection's notice handlers only, so a pool's call
runs on a connection taken from the pool for the purpose, and over SQLAlchemy
they are caught when its driver is psycopg (other drivers: none are caught).
Also here, for the same reach under each executor: whether its calls each
commit on their own (Keys.rewrap's rule, as CALL hush.rewrap()'s).
"""
from __future__ import annotations

from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

import psycopg

from ._exec import Executor, PoolExecutor, PsycopgExecutor, SQLAlchemyExecutor, pooled, sqlalchemy_driver_connection

if TYPE_CHECKING:
    from .aio import AsyncExecutor


class Collected(list[str]):
    """A notice handler that keeps each message, without the "hush: " prefix of hush's own."""

    def __call__(self, diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary:
            self.append(diag.message_primary.removeprefix("hush: "))


@contextmanager
def _handler(conn: Any, collected: Collected) -> Iterator[None]:
    if not isinstance(conn, psycopg.BaseConnection):
        yield
        return
    conn.add_notice_handler(collected)
    try:
        yield
    finally:
        conn.remove_notice_handler(collected)


@contextmanager
def notices(executor: Executor) -> Iterator[tuple[Executor, Collected]]:
    """An executor to run calls on, and the list their notices are collected in."""
    if isinstance(executor, PoolExecutor):
        with pooled(executor.pool) as pooled_conn, notices(PsycopgExecutor(pooled_conn, executor.prepare)) as got:
            yield got
        return
    conn: Any = None
    if isinstance(executor, PsycopgExecutor):
        conn = executor.conn
    elif isinstance(executor, SQLAlchemyExecutor):
        conn = sqlalchemy_driver_connection(executor.conn)
    collected = Collected()
    with _handler(conn, collected):
        yield executor, collected


async def _async_driver_connection(executor: Any) -> Any:
    """The DBAPI connection under a SQLAlchemy AsyncSession or AsyncConnection (as hush.aio checks it)."""
    sa_conn = await executor.conn.connection() if hasattr(executor.conn, "get_bind") else executor.conn
    return getattr(sa_conn.sync_connection.connection, "driver_connection", None)


@asynccontextmanager
async def async_notices(executor: AsyncExecutor) -> AsyncIterator[tuple[AsyncExecutor, Collected]]:
    """notices() for hush.aio's executors."""
    from . import aio
    if isinstance(executor, aio._PoolExecutor):
        async with aio._pooled(executor.pool) as pooled_conn, \
                async_notices(aio._PsycopgExecutor(pooled_conn, executor.prepare)) as got:
            yield got
        return
    conn: Any = None
    if isinstance(executor, aio._PsycopgExecutor):
        conn = executor.conn
    elif isinstance(executor, aio._SQLAlchemyExecutor):
        conn = await _async_driver_connection(executor)
    collected = Collected()
    with _handler(conn, collected):
        yield executor, collected


def _commits_alone(conn: Any) -> bool | None:
    if isinstance(conn, psycopg.BaseConnection):
        return bool(conn.autocommit) and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    return None


def autocommit(executor: Executor) -> bool | None:
    """Whether each run of an executor commits on its own (a pool's; an autocommit connection
    outside a transaction); None when its driver does not say."""
    if isinstance(executor, PoolExecutor):
        return True
    if isinstance(executor, PsycopgExecutor):
        return _commits_alone(executor.conn)
    if isinstance(executor, SQLAlchemyExecutor):
        return _commits_alone(sqlalchemy_driver_connection(executor.conn))
    return None


async def async_autocommit(executor: AsyncExecutor) -> bool | None:
    """autocommit() for hush.aio's executors."""
    from . import aio
    if isinstance(executor, aio._PoolExecutor):
        return True
    if isinstance(executor, aio._PsycopgExecutor):
        return _commits_alone(executor.conn)
    if isinstance(executor, aio._SQLAlchemyExecutor):
        return _commits_alone(await _async_driver_connection(executor))
    return None
