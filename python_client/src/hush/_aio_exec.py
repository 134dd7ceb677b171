"""How hush.aio runs its calls: the async twins of hush._exec's executors (over an
AsyncConnection, an AsyncConnectionPool, SQLAlchemy's AsyncConnection or AsyncSession)
and the pooled connections it lends. Same statements, same errors as the sync side."""
from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, AsyncIterator, Protocol, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import _calls as q
from ._aio_threads import SyncSide
from ._errors import InvalidArgument
from ._exec import (CLIENT_BINDING, RESET_ROLE, UNATOMIC, SQLAlchemyExecutor, as_sqlalchemy_error, atomic_needed,
                    check_not_aborted, execute_prepare, is_sqlalchemy, logged, raise_translated, resettable, retry_after,
                    said_goodbye, unavailable)
from ._log import logger, prepare_default


class AsyncExecutor(Protocol):
    async def run(self, calls: Sequence[q.Call[Any]]) -> list[Any]: ...


class _PsycopgExecutor:
    """As hush._exec.PsycopgExecutor: server-side binding, no prepared statements unless asked."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], prepare: bool | None = None, *,
                 commit: bool = False) -> None:
        self.conn = conn
        self.prepare = execute_prepare(prepare)
        self.commit = commit

    async def run(self, calls: Sequence[q.Call[Any]]) -> list[Any]:
        atomic: AbstractAsyncContextManager[Any] = (
            self.conn.transaction() if (atomic_needed(calls) if self.conn.autocommit else self.commit)
            else nullcontext())
        debug = logger.isEnabledFor(10)
        try:
            async with atomic, psycopg.AsyncCursor(self.conn, row_factory=dict_row) as cur:
                out = []
                for call in calls:
                    started = time.perf_counter() if debug else 0.0
                    await cur.execute(call.sql, call.params, prepare=self.prepare)
                    rows = await cur.fetchall()
                    if debug:
                        logged(call, started, len(rows))
                    out.append(call.shape(rows))
                return out
        except psycopg.Error as e:
            raise_translated(e)


async def _getconn(pool: AsyncConnectionPool[Any]) -> psycopg.AsyncConnection[Any]:
    """A connection that still reaches a server: see hush._exec.getconn."""
    try:
        conn: psycopg.AsyncConnection[Any] = await pool.getconn()
        if not said_goodbye(conn):
            return conn
        try:
            await AsyncConnectionPool.check_connection(conn)
        except psycopg.Error:
            logger.info("a pooled connection was closed by the server; reconnecting (%s)", pool.name)
            await conn.close()
            await pool.putconn(conn)
            await pool.check()
            conn = await pool.getconn()
            return conn
        except BaseException:
            await pool.putconn(conn)
            raise
        return conn
    except PoolTimeout as e:
        raise unavailable(pool.name, e) from e


@asynccontextmanager
async def _pooled(pool: AsyncConnectionPool[Any]) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    conn = await _getconn(pool)
    try:
        async with conn:
            yield conn
    finally:
        await pool.putconn(conn)


@asynccontextmanager
async def _lent(pool: AsyncConnectionPool[Any], transaction: bool = False) -> AsyncIterator[
        psycopg.AsyncConnection[Any]]:
    """As hush._exec.lent: your own statements, in one transaction if asked, the role reset after."""
    conn = await _getconn(pool)
    try:
        async with conn:
            if transaction:
                async with conn.transaction():
                    yield conn
                    check_not_aborted(conn)
            else:
                yield conn
    finally:
        try:
            if resettable(conn):
                await conn.execute(RESET_ROLE)
        except psycopg.Error:
            await conn.close()
        await pool.putconn(conn)


class _PoolExecutor:
    """As hush._exec.PoolExecutor: committed before the connection goes back, one retry for a
    read whose connection broke, runs that only read to the read pool if any."""

    def __init__(self, pool: AsyncConnectionPool[Any], read_pool: AsyncConnectionPool[Any] | None = None,
                 prepare: bool | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool
        self.prepare = prepare_default() if prepare is None else prepare
        self.oauth_side: SyncSide | None = None  # AsyncClient's: the threads and sync pools of its OAuth

    async def run(self, calls: Sequence[q.Call[Any]]) -> list[Any]:
        pool = self.pool
        if self.read_pool is not None and all(c.reads_only for c in calls):
            pool = self.read_pool
        for attempt in range(2):
            conn = await _getconn(pool)
            try:
                return await _PsycopgExecutor(conn, self.prepare, commit=True).run(calls)
            except psycopg.Error as e:
                if not retry_after(e, conn, calls, attempt):
                    raise
            finally:
                await pool.putconn(conn)
        raise AssertionError("unreachable")


class _Unbroken:
    broken = False  # the async connection was invalidated already, awaited


class _SQLAlchemyExecutor(SQLAlchemyExecutor):
    """As hush._exec.SQLAlchemyExecutor, for AsyncSession and AsyncConnection."""

    async def run(self, calls: Sequence[q.Call[Any]]) -> list[Any]:  # type: ignore[override]
        sa = await self.conn.connection() if hasattr(self.conn, "get_bind") else self.conn  # AsyncSession
        driver = getattr(sa.sync_connection.connection, "driver_connection", None)
        if isinstance(driver, psycopg.AsyncConnection):
            if not sa.in_transaction():
                await sa.begin()
            try:
                return await _PsycopgExecutor(driver).run(calls)
            except psycopg.Error as e:
                if driver.broken:
                    await sa.invalidate()
                raise as_sqlalchemy_error(sa.sync_connection, _Unbroken(), e) from None
        if atomic_needed(calls) and await sa.get_isolation_level() == "AUTOCOMMIT":
            raise InvalidArgument(UNATOMIC)
        out = []
        for call in calls:
            try:
                result = await self.conn.execute(self.statement(call.sql), call.params)
            except Exception as e:
                raise_translated(e)
            out.append(call.shape([dict(r._mapping) for r in result.fetchall()]))
        return out


def _executor_for(conn: Any) -> AsyncExecutor:
    if isinstance(conn, psycopg.AsyncConnection):
        return _PsycopgExecutor(conn)
    if isinstance(conn, AsyncConnectionPool):
        return _PoolExecutor(conn)
    if is_sqlalchemy(conn):
        return _SQLAlchemyExecutor(conn)
    if isinstance(conn, (_PsycopgExecutor, _PoolExecutor, _SQLAlchemyExecutor)):  # the client's own
        return conn
    if type(conn).__module__.startswith("psycopg2"):
        raise InvalidArgument(f"{CLIENT_BINDING}: psycopg2 binds on the client; use a psycopg 3 AsyncConnection")
    raise TypeError(f"hush.aio.AsyncSecrets needs a psycopg AsyncConnection, an AsyncConnectionPool, or a "
                    f"SQLAlchemy AsyncConnection or AsyncSession, not {type(conn).__name__}")
