"""hush.connect(): the pooled client for applications."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import psycopg
from psycopg_pool import ConnectionPool

from . import _calls as q
from ._exec import PoolExecutor, pooled
from ._secrets import Secrets

if TYPE_CHECKING:
    from ._oauth_models import TokenSet


def conninfo_from_env(conninfo: str | None) -> str:
    """The DSN given, else HUSH_DSN, else '' (libpq then reads PGHOST, PGDATABASE, ...)."""
    return conninfo if conninfo is not None else os.environ.get("HUSH_DSN", "")


class Client:
    """A pool of autocommit connections: each call is one statement and one round trip.

    `client.tenant("acme")` gives that tenant's Secrets; each call takes a
    connection from the pool and commits on its own. For several calls in one
    transaction, use `with client.transaction() as conn: hush.Secrets(conn, t)`.

    **Replicas**: with `hush.connect(dsn, read_dsn=...)` a second pool, `read_pool`,
    serves the calls that only read: `get`, `get_by_id`, `get_many`, `list`, `iter_all`,
    `search`, `exists`, `versions`, and OAuth's `providers`, `connections`, `events` and
    the stored-token read of `access_token`/`token`/`userinfo`. Writes, OAuth flows and
    refreshes, `grant`/`revoke`, `connection()` and `transaction()` use the primary's
    pool; `read_connection()` is the read pool's. A standby commits each audited read's
    record on its primary before it returns the value; when it cannot, the read raises
    `ReadNotRecorded` (SH022) and returns nothing. A write that lands on a standby (your
    own statements on `read_connection()`, or a `dsn` that reached one) raises
    `ReadOnlyWrite` (SH021). A replica lags: a read just after a write may miss it, and a
    check-and-set on a stale version fails with `VersionConflict`; for read-your-writes,
    `hush.Secrets(client.pool, tenant)` reads on the primary. No silent fallback: while
    the replica is unreachable, reads wait up to `timeout`, then raise
    `psycopg_pool.PoolTimeout`. To fall back, say so in `read_dsn`: list the replicas,
    then the primary, with `target_session_attrs=prefer-standby`.

    **Failover**: list every node in `dsn` with `target_session_attrs=read-write`
    (`host=db1,db2 port=5432,5432 ...`). Before a call takes an idle pooled connection,
    hush checks, without a round trip, whether its server closed it; if so the pool
    drops its dead connections and opens new ones, which libpq sends to the promoted
    node. So the first call after a failover succeeds: only calls in flight when the
    old primary stopped fail (`psycopg.OperationalError`, not retried: a write may have
    committed), and calls made while no node accepts writes wait up to `timeout`. A host
    that vanishes without closing its sockets is noticed only by TCP: set
    `keepalives_idle` or `tcp_user_timeout` in the DSN.
    """

    def __init__(self, pool: ConnectionPool[Any], read_pool: ConnectionPool[Any] | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool
        self._exec = PoolExecutor(pool, read_pool)

    def tenant(self, tenant: str) -> Secrets:
        """The Secrets of one tenant, over this client's pool (its reads over the read pool)."""
        return Secrets(self._exec, tenant)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit) to the primary, for your own statements."""
        with pooled(self.pool) as conn:
            yield conn

    @contextmanager
    def read_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection (autocommit) from the read pool, or the primary's without read_dsn:
        for your own reads, which may lag behind the primary."""
        with pooled(self.pool if self.read_pool is None else self.read_pool) as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection to the primary inside one transaction, committed when the
        block ends without an exception and rolled back otherwise."""
        with pooled(self.pool) as conn, conn.transaction():
            yield conn

    def complete_authorization(self, callback_url: str) -> TokenSet:
        """An OAuth callback whose tenant the handler does not know: the state names the
        pending authorization (whatever tenant started it), and the tokens are stored there."""
        from ._oauth import OAuth  # the OAuth stack (the [oauth] extra) only when used
        return OAuth(self._exec, "*").complete_authorization(callback_url)

    def grant(self, role: str, tenant: str) -> bool:
        """Let a role act on a tenant (hush_admin); True when the grant is new."""
        result: bool = self._exec.run([q.grant(role, tenant)])[0]
        return result

    def revoke(self, role: str, tenant: str) -> bool:
        """Remove a tenant grant (hush_admin); True when there was one."""
        result: bool = self._exec.run([q.revoke(role, tenant)])[0]
        return result

    def close(self) -> None:
        """Close the pools and their connections."""
        try:
            if self.read_pool is not None:
                self.read_pool.close()
        finally:
            self.pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        read = "" if self.read_pool is None else f" read_pool={self.read_pool.name!r}"
        return f"<hush.Client pool={self.pool.name!r}{read}>"


def _pool(conninfo: str, name: str, min_size: int, max_size: int, timeout: float,
          kwargs: dict[str, Any]) -> ConnectionPool[Any]:
    return ConnectionPool(conninfo, min_size=min_size, max_size=max_size, timeout=timeout,
                          kwargs={**kwargs, "autocommit": True}, open=True, name=name)


def connect(conninfo: str | None = None, *, read_dsn: str | None = None, min_size: int = 1, max_size: int = 10,
            timeout: float = 30.0, **kwargs: Any) -> Client:
    """A pooled client. `conninfo` is a libpq DSN or URL; without it, HUSH_DSN, then
    the PG* environment variables. Extra keyword arguments go to psycopg.connect.
    `read_dsn`, a replica's DSN (or several hosts'), adds a second pool of the same size
    for the calls that only read (see hush.Client: routing, lag, failover); None or ''
    for none."""
    pool = _pool(conninfo_from_env(conninfo), "hush", min_size, max_size, timeout, kwargs)
    if not read_dsn:
        return Client(pool)
    try:
        read_pool = _pool(read_dsn, "hush-read", min_size, max_size, timeout, kwargs)
    except BaseException:
        pool.close()
        raise
    return Client(pool, read_pool)
