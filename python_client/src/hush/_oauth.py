"""hush.OAuth: OAuth2/OIDC flows whose state (client secrets, pending
authorizations, tokens) lives in hush, sealed, per tenant.

Two rules shape this module. HTTP never runs inside a database transaction:
every flow reads what it needs, commits, calls the provider, then stores in a
second statement. And token state is committed on hush's own connection (the
client's pool, or a connection of its own next to yours), never inside your
transaction: a rollback after a refresh would lose a rotated refresh token.

Refresh is single-flight across threads and processes through the lease in
hush.oauth_connections (see plpython/hush_plpy/oauth.py): one caller claims it
in a committed UPDATE and calls the token endpoint; the others poll the claim
until new tokens are stored or the lease expires. This works behind
transaction-mode poolers: no session state, no lock held across a call.
"""
from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

import psycopg

from . import _oauth_calls as q
from ._calls import Call
from ._errors import (ExpiredToken, HushError, InvalidArgument, InvalidCallback, OAuthConnectionNotFound, OAuthError,
                      OAuthLeaseLost, OAuthProviderNotFound, OAuthReaderRefreshDisabled, OAuthRefreshUnanswered,
                      OAuthStateInvalid, ReauthorizationRequired, SlowDown, AuthorizationPending, EgressRefused,
                      masked)
from ._exec import Executor, PoolExecutor, PsycopgExecutor, executor_for, is_sqlalchemy
from ._log import logger
from ._oauth_db import code_of, transient
from ._oauth_extra import missing
from ._oauth_models import AuthorizationRequest, Connection, DeviceAuthorization, OAuthEvent, Provider, TokenSet

try:
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    from ._oauth_client_auth import JWT_METHODS, settings as jwt_settings
    from ._oauth_egress import EgressCache, EgressPolicy, Refused, check_url
    from ._oauth_http import ENDPOINTS, HTTPTimeout, ProviderHTTP, discover, oauth_error
    from ._oauth_response import checked, describe, join_scopes, refresh_grant, require_grant, screen_id_token
except ModuleNotFoundError as e:
    raise missing(e) from None

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none", *JWT_METHODS)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Seconds before each further attempt at storing a refresh whose store failed for a passing
# reason (a lock timeout, a lost connection): the provider may already have rotated the
# refresh token presented, so its answer is not dropped at the first failure.
STORE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)
CLIENT_ACCOUNT = "@client"
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


def _one(qs: dict[str, list[str]], key: str) -> str | None:
    values = qs.get(key)
    return values[0] if values else None


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _loopback_match(uri: str, registered: Sequence[str]) -> bool:
    """RFC 8252 7.3: a loopback redirect URI matches a registered one whatever its port
    (a command-line login listens on any free port)."""
    def key(u: str) -> tuple[str, str] | None:
        p = urlsplit(u)
        return (p.hostname or "", p.path) if p.scheme == "http" and p.hostname in LOOPBACK else None
    k = key(uri)
    return k is not None and any(key(r) == k for r in registered)


def _scopes(scopes: Iterable[str] | str | None) -> list[str]:
    if scopes is None:
        return []
    return scopes.split() if isinstance(scopes, str) else list(scopes)


class OAuth:
    """OAuth2/OIDC for one tenant: providers, authorizations, tokens.

    `conn` is where reads of a still-valid token run: the client's pool (its read
    pool, given hush.connect(read_dsn=...)), or a connection of yours (a psycopg
    Connection, whose open transaction the read joins, audit row included). Writes
    of token state commit on `writer`: by default the pool (the primary's), or a new
    connection with your connection's parameters.
    `clock` and `sleep` are injectable (tests, simulations); `skew` is how long
    before expiry a token counts as expired; `lease_seconds` bounds how long
    other callers wait for a refresh that died with its process. A reader of a
    tenant that keeps readers from refreshing (configure_tenant(reader_refresh =>
    false)) asks the worker instead and polls for up to `refresh_wait` seconds
    (OAuthRefreshUnanswered, SH078, after that).
    """

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

    def __repr__(self) -> str:
        return f"OAuth(tenant={self.tenant!r})"

    def close(self) -> None:
        """Close hush's own connection, if it opened one."""
        if isinstance(self._write, _OwnConnection):
            self._write.close()

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

    # -- providers -------------------------------------------------------------------

    def register_provider(self, name: str, *, client_id: str, client_secret: str | None = None,
                          issuer_url: str | None = None, authorization_endpoint: str | None = None,
                          token_endpoint: str | None = None, revocation_endpoint: str | None = None,
                          userinfo_endpoint: str | None = None, device_authorization_endpoint: str | None = None,
                          jwks_uri: str | None = None, issuer: str | None = None,
                          redirect_uris: Sequence[str] = (), scopes: Sequence[str] = (),
                          grant_types: Sequence[str] = ("authorization_code", "refresh_token"),
                          token_endpoint_auth_method: str = "client_secret_basic", use_pkce: bool = True,
                          authorize_params: Mapping[str, str] | None = None,
                          token_endpoint_auth_signing_alg: str | None = None,
                          token_endpoint_auth_kid: str | None = None, scope_separator: str = " ") -> Provider:
        """Register a provider (or replace its settings). With `issuer_url`, endpoints come from
        OIDC discovery (or RFC 8414 metadata); endpoints given explicitly win over discovered ones.
        The client secret is sealed in the database; it is never in a repr, log or audit row.
        With token_endpoint_auth_method 'private_key_jwt', client_secret is the private key (PEM,
        optionally with its certificate, or a JWK), sealed the same way, signing a short-lived
        assertion per request with `token_endpoint_auth_signing_alg` (default: RS256 for an RSA
        key, ES256 for P-256) under `token_endpoint_auth_kid`; 'client_secret_jwt' signs with
        the client secret (HS256). The key is checked here: InvalidArgument, nothing stored.
        `grant_types` are the grants hush may use with the provider, refresh_token for refreshes
        (any other: OAuthGrantNotEnabled, SH081, before a request is made); `scope_separator`
        joins the scopes sent and splits those granted (a space; Slack: ",")."""
        if token_endpoint_auth_method not in AUTH_METHODS:
            raise InvalidArgument(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
        if token_endpoint_auth_method != "none" and not client_secret:
            raise InvalidArgument(f"{token_endpoint_auth_method} needs a client_secret "
                                  "(use token_endpoint_auth_method='none' for a public client)")
        signing = jwt_settings(token_endpoint_auth_method, client_secret, token_endpoint_auth_signing_alg,
                               token_endpoint_auth_kid)
        explicit = {"authorization_endpoint": authorization_endpoint, "token_endpoint": token_endpoint,
                    "revocation_endpoint": revocation_endpoint, "userinfo_endpoint": userinfo_endpoint,
                    "device_authorization_endpoint": device_authorization_endpoint, "jwks_uri": jwks_uri}
        config: dict[str, Any] = {
            "client_id": client_id, "issuer_url": issuer_url, "issuer": issuer, "redirect_uris": list(redirect_uris),
            "scopes": list(scopes), "grant_types": list(grant_types), "scope_separator": scope_separator,
            "token_endpoint_auth_method": token_endpoint_auth_method if client_secret else "none",
            "use_pkce": use_pkce, "authorize_params": dict(authorize_params or {}), **signing}
        config.update(self._discovered(issuer_url) if issuer_url else {})
        config.update({k: v for k, v in explicit.items() if v})
        for endpoint in ENDPOINTS:
            config.setdefault(endpoint, None)
        if not config["token_endpoint"]:
            raise InvalidArgument("a provider needs a token_endpoint (or an issuer_url whose metadata names one)")
        self._egress_check(config, ("issuer_url", *ENDPOINTS))
        self._w(q.save_provider(self.tenant, name, config, client_secret))
        return Provider(name, config, bool(client_secret))

    def _discovered(self, issuer_url: str) -> dict[str, Any]:
        self._egress_check({"issuer_url": issuer_url}, ("issuer_url",))
        meta = discover(issuer_url, self.timeout, self._policy())
        found = {k: meta.get(k) for k in ENDPOINTS}
        found["issuer"] = meta["issuer"]
        found["id_token_signing_alg_values_supported"] = meta.get("id_token_signing_alg_values_supported")
        found["authorization_response_iss_parameter_supported"] = bool(
            meta.get("authorization_response_iss_parameter_supported"))
        found["discovered_at"] = self.clock()
        return found

    def register_providers(self, providers: Mapping[str, Mapping[str, Any]]) -> list[Provider]:
        """Several providers at once: {name: register_provider keyword arguments}."""
        return [self.register_provider(name, **dict(kw)) for name, kw in providers.items()]

    def refresh_discovery(self, name: str) -> Provider:
        """Fetch the provider's metadata again (endpoints, keys' location, algorithms)."""
        client = self._w(q.provider(self.tenant, name))
        config = dict(client["config"])
        if not config.get("issuer_url"):
            raise InvalidArgument(f"provider {name!r} was registered without an issuer_url")
        config.update(self._discovered(config["issuer_url"]))
        self._egress_check(config, ENDPOINTS)
        self._w(q.save_provider(self.tenant, name, config, client["client_secret"]))
        return Provider(name, config, client["client_secret"] is not None)

    def providers(self) -> list[Provider]:
        """The tenant's providers; never a client secret."""
        result: list[Provider] = self._r(q.providers(self.tenant))
        return result

    def provider(self, name: str) -> Provider:
        for p in self.providers():
            if p.name == name:
                return p
        raise OAuthProviderNotFound(f"OAuth provider {masked(name)} is not registered in tenant {self.tenant}")

    def remove_provider(self, name: str) -> bool:
        """Remove a provider with its connections (tokens are not revoked: revoke() them first)."""
        return bool(self._w(q.remove_provider(self.tenant, name)))

    # -- authorization code + PKCE ---------------------------------------------------

    def start_authorization(self, provider: str, scopes: Iterable[str] | str | None = None,
                            redirect_uri: str | None = None, account: str | None = None,
                            params: Mapping[str, str] | None = None) -> AuthorizationRequest:
        """The URL to send the user to, its state, and the binding to keep in the user's browser
        session (an HttpOnly, Secure, SameSite=Lax cookie) for complete_authorization. PKCE
        S256, state and (for openid) a nonce; the verifier and nonce are stored sealed, single
        use, for `state_ttl` seconds, with the binding's SHA-256."""
        config = self.provider(provider).config
        require_grant(config, provider, "authorization_code")
        endpoint = config.get("authorization_endpoint")
        if not endpoint:
            raise InvalidArgument(f"provider {provider!r} has no authorization_endpoint")
        self._egress_check(config, ("authorization_endpoint",))  # the browser's request: https too
        uris = config.get("redirect_uris") or []
        redirect_uri = redirect_uri or (uris[0] if uris else None)
        if not redirect_uri:
            raise InvalidArgument(f"provider {provider!r} has no redirect URI: register one or pass redirect_uri")
        if uris and redirect_uri not in uris and not _loopback_match(redirect_uri, uris):
            raise InvalidArgument(f"redirect_uri is not one of provider {provider!r}'s redirect_uris")
        wanted = _scopes(scopes) or list(config.get("scopes") or [])
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32) if "openid" in wanted else None
        verifier = secrets.token_urlsafe(64) if config.get("use_pkce", True) else None
        binding = secrets.token_urlsafe(32)
        self._w(q.begin(self.tenant, provider, state, verifier, nonce, redirect_uri, wanted, account, self.state_ttl,
                        binding))
        query: dict[str, str] = {"response_type": "code", "client_id": config["client_id"],
                                 "redirect_uri": redirect_uri, "state": state}
        if wanted:
            query["scope"] = join_scopes(config, wanted)
        if nonce:
            query["nonce"] = nonce
        if verifier:
            query.update(code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256")
        query.update(config.get("authorize_params") or {})
        query.update(params or {})
        return AuthorizationRequest(endpoint + ("&" if "?" in endpoint else "?") + urlencode(query), state, binding)

    def complete_authorization(self, callback_url: str, *, binding: str | None) -> TokenSet:
        """Handle the redirect back: the state is consumed exactly once (whatever the tenant that
        started it; the tokens are stored there) if `binding` is the one start_authorization gave
        for it, read back from the browser's session: else AuthorizationBindingMismatch (SH080;
        None, when the browser has none, too), and the authorization stays pending for its own
        browser. `error=` is raised typed, `iss` is checked (RFC 9207), the code exchanged with
        the PKCE verifier, the ID token verified."""
        qs = parse_qs(urlsplit(callback_url).query)
        state = _one(qs, "state")
        if not state:
            raise InvalidCallback("the callback carries no state", error="invalid_request")
        cb = self._w(q.consume(state, binding))
        if cb["expired"]:
            raise OAuthStateInvalid("this OAuth authorization expired before its callback came back",
                                    sqlstate="SH073", hint="Start the authorization again.")
        config = cb["config"]
        error = _one(qs, "error")
        if error:
            raise oauth_error(error, _one(qs, "error_description"))
        iss = _one(qs, "iss")
        expected = config.get("issuer")
        if (iss is not None and expected and iss != expected) or (
                iss is None and config.get("authorization_response_iss_parameter_supported")):
            raise InvalidCallback(f"the callback's iss is {iss!r}, not the provider's issuer {expected!r} "
                                  "(RFC 9207: a mix-up attack, or a misconfigured provider)", error="invalid_issuer")
        code = _one(qs, "code")
        if not code:
            raise InvalidCallback("the callback carries neither a code nor an error", error="invalid_request")
        params = {"code": code, "redirect_uri": cb["redirect_uri"]}
        if cb["code_verifier"]:
            params["code_verifier"] = cb["code_verifier"]
        require_grant(config, cb["provider"], "authorization_code")
        http = self._http(config, cb["client_secret"])
        response = http.token("authorization_code", params)
        return self._store(cb["tenant_id"], cb["provider"], config, http, response, "authorization_code",
                           cb["account"], cb["nonce"])

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

    def _client(self, provider: str) -> tuple[dict[str, Any], ProviderHTTP]:
        client = self._w(q.provider(self.tenant, provider))
        return client["config"], self._http(client["config"], client["client_secret"])

    # -- other grants ------------------------------------------------------------------

    def client_credentials(self, provider: str, scopes: Iterable[str] | str | None = None) -> TokenSet:
        """A client credentials token, reused from storage until it nears expiry (then one
        caller fetches a new one, single-flight like a refresh)."""
        wanted = sorted(_scopes(scopes))
        account = CLIENT_ACCOUNT + (":" + " ".join(wanted) if wanted else "")
        try:  # looked up on hush's own connection: a miss must not abort a caller's transaction
            return self._valid(provider, account, own=True)
        except OAuthConnectionNotFound:
            pass
        config, http = self._client(provider)
        require_grant(config, provider, "client_credentials")
        response = http.token("client_credentials", {"scope": join_scopes(config, wanted)} if wanted else {})
        return self._store(self.tenant, provider, config, http, response, "client_credentials", account, None)

    def start_device_authorization(self, provider: str, scopes: Iterable[str] | str | None = None,
                                   account: str | None = None) -> DeviceAuthorization:
        """RFC 8628: a user code to show and where to enter it."""
        config, http = self._client(provider)
        require_grant(config, provider, DEVICE_GRANT)
        wanted = _scopes(scopes) or list(config.get("scopes") or [])
        r = http.device_authorization(wanted)
        expires_in = int(r.get("expires_in") or 600)
        return DeviceAuthorization(device_code=r["device_code"], user_code=r["user_code"],
                                   verification_uri=r.get("verification_uri") or r.get("verification_url", ""),
                                   verification_uri_complete=r.get("verification_uri_complete"),
                                   expires_in=expires_in, interval=int(r.get("interval") or 5),
                                   expires_at=self.clock() + expires_in, scopes=tuple(wanted), account=account)

    def poll_device_token(self, provider: str, device: DeviceAuthorization) -> TokenSet:
        """One poll: the tokens, or AuthorizationPending, SlowDown, ExpiredToken, AccessDenied."""
        config, http = self._client(provider)
        require_grant(config, provider, DEVICE_GRANT)
        response = http.token(DEVICE_GRANT, {"device_code": device.device_code}, retries=1)
        return self._store(self.tenant, provider, config, http, response, DEVICE_GRANT, device.account, None)

    def wait_for_device_token(self, provider: str, device: DeviceAuthorization,
                              on_pending: Callable[[int], None] | None = None) -> TokenSet:
        """Poll every `interval` seconds (5 more after each slow_down) until the user approves
        (the tokens), denies (AccessDenied) or the code expires (ExpiredToken)."""
        interval = device.interval
        while True:
            if self.clock() >= device.expires_at:
                raise ExpiredToken("the device code expired before the user finished", error="expired_token")
            self.sleep(interval)
            try:
                return self.poll_device_token(provider, device)
            except SlowDown:
                interval += 5
            except AuthorizationPending:
                pass
            if on_pending is not None:
                on_pending(interval)

    def password_grant(self, provider: str, username: str, password: str,
                       scopes: Iterable[str] | str | None = None, account: str | None = None) -> TokenSet:
        """Resource owner password credentials (legacy; avoid where another grant will do). The
        password goes to the token endpoint only: never stored, logged or audited."""
        config, http = self._client(provider)
        require_grant(config, provider, "password")
        params = {"username": username, "password": password}
        if scopes:
            params["scope"] = join_scopes(config, _scopes(scopes))
        response = http.token("password", params)
        return self._store(self.tenant, provider, config, http, response, "password", account, None,
                           fallback_account=username)

    def grant(self, provider: str, grant_type: str, params: Mapping[str, str], account: str | None = None) -> TokenSet:
        """Any other grant by type, e.g. RFC 8693 token exchange or RFC 7523 JWT bearer."""
        config, http = self._client(provider)
        require_grant(config, provider, grant_type)
        response = http.token(grant_type, dict(params))
        return self._store(self.tenant, provider, config, http, response, grant_type, account, None)

    # -- tokens --------------------------------------------------------------------------

    def _valid(self, provider: str, account: str | None, force: bool = False, own: bool = False) -> TokenSet:
        row = (self._w if own else self._r)(q.token(self.tenant, provider, account))
        if not force and (row["valid_for"] is None or row["valid_for"] > self.skew):
            return self._token_set(provider, row["account"], row, row["expires_at"])
        return self._refresh(provider, row["account"], row["generation"])

    def access_token(self, provider: str, account: str | None = None) -> str:
        """A valid access token, refreshed first when it expires within `skew` seconds. Any
        number of threads and processes asking at once cause one refresh request."""
        return self._valid(provider, account).access_token

    def token(self, provider: str, account: str | None = None) -> TokenSet:
        """Like access_token(), with the expiry, scopes and account."""
        return self._valid(provider, account)

    def refresh(self, provider: str, account: str | None = None) -> TokenSet:
        """Refresh now, whatever the expiry (single-flight all the same)."""
        return self._valid(provider, account, force=True)

    def _refresh(self, provider: str, account: str, generation: int) -> TokenSet:
        # A label, which audit rows show; the lease itself is the token the claim returns.
        holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{secrets.token_hex(4)}"
        while True:
            try:
                lease = self._w(q.claim(self.tenant, provider, account, holder, self.lease_seconds, generation))
            except OAuthReaderRefreshDisabled:
                return self._requested(provider, account, generation)
            outcome = lease["outcome"]
            if outcome == "claimed":
                return self._refresh_claimed(provider, account, lease["lease_token"], lease)
            if outcome == "fresh":  # another caller refreshed meanwhile: its tokens, read committed
                row = self._w(q.token(self.tenant, provider, account))
                return self._token_set(provider, account, row, row["expires_at"])
            if outcome == "needs_reauth":
                raise ReauthorizationRequired(f"account {account!r} of tenant {self.tenant} at OAuth provider "
                                              f"{provider!r} must authorize again", sqlstate="SH074")
            self.sleep(self.poll_interval)  # leased: someone is refreshing right now

    def _requested(self, provider: str, account: str, generation: int) -> TokenSet:
        """For a reader that may not refresh (SH077): ask the worker (hush.oauth_request_refresh,
        an empty NOTIFY wakes it), then poll the stored token (no LISTEN: it must work through
        a transaction pooler) until its generation moves, for up to `refresh_wait` seconds. A
        request within a minute of the last refresh is not recorded: that token is the answer."""
        asked = self._w(q.request_refresh(self.tenant, provider, account))
        current = asked["generation"] if asked["requested"] else generation + 1  # not asked: read it now
        deadline = self.clock() + self.refresh_wait
        pause = self.poll_interval
        row: dict[str, Any] | None = None
        while current == generation:
            if self.clock() >= deadline:
                raise OAuthRefreshUnanswered(
                    f"nobody answered the refresh request for account {account!r} of tenant {self.tenant} at OAuth "
                    f"provider {provider!r} within {self.refresh_wait:g} s: is hush oauth-worker running and "
                    "serving this tenant?", sqlstate="SH078",
                    hint="This tenant keeps readers from refreshing tokens (reader_refresh => false): the worker "
                         "or a writer must.")
            self.sleep(max(0.0, min(pause, deadline - self.clock())))
            pause = min(pause * 2, 1.0)  # each poll is an audited token read: they thin out
            row = self._w(q.token(self.tenant, provider, account))  # SH074 once the worker finds it dead
            current = row["generation"]
        if row is None:  # it had moved on before the request
            row = self._w(q.token(self.tenant, provider, account))
        return self._token_set(provider, account, row, row["expires_at"])

    def _refresh_claimed(self, provider: str, account: str, lease_token: str, lease: dict[str, Any],
                         answered: Callable[[], None] | None = None) -> TokenSet:
        # `answered`: called once the provider has answered (or failed), before the result is
        # stored; the worker frees the provider host's slot there, not after the database work.
        response, claims, rejected = self._refresh_request(provider, account, lease_token, lease, answered)
        finish = q.finish(self.tenant, provider, account, lease_token, lease["generation"], response)
        for attempt in range(len(STORE_RETRY_DELAYS) + 1):
            try:
                stored = self._w(finish)
                break
            except OAuthLeaseLost:  # our lease expired and another caller stored first: theirs stands
                row = self._w(q.token(self.tenant, provider, account))
                return self._token_set(provider, account, row, row["expires_at"])
            except (HushError, psycopg.Error) as e:
                if transient(e) and attempt < len(STORE_RETRY_DELAYS):
                    self.sleep(STORE_RETRY_DELAYS[attempt])
                    continue
                # Not left silently: the failure is recorded on the connection (never a token).
                code = code_of(e)
                logger.error("tenant=%s provider=%s account=%s: the provider answered the refresh, and its tokens "
                             "could not be stored [%s]; the refresh token it replaced may be spent", self.tenant,
                             provider, account, code)
                self._release_failed(provider, account, lease_token, lease["generation"],
                                     f"the provider answered, and its tokens could not be stored [{code}]", False,
                                     None)
                raise
        return self._token_set(provider, account, response, stored["expires_at"], claims, stored=stored,
                               rejected=rejected)

    def _release_failed(self, provider: str, account: str, lease_token: str, generation: int, error: str,
                        reauth: bool, retry_after: int | None) -> None:
        """Give the lease back with the failure recorded, if the database takes it: best effort
        (a row locked elsewhere, the database gone), logged, and the lease then runs out on its
        own; the failure being reported is what the caller sees."""
        try:
            self._w(q.release(self.tenant, provider, account, lease_token, generation, error, reauth, retry_after))
        except OAuthLeaseLost:  # superseded once it ran out: the failure is the new holder's to find
            pass
        except (HushError, psycopg.Error) as e:
            logger.warning("tenant=%s provider=%s account=%s: the failed refresh could not be recorded [%s]; its "
                           "lease runs out", self.tenant, provider, account, code_of(e))

    def _refresh_request(self, provider: str, account: str, lease_token: str, lease: dict[str, Any],
                         answered: Callable[[], None] | None = None
                         ) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        """The refresh request of a claimed lease: the response to store under it (with the
        ID token's claims, or why it was kept out). A failure gives the lease back, recorded
        (invalid_grant: ReauthorizationRequired), and raises. The worker stores the response
        with others (_oauth_batch.py), hence the split."""
        config, generation = lease["config"], lease["generation"]
        http = self._http(config, lease["client_secret"])
        try:
            require_grant(config, provider, refresh_grant(lease["grant_type"]))
            if lease["grant_type"] == "client_credentials":
                scopes = lease["scopes"] or []
                response = http.token("client_credentials", {"scope": join_scopes(config, scopes)} if scopes else {})
            elif lease["refresh_token"]:
                response = http.token("refresh_token", {"refresh_token": lease["refresh_token"]})
            else:
                raise ReauthorizationRequired(f"account {account!r} at OAuth provider {provider!r} has no refresh "
                                              "token; it must authorize again", sqlstate="SH074")
            response = checked(response)  # expires_in out of bounds: a failed refresh, recorded
        except BaseException as e:
            if answered is not None:
                answered()
            reauth = isinstance(e, ReauthorizationRequired) or (
                isinstance(e, OAuthError) and e.error == "invalid_grant")
            self._release_failed(provider, account, lease_token, generation, describe(e), reauth,
                                 getattr(e, "retry_after", None))
            if reauth and not isinstance(e, ReauthorizationRequired):
                raise ReauthorizationRequired(f"OAuth provider {provider!r} refused the refresh token of account "
                                              f"{account!r} (invalid_grant): it must authorize again",
                                              sqlstate="SH074") from None
            raise
        if answered is not None:
            answered()
        # The provider has issued these tokens (and may have spent the refresh token presented):
        # an ID token that does not verify is kept out, never the tokens with it.
        screened, claims, rejected = screen_id_token(
            response, config, None, http.jwks, self.clock, refresh=True,
            where=f"tenant={self.tenant} provider={provider} account={account} refresh")
        return dict(screened), claims, rejected

    def refresh_leased(self, provider: str, account: str, lease_token: str, generation: int) -> TokenSet | None:
        """For a worker that leased this connection (hush.oauth_worker_claim, whose row carries
        `lease_token`): refresh it now, under that lease (renewed for the request). None when it
        moved on meanwhile (an on-demand caller refreshed it, or claimed it once it ran out)."""
        try:
            lease = self._w(q.claim(self.tenant, provider, account, lease_token, self.lease_seconds, generation))
        except OAuthLeaseLost:
            return None
        if lease["outcome"] != "claimed":
            return None
        return self._refresh_claimed(provider, account, lease_token, lease)

    def release_lease(self, provider: str, account: str, lease_token: str, generation: int) -> bool:
        """Give back a lease without refreshing (a worker stopping): nothing is recorded. False
        when it is no longer this token's (it ran out and another call claimed it, or stored tokens)."""
        try:
            return bool(self._w(q.release(self.tenant, provider, account, lease_token, generation, None, False)))
        except OAuthLeaseLost:
            return False

    def events(self, since: datetime | None = None, max_rows: int = 1000) -> list[OAuthEvent]:
        """The tenant's OAuth events (refresh_failed, needs_reauth, recovered), oldest first."""
        result: list[OAuthEvent] = self._r(q.events(self.tenant, since, max_rows))
        return result

    def revoke(self, provider: str, account: str | None = None) -> bool:
        """Revoke at the provider (RFC 7009: the refresh token, then the access token), then erase
        the tokens here. Returns False when the provider has no revocation endpoint (erased all
        the same)."""
        t = self._w(q.connection_tokens(self.tenant, provider, account))
        revocable = bool(t["config"].get("revocation_endpoint"))
        if revocable:
            http = self._http(t["config"], t["client_secret"])
            if t["refresh_token"]:
                http.revoke(t["refresh_token"], "refresh_token")
            if t["access_token"]:
                http.revoke(t["access_token"], "access_token")
        self._w(q.disconnect(self.tenant, provider, t["account"]))
        return revocable

    def userinfo(self, provider: str, account: str | None = None) -> dict[str, Any]:
        """The OIDC userinfo of an account (with a valid access token, refreshed if need be)."""
        config = self.provider(provider).config
        return self._http(config, None).userinfo(self.access_token(provider, account))

    def connections(self, provider: str | None = None) -> list[Connection]:
        """Connections with status, expiry, scopes and last error; never a token."""
        result: list[Connection] = self._r(q.connections(self.tenant, provider))
        return result
