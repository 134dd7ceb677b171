"""The asyncio twin of hush: AsyncSecrets over psycopg's async connections and
pools (or SQLAlchemy's AsyncSession), and `await hush.aio.connect()` for
FastAPI/Starlette apps. Same methods, same results, same errors as the sync API.
"""
from __future__ import annotations

import builtins
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import datetime
from typing import Any, AsyncIterator, Iterable, Mapping, Protocol, Sequence, TypeVar
from uuid import UUID

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from . import _calls as q
from ._client import conninfo_from_env
from ._exec import SQLAlchemyExecutor, is_sqlalchemy, raise_translated, said_goodbye
from ._models import Page, SavedSecret, Secret, SecretMetadata, SecretVersion

T = TypeVar("T")

__all__ = ["AsyncSecrets", "AsyncClient", "connect"]


class AsyncExecutor(Protocol):
    async def run(self, calls: Sequence[q.Call[Any]]) -> list[Any]: ...


class _PsycopgExecutor:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def run(self, calls: Sequence[q.Call[Any]]) -> list[Any]:
        atomic: AbstractAsyncContextManager[Any] = (
            self.conn.transaction() if self.conn.autocommit and len(calls) > 1 else nullcontext())
        try:
            async with atomic, self.conn.cursor(row_factory=tuple_row) as cur:
                out = []
                for call in calls:
                    await cur.execute(call.sql, call.params)
                    out.append(call.shape(await cur.fetchall()))
                return out
        except psycopg.Error as e:
            raise_translated(e)


async def _getconn(pool: AsyncConnectionPool[Any]) -> psycopg.AsyncConnection[Any]:
    """A connection that still reaches a server: see hush._exec.getconn."""
    conn: psycopg.AsyncConnection[Any] = await pool.getconn()
    if not said_goodbye(conn):
        return conn
    try:
        await AsyncConnectionPool.check_connection(conn)
    except psycopg.Error:
        await conn.close()
        await pool.putconn(conn)
        await pool.check()
        conn = await pool.getconn()
        return conn
    except BaseException:
        await pool.putconn(conn)
        raise
    return conn


@asynccontextmanager
async def _pooled(pool: AsyncConnectionPool[Any]) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    conn = await _getconn(pool)
    try:
        async with conn:
            yield conn
    finally:
        await pool.putconn(conn)


class _PoolExecutor:
    """As hush._exec.PoolExecutor: runs that only read go to the read pool, if any."""

    def __init__(self, pool: AsyncConnectionPool[Any], read_pool: AsyncConnectionPool[Any] | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool

    async def run(self, calls: Sequence[q.Call[Any]]) -> list[Any]:
        pool = self.pool
        if self.read_pool is not None and all(c.reads_only for c in calls):
            pool = self.read_pool
        conn = await _getconn(pool)  # autocommit connections: see hush._exec.PoolExecutor
        try:
            return await _PsycopgExecutor(conn).run(calls)
        finally:
            await pool.putconn(conn)


class _SQLAlchemyExecutor(SQLAlchemyExecutor):
    async def run(self, calls: Sequence[q.Call[Any]]) -> list[Any]:  # type: ignore[override]
        out = []
        for call in calls:
            try:
                result = await self.conn.execute(self.statement(call.sql), call.params)
            except Exception as e:
                raise_translated(e)
            out.append(call.shape([tuple(r) for r in result.fetchall()]))
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
    raise TypeError(f"hush.aio.AsyncSecrets needs a psycopg AsyncConnection, an AsyncConnectionPool, or a "
                    f"SQLAlchemy AsyncConnection or AsyncSession, not {type(conn).__name__}")


class AsyncSecrets:
    """The secrets of one tenant, awaited. See hush.Secrets for the semantics of each method."""

    def __init__(self, conn: Any, tenant: str) -> None:
        self._exec = _executor_for(conn)
        self.tenant = tenant

    def __repr__(self) -> str:
        return f"AsyncSecrets(tenant={self.tenant!r})"

    async def _run(self, call: q.Call[T]) -> T:
        result: T = (await self._exec.run([call]))[0]
        return result

    async def save(self, name: str, value: str, *, description: str | None = None,
                   tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                   kind: str | None = None, expected_version: int | None = None,
                   expires_at: datetime | None = None) -> SavedSecret:
        return await self._run(q.save(self.tenant, name, value, description=description, tags=tags,
                                      metadata=metadata, kind=kind, expected_version=expected_version,
                                      expires_at=expires_at))

    async def save_many(self, items: Mapping[str, str] | Iterable[tuple[str, str]], *, kind: str | None = None,
                        tags: Iterable[str] | None = None,
                        metadata: Mapping[str, Any] | None = None) -> builtins.list[SavedSecret]:
        calls = q.save_batches(self.tenant, items, kind=kind, tags=tags, metadata=metadata)
        return [s for batch in await self._exec.run(calls) for s in batch]

    async def get(self, name: str, version: int | None = None) -> Secret:
        return await self._run(q.get(self.tenant, name, version))

    async def get_by_id(self, id: UUID | str, version: int | None = None) -> Secret:
        return await self._run(q.get_by_id(self.tenant, id, version))

    async def get_many(self, names: Sequence[str]) -> builtins.list[Secret]:
        return await self._run(q.get_many(self.tenant, names))

    async def update(self, name: str, value: str | None = None, *, description: str | None = None,
                     tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                     kind: str | None = None, expected_version: int | None = None,
                     expires_at: datetime | None = None) -> SavedSecret:
        return await self._run(q.update(self.tenant, "name", name, value, description=description, tags=tags,
                                        metadata=metadata, kind=kind, expected_version=expected_version,
                                        expires_at=expires_at))

    async def update_by_id(self, id: UUID | str, value: str | None = None, *, description: str | None = None,
                           tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                           kind: str | None = None, expected_version: int | None = None,
                           expires_at: datetime | None = None) -> SavedSecret:
        return await self._run(q.update(self.tenant, "id", id, value, description=description, tags=tags,
                                        metadata=metadata, kind=kind, expected_version=expected_version,
                                        expires_at=expires_at))

    async def delete(self, name: str) -> None:
        await self._run(q.delete(self.tenant, name))

    async def delete_by_id(self, id: UUID | str) -> None:
        await self._run(q.delete_by_id(self.tenant, id))

    async def restore(self, name: str) -> SecretMetadata:
        return await self._run(q.restore(self.tenant, name))

    async def destroy(self, name: str, versions: Iterable[int] | None = None) -> int:
        return await self._run(q.destroy(self.tenant, name, versions))

    async def list(self, *, page: int = 1, per_page: int = 50, prefix: str | None = None,
                   tags: Iterable[str] | None = None, include_deleted: bool = False,
                   after: str | None = None) -> Page[SecretMetadata]:
        return await self._run(q.list_(self.tenant, page=page, per_page=per_page, prefix=prefix, tags=tags,
                                       include_deleted=include_deleted, after=after))

    async def iter_all(self, *, prefix: str | None = None, tags: Iterable[str] | None = None,
                       per_page: int = 500) -> AsyncIterator[SecretMetadata]:
        """Every live secret's metadata, by keyset pages: `async for meta in s.iter_all()`."""
        after: str | None = None
        while True:
            page = await self.list(per_page=per_page, prefix=prefix, tags=tags, after=after)
            for meta in page.data:
                yield meta
            if len(page.data) < per_page:
                return
            after = page.data[-1].name

    async def search(self, query: str, *, page: int = 1, per_page: int = 50,
                     after: str | None = None) -> Page[SecretMetadata]:
        return await self._run(q.search(self.tenant, query, page=page, per_page=per_page, after=after))

    async def exists(self, name: str) -> bool:
        return await self._run(q.exists(self.tenant, name))

    async def versions(self, name: str) -> builtins.list[SecretVersion]:
        return await self._run(q.versions(self.tenant, name))


class AsyncClient:
    """The async pooled client: `client.tenant("acme")` gives AsyncSecrets. With
    `read_dsn`, reads go to `read_pool` as in hush.Client (same calls, same failover)."""

    def __init__(self, pool: AsyncConnectionPool[Any], read_pool: AsyncConnectionPool[Any] | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool
        self._exec = _PoolExecutor(pool, read_pool)

    def tenant(self, tenant: str) -> AsyncSecrets:
        """The AsyncSecrets of one tenant, over this client's pool (its reads over the read pool)."""
        return AsyncSecrets(self._exec, tenant)

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection (autocommit) from the read pool, or the primary's without read_dsn."""
        async with _pooled(self.pool if self.read_pool is None else self.read_pool) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection to the primary inside one transaction (committed unless the block raises)."""
        async with _pooled(self.pool) as conn, conn.transaction():
            yield conn

    async def close(self) -> None:
        """Close the pools and their connections."""
        try:
            if self.read_pool is not None:
                await self.read_pool.close()
        finally:
            await self.pool.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        read = "" if self.read_pool is None else f" read_pool={self.read_pool.name!r}"
        return f"<hush.aio.AsyncClient pool={self.pool.name!r}{read}>"


async def _pool(conninfo: str, name: str, min_size: int, max_size: int, timeout: float,
                kwargs: dict[str, Any]) -> AsyncConnectionPool[Any]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo, min_size=min_size, max_size=max_size, timeout=timeout,
        kwargs={**kwargs, "autocommit": True}, open=False, name=name)
    await pool.open()
    return pool


async def connect(conninfo: str | None = None, *, read_dsn: str | None = None, min_size: int = 1,
                  max_size: int = 10, timeout: float = 30.0, **kwargs: Any) -> AsyncClient:
    """An async pooled client; arguments as hush.connect."""
    pool = await _pool(conninfo_from_env(conninfo), "hush-async", min_size, max_size, timeout, kwargs)
    if not read_dsn:
        return AsyncClient(pool)
    try:
        read_pool = await _pool(read_dsn, "hush-async-read", min_size, max_size, timeout, kwargs)
    except BaseException:
        await pool.close()
        raise
    return AsyncClient(pool, read_pool)
