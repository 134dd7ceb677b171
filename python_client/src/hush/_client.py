"""hush.connect(): the pooled client for applications."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import psycopg
from psycopg_pool import ConnectionPool

from . import _calls as q
from ._exec import PoolExecutor
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
    """

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool
        self._exec = PoolExecutor(pool)

    def tenant(self, tenant: str) -> Secrets:
        """The Secrets of one tenant, over this client's pool."""
        return Secrets(self._exec, tenant)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit) for your own statements."""
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside one transaction, committed when the block ends
        without an exception and rolled back otherwise."""
        with self.pool.connection() as conn, conn.transaction():
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
        """Close the pool and its connections."""
        self.pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<hush.Client pool={self.pool.name!r}>"


def connect(conninfo: str | None = None, *, min_size: int = 1, max_size: int = 10, timeout: float = 30.0,
            **kwargs: Any) -> Client:
    """A pooled client. `conninfo` is a libpq DSN or URL; without it, HUSH_DSN, then
    the PG* environment variables. Extra keyword arguments go to psycopg.connect."""
    pool: ConnectionPool[Any] = ConnectionPool(
        conninfo_from_env(conninfo), min_size=min_size, max_size=max_size, timeout=timeout,
        kwargs={**kwargs, "autocommit": True}, open=True, name="hush")
    return Client(pool)
