"""The asyncio twin of hush: AsyncSecrets over psycopg's async connections and
pools (or SQLAlchemy's AsyncSession), and `await hush.aio.connect()` for
FastAPI/Starlette apps. Same methods, same results, same errors as the sync API.
"""
from __future__ import annotations

import builtins
from contextlib import asynccontextmanager
import time
from datetime import datetime, timedelta
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Mapping, Sequence, TypeVar,
                    overload)
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import _calls as q
from . import _dsn
from ._access import AccessEntry, AccessGrant
# The executors are _aio_exec.py's; _notices, _keys, _tenants, _audit and _oauth_aio reach them here.
from ._aio_exec import (AsyncExecutor as AsyncExecutor, _executor_for as _executor_for, _lent,
                        _PoolExecutor as _PoolExecutor, _pooled as _pooled, _PsycopgExecutor as _PsycopgExecutor,
                        _SQLAlchemyExecutor as _SQLAlchemyExecutor)
from ._aio_threads import side_for
from ._admin_models import TenantSettings
from ._audit import AsyncAudit
from ._client import cannot_connect, conninfo_from_env, connect_kwargs, invalid_dsn
from ._exec import unavailable
from ._keys import AsyncKeys
from ._models import (Page, SavedSecret, Secret, SecretChange, SecretDue, SecretEvent, SecretMetadata,
                      SecretVersion)
from ._secrets import Progress, _Reporting
from ._tenants import AsyncTenants

if TYPE_CHECKING:
    from ._cache import AsyncCachedSecrets
    from ._oauth_aio import OAuth
    from ._oauth_models import TokenSet

T = TypeVar("T")

__all__ = ["AsyncSecrets", "AsyncClient", "connect", "AsyncTenants", "AsyncKeys", "AsyncAudit", "OAuth",
           "AsyncCachedSecrets"]


def __getattr__(name: str) -> Any:
    if name == "OAuth":  # the OAuth stack (the [oauth] extra) only when used, as in hush
        from ._oauth_aio import OAuth
        return OAuth
    if name == "AsyncCachedSecrets":
        from ._cache import AsyncCachedSecrets
        return AsyncCachedSecrets
    raise AttributeError(f"module 'hush.aio' has no attribute {name!r}")


class AsyncSecrets:
    """The secrets of one tenant, awaited. See hush.Secrets for the semantics of each method."""

    def __init__(self, conn: Any, tenant: str) -> None:
        self._exec = _executor_for(conn)
        self.tenant = tenant
        self._oauth: OAuth | None = None

    @property
    def oauth(self) -> OAuth:
        """This tenant's OAuth (hush.aio.OAuth): hush.OAuth's methods as coroutines, run in
        worker threads over sync connections of hush's own: the client's, shared by its tenants
        and closed with it; over your pool or connection, its own (`await ....oauth.close()`)."""
        if self._oauth is None:
            from ._oauth_aio import OAuth  # the OAuth stack (the [oauth] extra) only when used
            self._oauth = OAuth(self._exec, self.tenant)
        return self._oauth

    def __repr__(self) -> str:
        return f"AsyncSecrets(tenant={self.tenant!r})"

    async def _run(self, call: q.Call[T]) -> T:
        result: T = (await self._exec.run([call]))[0]
        return result

    async def save(self, name: str, value: str, *, description: str | None = None,
                   tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                   kind: str | None = None, expected_version: int | None = None,
                   expires_at: datetime | None = None, max_versions: int | None = None,
                   destroy_versions_after: timedelta | None = None, rotate_every: timedelta | None = None,
                   stage: str | None = None) -> SavedSecret:
        return await self._run(q.save(self.tenant, name, value, description=description, tags=tags,
                                      metadata=metadata, kind=kind, expected_version=expected_version,
                                      expires_at=expires_at,
                                      lifecycle=q.Lifecycle(max_versions, destroy_versions_after, rotate_every,
                                                            stage)))

    async def save_many(self, items: Mapping[str, str] | Iterable[tuple[str, str]], *, kind: str | None = None,
                        tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                        progress: Progress | None = None,
                        batch_size: int = q.MAX_BATCH) -> builtins.list[SavedSecret]:
        calls: builtins.list[q.Call[Any]] = list(q.save_batches(self.tenant, items, kind=kind, tags=tags,
                                                                  metadata=metadata, batch_size=batch_size))
        if progress is not None:
            sizes = [len(c.params["names"]) for c in calls]
            calls = [_Reporting(c, sum(sizes[:i + 1]), sum(sizes), progress) for i, c in enumerate(calls)]
        return [s for batch in await self._exec.run(calls) for s in batch]

    async def get(self, name: str, version: int | None = None, *, stage: str | None = None) -> Secret:
        return await self._run(q.get(self.tenant, name, version, stage))

    async def get_by_id(self, id: UUID | str, version: int | None = None, *, stage: str | None = None) -> Secret:
        return await self._run(q.get_by_id(self.tenant, id, version, stage))

    async def get_many(self, names: Sequence[str]) -> builtins.list[Secret]:
        return await self._run(q.get_many(self.tenant, names))

    async def update(self, name: str, value: str | None = None, *, description: str | None = None,
                     tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                     kind: str | None = None, expected_version: int | None = None,
                     expires_at: datetime | None = None, max_versions: int | None = None,
                     destroy_versions_after: timedelta | None = None, rotate_every: timedelta | None = None,
                     stage: str | None = None) -> SavedSecret:
        return await self._run(q.update(self.tenant, "name", name, value, description=description, tags=tags,
                                        metadata=metadata, kind=kind, expected_version=expected_version,
                                        expires_at=expires_at,
                                        lifecycle=q.Lifecycle(max_versions, destroy_versions_after, rotate_every,
                                                              stage)))

    async def update_by_id(self, id: UUID | str, value: str | None = None, *, description: str | None = None,
                           tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                           kind: str | None = None, expected_version: int | None = None,
                           expires_at: datetime | None = None, max_versions: int | None = None,
                           destroy_versions_after: timedelta | None = None, rotate_every: timedelta | None = None,
                           stage: str | None = None) -> SavedSecret:
        return await self._run(q.update(self.tenant, "id", id, value, description=description, tags=tags,
                                        metadata=metadata, kind=kind, expected_version=expected_version,
                                        expires_at=expires_at,
                                        lifecycle=q.Lifecycle(max_versions, destroy_versions_after, rotate_every,
                                                              stage)))

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
            if len(page.data) < page.per_page:  # the server's page size (at most 1,000)
                return
            after = page.data[-1].name

    async def search(self, query: str, *, page: int = 1, per_page: int = 50,
                     after: str | None = None) -> Page[SecretMetadata]:
        return await self._run(q.search(self.tenant, query, page=page, per_page=per_page, after=after))

    async def exists(self, name: str) -> bool:
        return await self._run(q.exists(self.tenant, name))

    async def exists_by_id(self, id: UUID | str) -> bool:
        return await self._run(q.exists_by_id(self.tenant, id))

    async def versions(self, name: str) -> builtins.list[SecretVersion]:
        return await self._run(q.versions(self.tenant, name))

    async def promote(self, name: str, *, expected_version: int | None = None) -> SavedSecret:
        return await self._run(q.promote(self.tenant, name, expected_version))

    async def rollback(self, name: str, to_version: int, *, expected_version: int | None = None) -> SavedSecret:
        return await self._run(q.rollback(self.tenant, name, to_version, expected_version))

    async def due(self, within: timedelta | None = None, *,
                  at: datetime | None = None) -> builtins.list[SecretDue]:
        return await self._run(q.due(self.tenant, within, at))

    async def change_channel(self) -> str:
        return await self._run(q.change_channel(self.tenant))

    async def changes(self, since: str | None = None, *, max_rows: int = 1000) -> builtins.list[SecretChange]:
        return await self._run(q.changes(self.tenant, since, max_rows))

    async def changes_cursor(self) -> str:
        return await self._run(q.changes_cursor(self.tenant))

    async def events(self, since: datetime | None = None, *, max_rows: int = 100) -> builtins.list[SecretEvent]:
        return await self._run(q.events(self.tenant, since, max_rows))

    def cached(self, ttl: float = 60.0, *, refresh_on_change: bool = True, poll_interval: float = 1.0,
               clock: Callable[[], float] = time.monotonic) -> AsyncCachedSecrets:
        """As Secrets.cached: hush.aio.AsyncCachedSecrets, whose get() and get_many() are awaited."""
        from ._cache import AsyncCachedSecrets
        return AsyncCachedSecrets(self, ttl, refresh_on_change=refresh_on_change, poll_interval=poll_interval,
                                  clock=clock)


class AsyncClient:
    """The async pooled client: `client.tenant("acme")` gives AsyncSecrets. With
    `read_dsn`, reads go to `read_pool` as in hush.Client (same calls, same failover)."""

    def __init__(self, pool: AsyncConnectionPool[Any], read_pool: AsyncConnectionPool[Any] | None = None, *,
                 prepare: bool | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool
        self._exec = _PoolExecutor(pool, read_pool, prepare)
        self._exec.oauth_side = side_for(self._exec)  # idle: no thread or connection until OAuth is used

    def tenant(self, tenant: str) -> AsyncSecrets:
        """The AsyncSecrets of one tenant, over this client's pool (its reads over the read pool)."""
        return AsyncSecrets(self._exec, tenant)

    @property
    def tenants(self) -> AsyncTenants:
        """Tenant settings and grants (hush.aio.AsyncTenants, hush_admin), over the primary's pool."""
        return AsyncTenants(self._exec)

    @property
    def keys(self) -> AsyncKeys:
        """Root keys (hush.aio.AsyncKeys, hush_admin), over the primary's pool."""
        return AsyncKeys(self._exec)

    @property
    def audit(self) -> AsyncAudit:
        """The audit trail (hush.aio.AsyncAudit), over the primary's pool."""
        return AsyncAudit(self._exec)

    async def configure_tenant(self, tenant: str, *, audit_reads: bool | None = None,
                               max_value_bytes: int | None = None, recovery_days: int | None = None,
                               audit_rows_per_second: int | None = None,
                               reader_refresh: bool | None = None, max_versions: int | None = None,
                               destroy_versions_after: timedelta | None = None,
                               expiry_warning: timedelta | None = None) -> TenantSettings:
        return await self.tenants.configure(tenant, audit_reads=audit_reads, max_value_bytes=max_value_bytes,
                                            recovery_days=recovery_days, audit_rows_per_second=audit_rows_per_second,
                                            reader_refresh=reader_refresh, max_versions=max_versions,
                                            destroy_versions_after=destroy_versions_after,
                                            expiry_warning=expiry_warning)

    async def complete_authorization(self, callback_url: str, *, binding: str | None) -> TokenSet:
        """As hush.Client.complete_authorization: the state names the tenant, `binding` is the
        one start_authorization gave, from the browser's session."""
        from ._oauth_aio import OAuth  # the OAuth stack (the [oauth] extra) only when used
        return await OAuth(self._exec, "*").complete_authorization(callback_url, binding=binding)

    @overload
    async def grant(self, role: str, tenant: str) -> bool: ...
    @overload
    async def grant(self, role: str, tenant: str, *, prefix: str | None = None,
                    capabilities: str | Iterable[str]) -> AccessGrant: ...

    async def grant(self, role: str, tenant: str, *, prefix: str | None = None,
                    capabilities: str | Iterable[str] | None = None) -> bool | AccessGrant:
        return await self.tenants._change("grant", role, tenant, prefix, capabilities)

    @overload
    async def revoke(self, role: str, tenant: str) -> bool: ...
    @overload
    async def revoke(self, role: str, tenant: str, *, prefix: str | None = None,
                     capabilities: str | Iterable[str]) -> AccessGrant: ...

    async def revoke(self, role: str, tenant: str, *, prefix: str | None = None,
                     capabilities: str | Iterable[str] | None = None) -> bool | AccessGrant:
        return await self.tenants._change("revoke", role, tenant, prefix, capabilities)

    async def effective_access(self, role: str, tenant: str) -> list[AccessEntry]:
        return await self.tenants.effective_access(role, tenant)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection (autocommit) to the primary, for your own statements."""
        async with _lent(self.pool) as conn:
            yield conn

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection (autocommit) from the read pool, or the primary's without read_dsn."""
        async with _lent(self.pool if self.read_pool is None else self.read_pool) as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection to the primary inside one transaction (committed unless the block raises)."""
        async with _lent(self.pool, transaction=True) as conn:
            yield conn

    async def close(self) -> None:
        """Close the pools and their connections (OAuth's after its calls in flight end)."""
        try:
            if self._exec.oauth_side is not None:
                await self._exec.oauth_side.close()
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


async def _probe(conninfo: str, kwargs: dict[str, Any], connect_timeout: float) -> None:
    """As hush._client.probe."""
    _dsn.check(conninfo)
    try:
        conn = await psycopg.AsyncConnection.connect(
            conninfo, **{**kwargs, "connect_timeout": max(1, round(connect_timeout))})
        await conn.close()
    except psycopg.ProgrammingError as e:
        raise invalid_dsn(conninfo, e) from None
    except psycopg.Error as e:
        raise cannot_connect(conninfo, e) from None


async def _pool(conninfo: str, name: str, min_size: int, max_size: int, timeout: float, kwargs: dict[str, Any],
                connect_timeout: float, pool_options: dict[str, Any]) -> AsyncConnectionPool[Any]:
    await _probe(conninfo, kwargs, connect_timeout)
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo, min_size=min_size, max_size=max_size, timeout=timeout, kwargs=kwargs, open=False, name=name,
        **pool_options)
    try:
        await pool.open(wait=True, timeout=connect_timeout)
    except PoolTimeout as e:
        await pool.close()
        raise unavailable(name, e) from None
    except BaseException:
        await pool.close()
        raise
    return pool


async def connect(conninfo: str | None = None, *, read_dsn: str | None = None, min_size: int = 1,
                  max_size: int = 10, timeout: float = 30.0, connect_timeout: float = 10.0,
                  prepare: bool | None = None, pool_options: dict[str, Any] | None = None,
                  **kwargs: Any) -> AsyncClient:
    """An async pooled client; arguments as hush.connect (errors too: DatabaseUnavailable
    within `connect_timeout` when the server cannot be reached)."""
    options = dict(pool_options or {})
    kwargs = connect_kwargs(kwargs, prepare)
    pool = await _pool(conninfo_from_env(conninfo), "hush-async", min_size, max_size, timeout, kwargs,
                       connect_timeout, options)
    if not read_dsn:
        return AsyncClient(pool, prepare=prepare)
    try:
        read_pool = await _pool(read_dsn, "hush-async-read", min_size, max_size, timeout, kwargs, connect_timeout,
                                options)
    except BaseException:
        await pool.close()
        raise
    return AsyncClient(pool, read_pool, prepare=prepare)
