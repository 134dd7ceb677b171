"""hush.aio.OAuth: hush.OAuth for asyncio apps. Every method of hush.OAuth, with the
same parameters, results and errors, as a coroutine that never blocks the event loop.

How: each call runs the sync hush.OAuth method in a worker thread of hush's own
(`threads` of them, 8 by default; not the loop's default executor, which asyncio's own
DNS lookups use and a slow provider would fill), over sync psycopg pools hush opens with
the connection parameters of what you passed (the async client's pool, and a twin of
its read pool if any), on first use: at most one connection per thread, idle ones closed
after 10 minutes. Token state commits on hush's own connection in the sync API too,
so nothing of the flows changes: the same lease makes a refresh
single-flight across tasks, threads and processes. The methods are made from hush.OAuth's
own by _threaded(), one line each: no flow is written twice, and a method hush.OAuth
gains is one more line here (tests/test_client_surface.py fails until it is).

A cancelled await drops a call still waiting for a thread; a call already running goes
on to its end in its thread and its result is discarded: a refresh that has claimed the
lease stores the new tokens and frees it, or releases it on failure, so no lease is left
stranded and no rotated refresh token lost. close() waits for such calls before it
closes the pools.
"""
from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Concatenate, Coroutine, ParamSpec, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ._aio_threads import DEFAULT_THREADS, SyncSide, side_for, side_over
from ._exec import is_sqlalchemy
from ._oauth import OAuth as SyncOAuth
from ._oauth import _conninfo_of

P = ParamSpec("P")
R = TypeVar("R")


def _threaded(method: Callable[Concatenate[SyncOAuth, P], R]) -> Callable[Concatenate[OAuth, P],
                                                                            Coroutine[Any, Any, R]]:
    """hush.OAuth's `method` as a coroutine method that runs it in a worker thread: same
    name and parameters (inspect.signature, help(), the surface test see them)."""
    async def threaded(self: OAuth, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._side.run(self._call, method, *args, **kwargs)
    threaded.__name__ = method.__name__
    threaded.__qualname__ = f"OAuth.{method.__name__}"
    threaded.__doc__ = f"As hush.OAuth.{method.__name__}, awaited (run in a worker thread)."
    threaded.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    return threaded


def _side(conn: Any, writer: Any, threads: int) -> tuple[SyncSide, bool]:
    """The sync side to run over, and whether this OAuth owns it (closes it on close())."""
    from .aio import _executor_for, _PoolExecutor, _PsycopgExecutor  # hush.aio imports this module lazily
    if isinstance(conn, _PsycopgExecutor):  # AsyncSecrets(conn, t).oauth
        conn = conn.conn
    if writer is not None:
        if not isinstance(writer, (str, ConnectionPool)):
            raise TypeError("hush.aio.OAuth's writer is a DSN or a psycopg_pool ConnectionPool, "
                            f"not {type(writer).__name__}")
        return side_over(writer, threads), True
    if isinstance(conn, psycopg.AsyncConnection):
        return side_over(_conninfo_of(conn), threads), True
    if is_sqlalchemy(conn):
        raise TypeError("hush.aio.OAuth over SQLAlchemy needs writer=... (a DSN or a psycopg_pool pool): "
                        "its calls run in threads, on connections of hush's own")
    if not isinstance(conn, (AsyncConnectionPool, _PoolExecutor)):
        raise TypeError(f"hush.aio.OAuth cannot derive its connections from {type(conn).__name__}; pass writer=... "
                        "(a DSN or a psycopg_pool ConnectionPool)")
    exec = _executor_for(conn)
    assert isinstance(exec, _PoolExecutor)
    if exec.oauth_side is not None:  # the AsyncClient's: shared by its tenants, closed with the client
        return exec.oauth_side, False
    return side_for(exec, threads), True


class OAuth:
    """OAuth2/OIDC for one tenant, awaited: `(await hush.aio.connect()).tenant("acme").oauth`,
    or hush.aio.OAuth(pool_or_connection, "acme"). See hush.OAuth for each method.

    `conn`: the async client's pool (through `client.tenant(t).oauth`, sharing the client's
    threads and pools, closed with the client), an AsyncConnectionPool or an AsyncConnection
    (hush opens sync connections with its parameters; reads do not join the async
    connection's transaction, unlike hush.OAuth over a sync one), or anything with
    `writer=` a DSN or a psycopg_pool ConnectionPool to run on instead (SQLAlchemy needs
    it). `threads`: how many calls run at once on the threads this OAuth opens (the client's
have 8). The keyword arguments of hush.OAuth (skew,
    lease_seconds, timeout, clock, sleep, ...) pass through; `sleep` and the callback of
    wait_for_device_token run in a worker thread, which that method holds while it waits
    (for many device logins at once, loop over poll_device_token with asyncio.sleep).
    """

    def __init__(self, conn: Any, tenant: str, *, writer: Any = None, threads: int = DEFAULT_THREADS,
                 **options: Any) -> None:
        inspect.signature(SyncOAuth).bind(None, tenant, **options)  # hush.OAuth's arguments: a TypeError now
        self.tenant = tenant
        self._options = options
        self._side, self._owns_side = _side(conn, writer, threads)
        self._sync: SyncOAuth | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"hush.aio.OAuth(tenant={self.tenant!r})"

    def _call(self, method: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """In a worker thread: the sync OAuth (made on first use: it opens nothing itself) runs it."""
        with self._lock:
            if self._sync is None:
                self._sync = SyncOAuth(self._side.executor(), self.tenant, **self._options)
            sync = self._sync
        return method(sync, *args, **kwargs)

    # One line a method: hush.OAuth's own, run in a thread.
    register_provider = _threaded(SyncOAuth.register_provider)
    register_providers = _threaded(SyncOAuth.register_providers)
    refresh_discovery = _threaded(SyncOAuth.refresh_discovery)
    providers = _threaded(SyncOAuth.providers)
    provider = _threaded(SyncOAuth.provider)
    remove_provider = _threaded(SyncOAuth.remove_provider)
    start_authorization = _threaded(SyncOAuth.start_authorization)
    complete_authorization = _threaded(SyncOAuth.complete_authorization)
    client_credentials = _threaded(SyncOAuth.client_credentials)
    start_device_authorization = _threaded(SyncOAuth.start_device_authorization)
    poll_device_token = _threaded(SyncOAuth.poll_device_token)
    wait_for_device_token = _threaded(SyncOAuth.wait_for_device_token)
    password_grant = _threaded(SyncOAuth.password_grant)
    grant = _threaded(SyncOAuth.grant)
    access_token = _threaded(SyncOAuth.access_token)
    token = _threaded(SyncOAuth.token)
    refresh = _threaded(SyncOAuth.refresh)
    refresh_leased = _threaded(SyncOAuth.refresh_leased)
    release_lease = _threaded(SyncOAuth.release_lease)
    events = _threaded(SyncOAuth.events)
    revoke = _threaded(SyncOAuth.revoke)
    userinfo = _threaded(SyncOAuth.userinfo)
    connections = _threaded(SyncOAuth.connections)

    async def close(self) -> None:
        """Wait for the calls in flight, then close the threads and the connections hush opened
        for this OAuth (not the client's, which client.close() closes)."""
        if self._owns_side:
            await self._side.close()
