"""hush.connect(): the pooled client for applications."""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Iterable, Iterator, overload

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from . import _dsn
from ._access import AccessEntry, AccessGrant
from ._admin_models import TenantSettings
from ._audit import Audit
from ._errors import DatabaseUnavailable, InvalidArgument
from ._exec import PoolExecutor, lent, unavailable
from ._keys import Keys
from ._log import prepare_default
from ._secrets import Secrets
from ._tenants import Tenants

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
    `search`, `exists`, `exists_by_id`, `versions`, and OAuth's `providers`, `connections`,
    `events` and the stored-token read of `access_token`/`token`/`userinfo`. Writes, OAuth
    flows and refreshes, `grant`/`revoke` and the rest of `tenants`, `keys` and `audit`,
    `connection()` and `transaction()` use the primary's pool; `read_connection()` is the
    read pool's. A standby commits each audited read's record on its primary before it
    returns the value; when it cannot, the read raises `ReadNotRecorded` (SH022) and
    returns nothing. A write that lands on a standby (your
    own statements on `read_connection()`, or a `dsn` that reached one) raises
    `ReadOnlyWrite` (SH021). A replica lags: a read just after a write may miss it, and a
    check-and-set on a stale version fails with `VersionConflict`; for read-your-writes,
    `hush.Secrets(client.pool, tenant)` reads on the primary. No silent fallback: while
    the replica is unreachable, reads wait up to `timeout`, then raise
    `DatabaseUnavailable`. To fall back, say so in `read_dsn`: list the replicas,
    then the primary, with `target_session_attrs=prefer-standby`.

    **Failover**: list every node in `dsn` with `target_session_attrs=read-write`
    (`host=db1,db2 port=5432,5432 ...`). Before a call takes an idle pooled connection,
    hush checks, without a round trip, whether its server closed it; if so the pool
    drops its dead connections and opens new ones, which libpq sends to the promoted
    node. So the first call after a failover succeeds: of the calls in flight when the
    old primary stopped, reads are retried once on a new connection and writes fail
    (`psycopg.OperationalError`, not re-sent: a write may have committed), and calls made
    while no node accepts writes wait up to `timeout`, then raise DatabaseUnavailable. A host
    that vanishes without closing its sockets is noticed only by TCP: set
    `keepalives_idle` or `tcp_user_timeout` in the DSN.
    """

    def __init__(self, pool: ConnectionPool[Any], read_pool: ConnectionPool[Any] | None = None, *,
                 prepare: bool | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool
        self._exec = PoolExecutor(pool, read_pool, prepare)

    def tenant(self, tenant: str) -> Secrets:
        """The Secrets of one tenant, over this client's pool (its reads over the read pool)."""
        return Secrets(self._exec, tenant)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit) to the primary, for your own statements. A session
        SET ROLE you leave on it is reset before it goes back (other session settings stay:
        prefer SET LOCAL)."""
        with lent(self.pool) as conn:
            yield conn

    @contextmanager
    def read_connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection (autocommit) from the read pool, or the primary's without read_dsn:
        for your own reads, which may lag behind the primary."""
        with lent(self.pool if self.read_pool is None else self.read_pool) as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection to the primary inside one transaction, committed when the
        block ends without an exception and rolled back otherwise. A hush error caught inside
        the block has aborted the transaction: the block then raises TransactionAborted
        rather than let its COMMIT quietly roll back."""
        with lent(self.pool, transaction=True) as conn:
            yield conn

    def complete_authorization(self, callback_url: str, *, binding: str | None) -> TokenSet:
        """An OAuth callback whose tenant the handler does not know: the state names the
        pending authorization (whatever tenant started it), and the tokens are stored there.
        `binding`: the one start_authorization gave, from the browser's session (None if it
        has none): a callback that comes back to another browser is refused (SH080)."""
        from ._oauth import OAuth  # the OAuth stack (the [oauth] extra) only when used
        return OAuth(self._exec, "*").complete_authorization(callback_url, binding=binding)

    @property
    def tenants(self) -> Tenants:
        """Tenant settings and grants (hush.Tenants, hush_admin), over the primary's pool."""
        return Tenants(self._exec)

    @property
    def keys(self) -> Keys:
        """Root keys (hush.Keys, hush_admin), over the primary's pool: each rewrap batch commits on its own."""
        return Keys(self._exec)

    @property
    def audit(self) -> Audit:
        """The audit trail (hush.Audit), over the primary's pool."""
        return Audit(self._exec)

    def configure_tenant(self, tenant: str, *, audit_reads: bool | None = None, max_value_bytes: int | None = None,
                         recovery_days: int | None = None, audit_rows_per_second: int | None = None,
                         reader_refresh: bool | None = None, max_versions: int | None = None,
                         destroy_versions_after: timedelta | None = None,
                         expiry_warning: timedelta | None = None) -> TenantSettings:
        """A tenant's settings (hush_admin): see Tenants.configure."""
        return self.tenants.configure(tenant, audit_reads=audit_reads, max_value_bytes=max_value_bytes,
                                      recovery_days=recovery_days, audit_rows_per_second=audit_rows_per_second,
                                      reader_refresh=reader_refresh, max_versions=max_versions,
                                      destroy_versions_after=destroy_versions_after, expiry_warning=expiry_warning)

    @overload
    def grant(self, role: str, tenant: str) -> bool: ...
    @overload
    def grant(self, role: str, tenant: str, *, prefix: str | None = None,
              capabilities: str | Iterable[str]) -> AccessGrant: ...

    def grant(self, role: str, tenant: str, *, prefix: str | None = None,
              capabilities: str | Iterable[str] | None = None) -> bool | AccessGrant:
        """Let a role act in a tenant (hush_admin): with `capabilities` (and `prefix`) a scoped
        grant, returned as an AccessGrant; without, the whole tenant, True when that changed
        anything. See Tenants.grant."""
        return self.tenants._change("grant", role, tenant, prefix, capabilities)

    @overload
    def revoke(self, role: str, tenant: str) -> bool: ...
    @overload
    def revoke(self, role: str, tenant: str, *, prefix: str | None = None,
               capabilities: str | Iterable[str]) -> AccessGrant: ...

    def revoke(self, role: str, tenant: str, *, prefix: str | None = None,
               capabilities: str | Iterable[str] | None = None) -> bool | AccessGrant:
        """Take access away (hush_admin): with `capabilities` (and `prefix`) from that one
        grant, returning what is left of it; without, every grant of the role on the tenant,
        True when there was one. See Tenants.revoke."""
        return self.tenants._change("revoke", role, tenant, prefix, capabilities)

    def effective_access(self, role: str, tenant: str) -> list[AccessEntry]:
        """What a role may do in a tenant, and why: see Tenants.effective_access."""
        return self.tenants.effective_access(role, tenant)

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


def connect_kwargs(kwargs: dict[str, Any], prepare: bool | None) -> dict[str, Any]:
    """psycopg.connect's arguments for connections hush opens: autocommit, and no automatic
    prepared statements unless prepare (or HUSH_PREPARE=1): a transaction pooler (pgbouncer
    1.18) gives each transaction another server connection, where they do not exist."""
    out = {**kwargs, "autocommit": True}
    if not (prepare_default() if prepare is None else prepare):
        out.setdefault("prepare_threshold", None)
    return out


def probe(conninfo: str, kwargs: dict[str, Any], connect_timeout: float) -> None:
    """Open and close one connection, so a server that cannot be reached is reported at once,
    with libpq's reason, rather than by the pool's first call after its whole timeout."""
    _dsn.check(conninfo)
    try:
        psycopg.connect(conninfo, **{**kwargs, "connect_timeout": max(1, round(connect_timeout))}).close()
    except psycopg.ProgrammingError as e:  # libpq could not parse the DSN
        raise invalid_dsn(conninfo, e) from None
    except psycopg.Error as e:
        raise cannot_connect(conninfo, e) from None


def invalid_dsn(conninfo: str, e: psycopg.Error) -> InvalidArgument:
    return InvalidArgument(f"the DSN is not valid: {_dsn.reason(conninfo, e)}",
                           hint="libpq keywords such as host, port, dbname, user, or a postgresql:// URL")


def cannot_connect(conninfo: str, e: psycopg.Error) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"cannot connect: {_dsn.reason(conninfo, e)}",
                               hint="is the server up, and the DSN (or HUSH_DSN, PGHOST...) right? With several "
                                    "hosts, connect_timeout applies to each in turn (libpq's rule)")


def _pool(conninfo: str, name: str, min_size: int, max_size: int, timeout: float, kwargs: dict[str, Any],
          connect_timeout: float, pool_options: dict[str, Any]) -> ConnectionPool[Any]:
    probe(conninfo, kwargs, connect_timeout)
    pool: ConnectionPool[Any] = ConnectionPool(conninfo, min_size=min_size, max_size=max_size, timeout=timeout,
                                               kwargs=kwargs, open=True, name=name, **pool_options)
    try:
        pool.wait(timeout=connect_timeout)
    except PoolTimeout as e:
        pool.close()
        raise unavailable(name, e) from None
    except BaseException:
        pool.close()
        raise
    return pool


def connect(conninfo: str | None = None, *, read_dsn: str | None = None, min_size: int = 1, max_size: int = 10,
            timeout: float = 30.0, connect_timeout: float = 10.0, prepare: bool | None = None,
            pool_options: dict[str, Any] | None = None, **kwargs: Any) -> Client:
    """A pooled client. `conninfo` is a libpq DSN or URL; without it, HUSH_DSN, then
    the PG* environment variables. Extra keyword arguments go to psycopg.connect.

    Fails within `connect_timeout` seconds with DatabaseUnavailable (a HushError, saying
    why) when the server cannot be reached, and InvalidArgument for a DSN libpq cannot
    parse. `timeout` is how long a call waits for a pooled connection (DatabaseUnavailable
    after it). `pool_options` go to psycopg_pool.ConnectionPool (check, max_idle,
    max_lifetime, reconnect_timeout, configure...). `prepare`: let psycopg prepare hush's
    statements on these connections (default: HUSH_PREPARE=1, else off, which is what
    pgbouncer in transaction mode needs; docs/performance.md, "The Python client's
    overhead", says what it saves on a direct connection). `read_dsn`, a replica's DSN (or
    several hosts'), adds a second pool of the same size for the calls that only read (see
    hush.Client: routing, lag, failover); None or '' for none."""
    options = dict(pool_options or {})
    kwargs = connect_kwargs(kwargs, prepare)
    pool = _pool(conninfo_from_env(conninfo), "hush", min_size, max_size, timeout, kwargs, connect_timeout, options)
    if not read_dsn:
        return Client(pool, prepare=prepare)
    try:
        read_pool = _pool(read_dsn, "hush-read", min_size, max_size, timeout, kwargs, connect_timeout, options)
    except BaseException:
        pool.close()
        raise
    return Client(pool, read_pool, prepare=prepare)
