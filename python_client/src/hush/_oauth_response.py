"""What hush.OAuth does with a provider's settings before a request and with
a token response before it is stored. Which members of a response
are secret is the server's rule alone (plpython/hush_plpy/oauth_response.py);
this side decides only what the server cannot:

- grant types: the provider's config enables the grants hush may use with it
  (`grant_types`); anything else is refused before any request (SH081, as the
  server refuses storing such tokens). A config without the list (a provider
  saved from SQL before 0.5.0) allows any, as it always did.
- scopes are sent joined with the provider's `scope_separator` (a space; Slack
  wants commas).
- expires_in: 1 s to ten years, or none (a token that does not expire). 0 or
  less is a provider error, recorded like any failed refresh: stored, such a
  token would be due again at once, round after round.
- ID tokens: one that verifies is kept, with its claims. One that cannot be
  verified (the provider has no issuer and jwks_uri to verify it against) is
  kept out, never stored, and its `sub` never names the account; the reason
  is logged on the `hush` logger and given as TokenSet.id_token_rejected. One
  that fails verification refuses a new grant (it authenticates that login,
  its nonce binds it to this one; nothing is stored), but a refresh keeps the
  tokens the provider has issued and keeps the ID token out: the provider may
  already have spent the refresh token presented, and throwing the new ones
  away would strand the connection (the next refresh: invalid_grant).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from ._errors import HushError, OAuthError, OAuthGrantNotEnabled
from ._log import logger
from ._oauth_idtoken import verify

# As the server's bound (plpython/hush_plpy/oauth_response.py): ten years.
MAX_EXPIRES_IN = 315360000
NOT_VERIFIABLE = "the provider has no issuer and jwks_uri to verify it against"



def describe(e: BaseException) -> str:
    """What a failure may record or log: hush's messages (codes, statuses, the provider's
    description with what was sent blanked out), else the exception's class, never its text."""
    return e.message if isinstance(e, HushError) else type(e).__name__

def require_grant(config: Mapping[str, Any], provider: str, grant_type: str) -> None:
    """OAuthGrantNotEnabled (SH081) unless the provider's config enables grant_type."""
    allowed = config.get("grant_types")
    if not isinstance(allowed, list) or grant_type in allowed:  # no list: saved before 0.5.0 checked one
        return
    raise OAuthGrantNotEnabled(f"grant type {grant_type!r} is not enabled for OAuth provider {provider!r} (its "
                               f"grant_types: {', '.join(map(str, allowed))})",
                               hint="Register the provider again with it in grant_types (register_provider("
                                    "grant_types=...), hush oauth provider add --grant-type).")


def refresh_grant(connection_grant: str | None) -> str:
    """The grant a refresh of a connection uses: client credentials are fetched again."""
    return "client_credentials" if connection_grant == "client_credentials" else "refresh_token"


def join_scopes(config: Mapping[str, Any], scopes: Iterable[str]) -> str:
    """Scopes as the provider reads them: space-separated (RFC 6749 3.3), or its scope_separator."""
    return str(config.get("scope_separator") or " ").join(scopes)


def checked(response: Mapping[str, Any]) -> dict[str, Any]:
    """The response as hush stores it; OAuthError when its expires_in is out of bounds."""
    out = dict(response)
    value = out.get("expires_in")
    if value is None:
        return out
    number: float | None = None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    if number is None or not 1 <= number <= MAX_EXPIRES_IN:
        # A number is shown; anything else only by its type: that text reaches last_error and logs.
        shown = repr(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (
            f"a {type(value).__name__}")
        raise OAuthError(f"the token endpoint answered expires_in {shown[:24]}: hush keeps tokens that expire "
                         f"in 1 s to ten years, or that do not expire (no expires_in); nothing was stored")
    # authlib's OAuth2Token adds expires_at from expires_in on this host's clock; the database
    # keeps its own (and a provider's that said the same again would say nothing new).
    out.pop("expires_at", None)
    return out


def screen_id_token(response: dict[str, Any], config: Mapping[str, Any], nonce: str | None,
                    fetch_jwks: Callable[[], dict[str, Any]], clock: Callable[[], float], *, refresh: bool,
                    where: str) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """(the response to store, the ID token's verified claims, why it was kept out)."""
    id_token = response.get("id_token")
    if not isinstance(id_token, str):
        return response, None, None
    if not config.get("issuer") or not config.get("jwks_uri"):
        reason = NOT_VERIFIABLE
    else:
        try:
            return response, verify(id_token, config, nonce, fetch_jwks, clock), None
        except Exception as e:
            if not refresh:
                raise
            # InvalidIdToken, or the JWKS out of reach: its message names the check, never the token.
            reason = describe(e)
    logger.warning("OAuth %s: the provider's ID token was kept out (not stored): %s", where, reason)
    return {k: v for k, v in response.items() if k != "id_token"}, None, reason
