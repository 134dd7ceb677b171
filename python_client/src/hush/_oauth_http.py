"""HTTP to an OAuth provider: authlib's OAuth2Client over httpx. Never called
with a database transaction open (the callers in _oauth.py see to that).

Errors become hush's classes: the provider's OAuth error codes map to
AccessDenied, AuthorizationPending, SlowDown, ExpiredToken or OAuthError with
`.error` set; 5xx answers and transport failures are retried with exponential
backoff and end as ProviderUnavailable. No message carries a token, a client
secret or a password: only error codes, their descriptions and HTTP statuses.
"""
from __future__ import annotations

import email.utils
import os
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from authlib.integrations.httpx_client import OAuth2Client
from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

import httpx2 as httpx  # httpx's successor, which authlib's httpx integration uses

from ._errors import (AccessDenied, AuthorizationPending, ExpiredToken, OAuthError, ProviderUnavailable, SlowDown)

Sleep = Callable[[float], None]

# One connection pool for every provider call of this process: building an httpx
# client builds an SSL context (~50 ms here), and a pooled transport keeps
# connections to a provider alive between refreshes. Each call still gets a
# client of its own (authlib's keeps per-request token state), sharing it.
_transport: tuple[int, httpx.HTTPTransport] | None = None
_transport_lock = threading.Lock()


def transport() -> httpx.HTTPTransport:
    global _transport
    with _transport_lock:
        if _transport is None or _transport[0] != os.getpid():  # a forked child builds its own
            _transport = (os.getpid(), httpx.HTTPTransport())
        return _transport[1]


def _http(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=timeout, transport=transport())
ERRORS: dict[str, type[OAuthError]] = {
    "access_denied": AccessDenied, "authorization_pending": AuthorizationPending, "slow_down": SlowDown,
    "expired_token": ExpiredToken,
}
METADATA_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "userinfo_endpoint",
             "device_authorization_endpoint", "jwks_uri")


def redact(text: str | None, sent: Sequence[str | None]) -> str | None:
    """A provider's error text with anything hush sent it (a token, a code, a password, the
    client secret) blanked out: that text reaches last_error, audit rows and logs."""
    for value in sent:
        if text and value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def oauth_error(error: str, description: str | None, status: int | None = None) -> OAuthError:
    cls = ERRORS.get(error, OAuthError)
    text = f"the provider answered {error}" + (f": {description}" if description else "")
    return cls(text, error=error, description=description, status=status)


class _Transient(Exception):
    def __init__(self, what: str, status: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(what)
        self.status = status
        self.retry_after = retry_after


def retry_after(resp: Any) -> int | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date; None when absent or unreadable."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return min(int(value), 86400)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, min(86400, int(when.timestamp() - time.time())))


def _transient(what: str, resp: Any) -> _Transient:
    return _Transient(f"{what}: HTTP {resp.status_code}", resp.status_code, retry_after(resp))


def _json(resp: Any, what: str, sent: Sequence[str | None] = ()) -> dict[str, Any]:
    if resp.status_code >= 500 or resp.status_code == 429:
        raise _transient(what, resp)
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise oauth_error(body["error"], redact(body.get("error_description"), sent), resp.status_code)
    if resp.status_code >= 400 or not isinstance(body, dict):
        raise OAuthError(f"{what}: HTTP {resp.status_code}, not a JSON object", status=resp.status_code)
    return body


def discover(issuer: str, timeout: float) -> dict[str, Any]:
    """The provider's metadata: OpenID Connect discovery, else RFC 8414. Its `issuer`
    must be the one asked for (OIDC Discovery 4.3), or every later check is moot."""
    base = issuer.rstrip("/")
    last: Exception | None = None
    http = _http(timeout)  # on the pooled transport, which outlives it: not closed
    for path in METADATA_PATHS:
        try:
            resp = http.get(base + path)
        except httpx.TransportError as e:
            raise ProviderUnavailable(f"discovery at {base + path} failed: {type(e).__name__}") from None
        if resp.status_code == 404:
            last = OAuthError(f"no metadata at {base + path} (HTTP 404)", status=404)
            continue
        meta = _json(resp, f"discovery at {base + path}")
        if meta.get("issuer", "").rstrip("/") != base:
            raise OAuthError(f"the metadata at {base + path} names issuer {meta.get('issuer')!r}, "
                             f"not {issuer!r}", error="invalid_issuer")
        return meta
    assert last is not None
    raise last


class ProviderHTTP:
    """The HTTP calls of one provider, with its client id and secret."""

    def __init__(self, config: Mapping[str, Any], client_secret: str | None, *, timeout: float, retries: int,
                 backoff: float, sleep: Sleep = time.sleep) -> None:
        self.config = config
        self.client_secret = client_secret
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def _client(self) -> OAuth2Client:
        method = self.config.get("token_endpoint_auth_method") or "client_secret_basic"
        if self.client_secret is None:
            method = "none"
        return OAuth2Client(client_id=self.config["client_id"], client_secret=self.client_secret,
                            token_endpoint_auth_method=method, timeout=self.timeout, transport=transport())

    def endpoint(self, name: str) -> str:
        url = self.config.get(name)
        if not url:
            raise OAuthError(f"the provider has no {name} configured", error="unsupported",
                             hint=f"Register it with {name}=... (or an issuer_url whose metadata has it).")
        return str(url)

    def _retrying(self, what: str, fn: Callable[[], dict[str, Any]], retries: int | None) -> dict[str, Any]:
        attempts = max(1, self.retries if retries is None else retries)
        for attempt in range(attempts):
            try:
                return fn()
            except _Transient as e:
                failure: _Transient = e
            except httpx.TransportError as e:  # timeouts, refused connections
                failure = _Transient(f"{what}: {type(e).__name__}")
            if attempt + 1 < attempts:
                self.sleep(self.backoff * 2 ** attempt)
        raise ProviderUnavailable(f"{failure} (after {attempts} attempt{'s' if attempts > 1 else ''})",
                                  status=failure.status, retry_after=failure.retry_after)

    def token(self, grant_type: str, params: Mapping[str, Any], retries: int | None = None) -> dict[str, Any]:
        """One token endpoint request; the response as a dict (errors raised typed)."""
        url = self.endpoint("token_endpoint")

        def call() -> dict[str, Any]:
            client = self._client()  # not closed: that would close the shared transport
            try:
                return dict(client.fetch_token(url, grant_type=grant_type, **params))
            except AuthlibOAuthError as e:
                sent = [self.client_secret, *(v for v in params.values() if isinstance(v, str))]
                raise oauth_error(e.error or "invalid_request", redact(e.description, sent)) from None
            except httpx.HTTPStatusError as e:
                if e.response.status_code >= 500 or e.response.status_code == 429:
                    raise _transient("token endpoint", e.response) from None
                raise OAuthError(f"token endpoint: HTTP {e.response.status_code}",
                                 status=e.response.status_code) from None
            except ValueError as e:
                raise OAuthError(f"token endpoint: {e}") from None
        return self._retrying("token endpoint", call, retries)

    def _post(self, endpoint: str, data: Mapping[str, Any]) -> Any:
        client = self._client()
        method = client.token_endpoint_auth_method
        return client.post(self.endpoint(endpoint), data=dict(data), auth=client.client_auth(method),
                           headers={"Accept": "application/json"})

    def device_authorization(self, scopes: Sequence[str]) -> dict[str, Any]:
        data = {"scope": " ".join(scopes)} if scopes else {}
        return self._retrying("device authorization endpoint",
                              lambda: _json(self._post("device_authorization_endpoint", data),
                                            "device authorization endpoint", [self.client_secret]), None)

    def revoke(self, token: str, hint: str) -> None:
        """RFC 7009. A 200 is success whether or not the token was still valid."""
        def call() -> dict[str, Any]:
            resp = self._post("revocation_endpoint", {"token": token, "token_type_hint": hint})
            if resp.status_code >= 500:
                raise _transient("revocation endpoint", resp)
            if resp.status_code != 200:
                _json(resp, "revocation endpoint", [token, self.client_secret])  # raises the OAuth error it names
            return {}
        self._retrying("revocation endpoint", call, None)

    def userinfo(self, access_token: str) -> dict[str, Any]:
        url = self.endpoint("userinfo_endpoint")

        def call() -> dict[str, Any]:
            resp = _http(self.timeout).get(url, headers={"Authorization": f"Bearer {access_token}",
                                                         "Accept": "application/json"})
            return _json(resp, "userinfo endpoint", [access_token])
        return self._retrying("userinfo endpoint", call, None)

    def jwks(self) -> dict[str, Any]:
        url = self.endpoint("jwks_uri")

        def call() -> dict[str, Any]:
            return _json(_http(self.timeout).get(url), "jwks_uri")
        return self._retrying("jwks_uri", call, None)
