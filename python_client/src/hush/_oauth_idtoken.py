"""ID token verification with joserfc (authlib's own authlib.jose is deprecated):
signature against the provider's JWKS, then iss, aud, azp, exp, iat and nonce."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ._errors import InvalidIdToken

# Asymmetric algorithms only: "none" and HS* (keyed with the client secret) are refused.
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
JWKS_TTL = 3600.0
LEEWAY = 60

_jwks_cache: dict[str, tuple[float, KeySet]] = {}
_jwks_lock = threading.Lock()


def _keyset(uri: str, fetch: Callable[[], dict[str, Any]], clock: Callable[[], float], fresh: bool) -> KeySet:
    with _jwks_lock:
        hit = _jwks_cache.get(uri)
    if hit is not None and not fresh and clock() - hit[0] < JWKS_TTL:
        return hit[1]
    keys = KeySet.import_key_set(fetch())  # type: ignore[arg-type]
    with _jwks_lock:
        _jwks_cache[uri] = (clock(), keys)
    return keys


def verify(id_token: str, config: Mapping[str, Any], nonce: str | None, fetch_jwks: Callable[[], dict[str, Any]],
           clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """The verified claims; InvalidIdToken (naming the check, never the token) otherwise."""
    issuer = config.get("issuer")
    if not issuer or not config.get("jwks_uri"):
        raise InvalidIdToken("an ID token came back, but the provider has no issuer and jwks_uri to verify it with",
                             hint="Register the provider with issuer_url (discovery), or give issuer and jwks_uri.")
    algorithms = [a for a in config.get("id_token_signing_alg_values_supported") or DEFAULT_ALGORITHMS
                  if a in DEFAULT_ALGORITHMS]
    uri = str(config["jwks_uri"])
    try:
        try:
            token = jwt.decode(id_token, _keyset(uri, fetch_jwks, clock, False), algorithms=algorithms)
        except JoseError:  # perhaps a key rotated in since the cached copy: fetch once more
            token = jwt.decode(id_token, _keyset(uri, fetch_jwks, clock, True), algorithms=algorithms)
    except (JoseError, ValueError) as e:
        raise InvalidIdToken(f"the ID token's signature does not verify against the provider's JWKS "
                             f"({type(e).__name__})", error="invalid_id_token") from None
    claims = dict(token.claims)
    checks: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "sub": {"essential": True},
        "aud": {"essential": True, "value": config["client_id"]},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    if nonce is not None:
        checks["nonce"] = {"essential": True, "value": nonce}
    try:
        jwt.JWTClaimsRegistry(now=lambda: int(clock()), leeway=LEEWAY, **checks).validate(claims)
    except JoseError as e:
        raise InvalidIdToken(f"the ID token fails verification: {e.description}", error="invalid_id_token") from None
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != config["client_id"]:
        raise InvalidIdToken("the ID token has several audiences and its azp is not this client",
                             error="invalid_id_token")
    return claims
