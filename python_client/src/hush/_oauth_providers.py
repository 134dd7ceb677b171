"""hush.OAuth's providers: register one (its endpoints given, or discovered from its
issuer), list them, look one up, discover again, remove one."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from . import _oauth_calls as q
from ._errors import InvalidArgument, OAuthProviderNotFound, masked
from ._oauth_base import AUTH_METHODS, OAuthBase
from ._oauth_extra import missing
from ._oauth_models import Provider

try:
    from ._oauth_client_auth import settings as jwt_settings
    from ._oauth_http import ENDPOINTS, discover
except ModuleNotFoundError as e:
    raise missing(e) from None


class Providers(OAuthBase):
    """Provider settings, client secrets sealed in the database."""

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

