"""HTTP to an OAuth provider: authlib's OAuth2Client over httpx. Never called
with a database transaction open (the callers in _oauth.py see to that).

Errors become hush's classes: the provider's OAuth error codes map to
AccessDenied, AuthorizationPending, SlowDown, ExpiredToken or OAuthError with
`.error` set; 5xx answers and transport failures are retried with exponential
backoff and end as ProviderUnavailable. No message carries a token, a client
secret or a password: only error codes, their descriptions (redacted:
_oauth_redact.py) and HTTP statuses. A transport failure of any kind (refused,
timed out, no such name, TLS) reads "provider unreachable", and nothing of a
reply that is not an OAuth error is kept: a tenant's writer chooses the
endpoints, and what hush records must not tell it what answers inside the
network. Every request goes through the admin's egress policy
(_oauth_egress.py).
"""
from __future__ import annotations

import email.utils
import time
from typing import Any, Callable, Mapping, Sequence

from authlib.integrations.httpx_client import OAuth2Client
from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

import httpx2 as httpx  # httpx's successor, which authlib's httpx integration uses

from ._errors import (AccessDenied, AuthorizationPending, EgressRefused, ExpiredToken, OAuthError, ProviderUnavailable,
                      SlowDown)
from ._oauth_egress import EgressPolicy, Refused, transport
from ._oauth_redact import MAX_DESCRIPTION, Sent, error_code, redact
from ._oauth_client_auth import client_auth
from ._oauth_response import join_scopes

Sleep = Callable[[float], None]
# Seconds for every phase of a request, or an httpx.Timeout with connect and read apart (the worker).
HTTPTimeout = float | httpx.Timeout

UNREACHABLE = "provider unreachable"
# Requests go through one pooled transport per egress policy and process (_oauth_egress.py):
# building an httpx client builds an SSL context (~50 ms here), and a pooled transport keeps
# connections to a provider alive between refreshes. Each call still gets a client of its
# own (authlib's keeps per-request token state), sharing it.


def _http(timeout: HTTPTimeout, egress: EgressPolicy, sent: Sent | None = None) -> httpx.Client:
    hooks = {"request": [sent.hook]} if sent is not None else {}
    return httpx.Client(timeout=timeout, transport=transport(egress), event_hooks=hooks)


def _refused(what: str, e: Refused) -> EgressRefused:
    if e.at_connect:  # reads like any unreachable provider: whoever reads last_error learns no DNS
        return EgressRefused(f"{what}: {UNREACHABLE}", host=e.host, reason=e.reason)
    return EgressRefused(f"{what}: {e}", host=e.host, reason=e.reason, status=e.status)


def _shown(url: str) -> str:
    """A URL for a message: scheme, host, port and path; never its query (a code may be there)."""
    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(an unreadable URL)"
    return str(u.copy_with(query=None, fragment=None, username=None, password=None))


ERRORS: dict[str, type[OAuthError]] = {
    "access_denied": AccessDenied, "authorization_pending": AuthorizationPending, "slow_down": SlowDown,
    "expired_token": ExpiredToken,
}
METADATA_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "userinfo_endpoint",
             "device_authorization_endpoint", "jwks_uri")


def oauth_error(error: str, description: str | None, status: int | None = None) -> OAuthError:
    """The exception for an OAuth error reply. Callers pass the description redacted; it is cut
    here too, and an `error` that is no error code (RFC 6749 5.2) is not repeated."""
    error = error_code(error, ())
    description = description[:MAX_DESCRIPTION] if description else description
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


def _json(resp: Any, what: str, sent: Sequence[str | None] | Sent = ()) -> dict[str, Any]:
    if resp.status_code >= 500 or resp.status_code == 429:
        raise _transient(what, resp)
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        said = body.get("error_description")
        said = said if isinstance(said, str) else None
        if isinstance(sent, Sent):
            raise oauth_error(sent.error_code(body["error"]), sent.redact(said), resp.status_code)
        raise oauth_error(error_code(body["error"], sent), redact(said, sent), resp.status_code)
    if resp.status_code >= 400 or not isinstance(body, dict):
        raise OAuthError(f"{what}: HTTP {resp.status_code}, not a JSON object", status=resp.status_code)
    return body


def discover(issuer: str, timeout: HTTPTimeout, egress: EgressPolicy = EgressPolicy()) -> dict[str, Any]:
    """The provider's metadata: OpenID Connect discovery, else RFC 8414. Its `issuer`
    must be the one asked for (OIDC Discovery 4.3), or every later check is moot."""
    base = issuer.rstrip("/")
    last: Exception | None = None
    http = _http(timeout, egress)  # on the pooled transport, which outlives it: not closed
    for path in METADATA_PATHS:
        where = f"discovery at {_shown(base + path)}"
        try:
            resp = http.get(base + path)
        except Refused as e:
            raise _refused(where, e) from None
        except httpx.RequestError:
            raise ProviderUnavailable(f"{where}: {UNREACHABLE}") from None
        if resp.status_code == 404:
            last = OAuthError(f"no metadata at {_shown(base + path)} (HTTP 404)", status=404)
            continue
        meta = _json(resp, where)
        if meta.get("issuer", "").rstrip("/") != base:
            raise OAuthError(f"the metadata at {_shown(base + path)} names issuer "
                             f"{str(meta.get('issuer'))[:MAX_DESCRIPTION]!r}, not {issuer!r}", error="invalid_issuer")
        return meta
    assert last is not None
    raise last


class ProviderHTTP:
    """The HTTP calls of one provider, with its client id and secret."""

    def __init__(self, config: Mapping[str, Any], client_secret: str | None, *, timeout: HTTPTimeout, retries: int,
                 backoff: float, sleep: Sleep = time.sleep, egress: EgressPolicy = EgressPolicy()) -> None:
        self.config = config
        self.client_secret = client_secret
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.egress = egress  # none given: https to public addresses only
        self.sent = Sent(client_secret)  # what this provider was sent, which its replies must not repeat

    def _client(self) -> OAuth2Client:
        method = self.config.get("token_endpoint_auth_method") or "client_secret_basic"
        if self.client_secret is None:
            method = "none"
        client = OAuth2Client(client_id=self.config["client_id"], client_secret=self.client_secret,
                              token_endpoint_auth_method=method, timeout=self.timeout,
                              transport=transport(self.egress), event_hooks={"request": [self.sent.hook]})
        signed = client_auth(self.config, self.client_secret)  # private_key_jwt, client_secret_jwt
        if signed is not None:
            client.register_client_auth_method(signed)
        return client

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
            except Refused as e:  # the policy decides the same way next time: not retried
                raise _refused(what, e) from None
            except _Transient as e:
                failure: _Transient = e
            except httpx.RequestError:  # refused, timed out, no such name, TLS: alike on purpose (no oracle)
                failure = _Transient(f"{what}: {UNREACHABLE}")
            if attempt + 1 < attempts:
                self.sleep(self.backoff * 2 ** attempt)
        counted = f" (after {attempts} attempt{'s' if attempts > 1 else ''})" if failure.status is not None else ""
        raise ProviderUnavailable(f"{failure}{counted}", status=failure.status, retry_after=failure.retry_after)

    def token(self, grant_type: str, params: Mapping[str, Any], retries: int | None = None) -> dict[str, Any]:
        """One token endpoint request; the response as a dict (errors raised typed)."""
        url = self.endpoint("token_endpoint")

        def call() -> dict[str, Any]:
            client = self._client()  # not closed: that would close the shared transport
            try:
                return dict(client.fetch_token(url, grant_type=grant_type, **params))
            except AuthlibOAuthError as e:
                self.sent.values.extend(v for v in params.values() if isinstance(v, str))
                raise oauth_error(self.sent.error_code(e.error or "invalid_request"),
                                  self.sent.redact(e.description)) from None
            except httpx.HTTPStatusError as e:
                if e.response.status_code >= 500 or e.response.status_code == 429:
                    raise _transient("token endpoint", e.response) from None
                raise OAuthError(f"token endpoint: HTTP {e.response.status_code}",
                                 status=e.response.status_code) from None
            except UnicodeError:  # authlib form-encodes in ASCII (RFC 6749 A: tokens are ASCII too)
                raise OAuthError("token endpoint: a parameter is not ASCII, which hush cannot send") from None
            except ValueError:  # authlib's words may quote the reply: none of it is kept
                raise OAuthError("token endpoint: the response is not a JSON object") from None
        return self._retrying("token endpoint", call, retries)

    def _post(self, endpoint: str, data: Mapping[str, Any]) -> Any:
        client = self._client()
        method = client.token_endpoint_auth_method
        return client.post(self.endpoint(endpoint), data=dict(data), auth=client.client_auth(method),
                           headers={"Accept": "application/json"})

    def device_authorization(self, scopes: Sequence[str]) -> dict[str, Any]:
        data = {"scope": join_scopes(self.config, scopes)} if scopes else {}
        return self._retrying("device authorization endpoint",
                              lambda: _json(self._post("device_authorization_endpoint", data),
                                            "device authorization endpoint", self.sent), None)

    def revoke(self, token: str, hint: str) -> None:
        """RFC 7009. A 200 is success whether or not the token was still valid."""
        def call() -> dict[str, Any]:
            resp = self._post("revocation_endpoint", {"token": token, "token_type_hint": hint})
            if resp.status_code >= 500:
                raise _transient("revocation endpoint", resp)
            if resp.status_code != 200:
                self.sent.values.append(token)
                _json(resp, "revocation endpoint", self.sent)  # raises the OAuth error it names
            return {}
        self._retrying("revocation endpoint", call, None)

    def userinfo(self, access_token: str) -> dict[str, Any]:
        url = self.endpoint("userinfo_endpoint")

        def call() -> dict[str, Any]:
            resp = _http(self.timeout, self.egress, self.sent).get(
                url, headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
            return _json(resp, "userinfo endpoint", self.sent)
        return self._retrying("userinfo endpoint", call, None)

    def jwks(self) -> dict[str, Any]:
        url = self.endpoint("jwks_uri")

        def call() -> dict[str, Any]:
            return _json(_http(self.timeout, self.egress, self.sent).get(url), "jwks_uri", self.sent)
        return self._retrying("jwks_uri", call, None)
