"""HTTP to an OAuth provider: authlib's OAuth2Client over httpx. Never called
with a database transaction open (the callers in _oauth.py see to that).

Errors become hush's classes: the provider's OAuth error codes map to
AccessDenied, AuthorizationPending, SlowDown, ExpiredToken or OAuthError with
`.error` set; 5xx answers and transport failures are retried with exponential
backoff and end as ProviderUnavailable. No message carries a token, a client
secret or a password: only error codes, their descriptions and HTTP statuses.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

from authlib.integrations.httpx_client import OAuth2Client
from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

try:  # authlib speaks httpx2 (httpx's successor) when it is there, else httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

from ._errors import (AccessDenied, AuthorizationPending, ExpiredToken, OAuthError, ProviderUnavailable, SlowDown)

Sleep = Callable[[float], None]
ERRORS: dict[str, type[OAuthError]] = {
    "access_denied": AccessDenied, "authorization_pending": AuthorizationPending, "slow_down": SlowDown,
    "expired_token": ExpiredToken,
}
METADATA_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "userinfo_endpoint",
             "device_authorization_endpoint", "jwks_uri")


def oauth_error(error: str, description: str | None, status: int | None = None) -> OAuthError:
    cls = ERRORS.get(error, OAuthError)
    text = f"the provider answered {error}" + (f": {description}" if description else "")
    return cls(text, error=error, description=description, status=status)


class _Transient(Exception):
    def __init__(self, what: str, status: int | None = None) -> None:
        super().__init__(what)
        self.status = status


def _json(resp: Any, what: str) -> dict[str, Any]:
    if resp.status_code >= 500:
        raise _Transient(f"{what}: HTTP {resp.status_code}", resp.status_code)
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise oauth_error(body["error"], body.get("error_description"), resp.status_code)
    if resp.status_code >= 400 or not isinstance(body, dict):
        raise OAuthError(f"{what}: HTTP {resp.status_code}, not a JSON object", status=resp.status_code)
    return body


def discover(issuer: str, timeout: float) -> dict[str, Any]:
    """The provider's metadata: OpenID Connect discovery, else RFC 8414. Its `issuer`
    must be the one asked for (OIDC Discovery 4.3), or every later check is moot."""
    base = issuer.rstrip("/")
    last: Exception | None = None
    with httpx.Client(timeout=timeout) as http:
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

    def _client(self, **kw: Any) -> OAuth2Client:
        method = self.config.get("token_endpoint_auth_method") or "client_secret_basic"
        if self.client_secret is None:
            method = "none"
        return OAuth2Client(client_id=self.config["client_id"], client_secret=self.client_secret,
                            token_endpoint_auth_method=method, timeout=self.timeout, **kw)

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
        raise ProviderUnavailable(f"{failure} (after {attempts} attempts)", status=failure.status)

    def token(self, grant_type: str, params: Mapping[str, Any], retries: int | None = None) -> dict[str, Any]:
        """One token endpoint request; the response as a dict (errors raised typed)."""
        url = self.endpoint("token_endpoint")

        def call() -> dict[str, Any]:
            with self._client() as client:
                try:
                    return dict(client.fetch_token(url, grant_type=grant_type, **params))
                except AuthlibOAuthError as e:
                    raise oauth_error(e.error or "invalid_request", e.description) from None
                except httpx.HTTPStatusError as e:
                    if e.response.status_code >= 500:
                        raise _Transient(f"token endpoint: HTTP {e.response.status_code}",
                                         e.response.status_code) from None
                    raise OAuthError(f"token endpoint: HTTP {e.response.status_code}",
                                     status=e.response.status_code) from None
                except ValueError as e:
                    raise OAuthError(f"token endpoint: {e}") from None
        return self._retrying("token endpoint", call, retries)

    def _post(self, endpoint: str, data: Mapping[str, Any]) -> Any:
        with self._client() as client:
            method = client.token_endpoint_auth_method
            return client.post(self.endpoint(endpoint), data=dict(data), auth=client.client_auth(method),
                               headers={"Accept": "application/json"})

    def device_authorization(self, scopes: Sequence[str]) -> dict[str, Any]:
        data = {"scope": " ".join(scopes)} if scopes else {}
        return self._retrying("device authorization endpoint",
                              lambda: _json(self._post("device_authorization_endpoint", data),
                                            "device authorization endpoint"), None)

    def revoke(self, token: str, hint: str) -> None:
        """RFC 7009. A 200 is success whether or not the token was still valid."""
        def call() -> dict[str, Any]:
            resp = self._post("revocation_endpoint", {"token": token, "token_type_hint": hint})
            if resp.status_code >= 500:
                raise _Transient(f"revocation endpoint: HTTP {resp.status_code}", resp.status_code)
            if resp.status_code != 200:
                _json(resp, "revocation endpoint")  # raises the OAuth error it names
            return {}
        self._retrying("revocation endpoint", call, None)

    def userinfo(self, access_token: str) -> dict[str, Any]:
        url = self.endpoint("userinfo_endpoint")

        def call() -> dict[str, Any]:
            with httpx.Client(timeout=self.timeout) as http:
                resp = http.get(url, headers={"Authorization": f"Bearer {access_token}",
                                              "Accept": "application/json"})
            return _json(resp, "userinfo endpoint")
        return self._retrying("userinfo endpoint", call, None)

    def jwks(self) -> dict[str, Any]:
        url = self.endpoint("jwks_uri")

        def call() -> dict[str, Any]:
            with httpx.Client(timeout=self.timeout) as http:
                return _json(http.get(url), "jwks_uri")
        return self._retrying("jwks_uri", call, None)
