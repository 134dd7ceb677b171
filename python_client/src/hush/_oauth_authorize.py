"""hush.OAuth's authorization code flow (PKCE, state, nonce): the URL to send the
user to, and the callback that comes back, consumed once by the browser that started it."""
from __future__ import annotations

import secrets
from typing import Iterable, Mapping, Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

from . import _oauth_calls as q
from ._errors import InvalidArgument, InvalidCallback, OAuthStateInvalid
from ._oauth_base import _scopes
from ._oauth_extra import missing
from ._oauth_models import AuthorizationRequest, TokenSet
from ._oauth_providers import Providers

try:
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    from ._oauth_http import oauth_error
    from ._oauth_response import join_scopes, require_grant
except ModuleNotFoundError as e:
    raise missing(e) from None


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


class Authorization(Providers):
    """The authorization code grant, begun and completed."""

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
