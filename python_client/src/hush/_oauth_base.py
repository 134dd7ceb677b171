"""What every part of hush.OAuth (_oauth.py) shares: the tenant and settings, where
reads run and where token state commits, the provider HTTP client under the egress
policy, and how a token response is stored and handed back."""
from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

import psycopg

from . import _oauth_calls as q
from ._calls import Call
from ._errors import EgressRefused
from ._exec import Executor, PoolExecutor, PsycopgExecutor, executor_for, is_sqlalchemy
from ._oauth_extra import missing
from ._oauth_models import TokenSet

try:
    from ._oauth_client_auth import JWT_METHODS
    from ._oauth_egress import EgressCache, EgressPolicy, Refused, check_url
    from ._oauth_http import HTTPTimeout, ProviderHTTP
    from ._oauth_response import checked, screen_id_token
except ModuleNotFoundError as e:
    raise missing(e) from None

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none", *JWT_METHODS)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_ACCOUNT = "default"


class _OwnConnection:
    """hush's own autocommit connection beside a caller's, opened on first use."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.conn: psycopg.Connection[Any] | None = None
        self.lock = threading.Lock()

    def run(self, calls: Sequence[Call[Any]]) -> list[Any]:
        with self.lock:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.conninfo, autocommit=True)
            return PsycopgExecutor(self.conn).run(calls)

    def close(self) -> None:
        with self.lock:
            if self.conn is not None:
                self.conn.close()


def _conninfo_of(conn: psycopg.BaseConnection[Any]) -> str:
    """The caller's connection parameters, password included (conn.info.dsn leaves it out)."""
    opts = {o.keyword.decode(): o.val.decode() for o in conn.pgconn.info if o.val is not None}
    opts.pop("replication", None)
    return psycopg.conninfo.make_conninfo(**opts)


def _writer_for(conn: Any, reader: Executor, writer: Any) -> Executor | _OwnConnection:
    if writer is not None:
        return _OwnConnection(writer) if isinstance(writer, str) else executor_for(writer)
    if isinstance(reader, PoolExecutor):  # autocommit connections: each call commits on its own
        return reader.primary  # not a replica: a refresh reads back what it just stored
    if isinstance(reader, PsycopgExecutor):
        return _OwnConnection(_conninfo_of(reader.conn))
    if is_sqlalchemy(conn):
        raise TypeError("hush.OAuth over a SQLAlchemy connection needs writer=... (a DSN or a psycopg_pool pool) "
                        "for the token state it commits on its own")
    raise TypeError(f"hush.OAuth cannot derive its own connection from {type(conn).__name__}; pass writer=...")


def _scopes(scopes: Iterable[str] | str | None) -> list[str]:
    if scopes is None:
        return []
    return scopes.split() if isinstance(scopes, str) else list(scopes)


class OAuthBase:
    """The state and plumbing the parts of hush.OAuth share (its arguments: hush.OAuth)."""

    def __init__(self, conn: Any, tenant: str, *, writer: Any = None, skew: float = 60.0, lease_seconds: int = 60,
                 poll_interval: float = 0.05, state_ttl: int = 600, timeout: HTTPTimeout = 10.0, retries: int = 3,
                 backoff: float = 0.5, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, refresh_wait: float = 30.0) -> None:
        self.tenant = tenant
        self._read = executor_for(conn)
        self._write = _writer_for(conn, self._read, writer)
        self.skew = skew
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.state_ttl = state_ttl
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.clock = clock
        self.sleep = sleep
        self.refresh_wait = refresh_wait
        self._egress = EgressCache()  # the admin's egress policy, read again every 30 s at most

    def _r(self, call: Call[Any]) -> Any:
        return self._read.run([call])[0]

    def _w(self, call: Call[Any]) -> Any:
        return self._write.run([call])[0]

    def _http(self, config: Mapping[str, Any], client_secret: str | None) -> ProviderHTTP:
        return ProviderHTTP(config, client_secret, timeout=self.timeout, retries=self.retries, backoff=self.backoff,
                            sleep=self.sleep, egress=self._policy())

    def _policy(self) -> EgressPolicy:
        """Where requests may go (hush.oauth_egress_policy(), which only admins change), read on
        hush's own connection: never in a caller's transaction."""
        return self._egress.get(lambda: EgressPolicy.of(self._w(q.egress_policy())))

    def _egress_check(self, config: Mapping[str, Any], names: Iterable[str]) -> None:
        """EgressRefused (SH079) for an endpoint the policy refuses, before anything is stored
        or sent: plain http to a host not allowed it, an address not on the public internet."""
        policy = self._policy()
        for name in names:
            url = config.get(name)
            if url:
                try:
                    check_url(str(url), policy, browser=name == "authorization_endpoint")
                except Refused as e:
                    raise EgressRefused(f"{name}: {e}", host=e.host, reason=e.reason) from None

    def _store(self, tenant: str, provider: str, config: Mapping[str, Any], http: ProviderHTTP,
               response: Mapping[str, Any], grant_type: str, account: str | None, nonce: str | None,
               fallback_account: str = DEFAULT_ACCOUNT) -> TokenSet:
        # An ID token that cannot be verified is kept out and its sub names no account
        # (_oauth_response.py); one that fails verification refuses this new grant.
        response, claims, rejected = screen_id_token(
            checked(response), config, nonce, http.jwks, self.clock, refresh=False,
            where=f"tenant={tenant} provider={provider} account={account or fallback_account} {grant_type}")
        if not account:
            account = str(claims["sub"]) if claims else fallback_account
        stored = self._w(q.store_tokens(tenant, provider, account, grant_type, response))
        return self._token_set(provider, account, response, stored["expires_at"], claims, tenant, stored, rejected)

    def _token_set(self, provider: str, account: str, response: Mapping[str, Any], expires_at: datetime | None,
                   claims: dict[str, Any] | None = None, tenant: str | None = None,
                   stored: Mapping[str, Any] | None = None, rejected: str | None = None) -> TokenSet:
        # What the database kept: a row of hush.oauth_token, or a store's answer beside the response.
        kept = response if stored is None else stored
        scope = kept.get("scopes", response.get("scope"))
        return TokenSet(provider=provider, account=account, access_token=str(response["access_token"]),
                        token_type=response.get("token_type"), expires_at=expires_at,
                        scopes=tuple(_scopes(scope) if isinstance(scope, (str, list)) else ()),
                        refresh_token=response.get("refresh_token"), id_token=response.get("id_token"),
                        claims=claims, tenant=tenant or self.tenant, fields=dict(kept.get("fields") or {}),
                        secret_fields=dict(kept.get("secret_fields") or {}), id_token_rejected=rejected)

