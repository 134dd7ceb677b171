"""hush.OAuth's other grants: client credentials (reused from storage like any token),
the device flow (RFC 8628), resource owner password, and any grant by type."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from . import _oauth_calls as q
from ._errors import AuthorizationPending, ExpiredToken, OAuthConnectionNotFound, SlowDown
from ._oauth_base import DEVICE_GRANT, _scopes
from ._oauth_extra import missing
from ._oauth_models import DeviceAuthorization, TokenSet
from ._oauth_tokens import Tokens

try:
    from ._oauth_http import ProviderHTTP
    from ._oauth_response import join_scopes, require_grant
except ModuleNotFoundError as e:
    raise missing(e) from None

CLIENT_ACCOUNT = "@client"


class Grants(Tokens):
    """Tokens obtained without a browser redirect."""

    def _client(self, provider: str) -> tuple[dict[str, Any], ProviderHTTP]:
        client = self._w(q.provider(self.tenant, provider))
        return client["config"], self._http(client["config"], client["client_secret"])

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
