"""Client authentication with a signed JWT (RFC 7523 section 2.2, OpenID Connect Core 9):
`private_key_jwt` (the client's private key: RSA, EC or Ed25519) and `client_secret_jwt`
(an HMAC keyed with the client secret), what Entra ID and Okta recommend for
confidential clients.

The key is what register_provider calls client_secret: hush seals it in the provider
row like a client secret and releases it to this process on the same audited reads.
Every request that authenticates the client (token, revocation, device authorization)
carries a fresh assertion signed here, with authlib's PrivateKeyJWT / ClientSecretJWT:
the one signature the client makes (crypto otherwise lives in the server; this is
the exception, since an assertion is made per request, at HTTP time, and lives
seconds). Errors name the problem, never the key or a part of it.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT
from authlib.oauth2.rfc7523.assertion import sign_jwt_bearer_assertion
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwk

from ._errors import InvalidArgument, masked

PRIVATE_KEY_JWT = "private_key_jwt"
CLIENT_SECRET_JWT = "client_secret_jwt"
JWT_METHODS = (PRIVATE_KEY_JWT, CLIENT_SECRET_JWT)
ALG = "token_endpoint_auth_signing_alg"  # the provider config's keys (RFC 7591's name for the first)
KID = "token_endpoint_auth_kid"
# An assertion is a bearer credential until it expires (a provider that keeps no jti list
# would take it twice): valid for a minute, enough for the retries of one request.
LIFETIME = 60

# alg -> (key type, curve or minimum key size)
RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGS = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
HMAC_ALGS = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 3.2: a key at least the hash's size
ASYMMETRIC_ALGS = (*RSA_ALGS, *EC_ALGS, "EdDSA")
MIN_RSA_BITS = 2048

_KID = re.compile(r"[\x21-\x7e]{1,256}")
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.S)
_CURVES = {ec.SECP256R1: "P-256", ec.SECP384R1: "P-384", ec.SECP521R1: "P-521"}


def _refuse(what: str, hint: str | None = None) -> InvalidArgument:
    return InvalidArgument(what, hint=hint or "Give the private key as client_secret: a PEM (PKCS#8, PKCS#1 or "
                                               "SEC1, unencrypted, optionally followed by its certificate) or "
                                               "a JWK (JSON) with its private part.")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Signer:
    """A loaded signing key, its alg and the assertion's header (kid; x5t and x5t#S256 when a
    certificate came with the key, which is how Entra ID finds it). No repr of the key."""
    key: Any = field(repr=False)
    alg: str
    header: Mapping[str, str]


def _pem_key(text: str) -> tuple[Any, dict[str, str]]:
    blocks = {m.group(1): m.group(0) for m in _PEM.finditer(text)}
    if "ENCRYPTED PRIVATE KEY" in blocks:
        raise _refuse("the private key is encrypted (a passphrase-protected PEM)",
                      hint="Store it decrypted (openssl pkey -in key.pem -out plain.pem): hush seals it itself.")
    found = [b for name, b in blocks.items() if name.endswith("PRIVATE KEY")]
    if not found:
        public = any(name.endswith("PUBLIC KEY") or name == "CERTIFICATE" for name in blocks)
        raise _refuse("this PEM holds a public key or certificate only, not the private key" if public
                      else "this is not a PEM private key")
    try:
        raw = serialization.load_pem_private_key(found[0].encode(), password=None)
    except (ValueError, TypeError):  # their text could quote the input: not passed on
        raise _refuse("the private key does not load (a damaged or unsupported PEM)") from None
    header: dict[str, str] = {}
    if "CERTIFICATE" in blocks:
        try:
            cert = x509.load_pem_x509_certificate(blocks["CERTIFICATE"].encode())
        except ValueError:
            raise _refuse("the certificate in the PEM does not load") from None
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if cert.public_key().public_bytes(*spki) != raw.public_key().public_bytes(*spki):
            raise _refuse("the certificate in the PEM is not the private key's",
                          hint="Give the key with its own certificate (the one registered at the provider).")
        der = cert.public_bytes(serialization.Encoding.DER)
        header = {"x5t#S256": _b64(hashlib.sha256(der).digest()), "x5t": _b64(cert.fingerprint(hashes.SHA1()))}
    return raw, header


def _jwk_type(raw: Any) -> Literal["RSA", "EC", "OKP"]:
    if isinstance(raw, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(raw, ec.EllipticCurvePrivateKey):
        return "EC"
    if isinstance(raw, ed25519.Ed25519PrivateKey):
        return "OKP"
    raise _refuse("the private key is of a kind hush cannot sign with (RSA, EC P-256/P-384/P-521 and Ed25519 "
                  "can)")


def _private_key(secret: str) -> tuple[Any, dict[str, str], str | None, str | None]:
    """The joserfc key, the certificate's headers, and a JWK's own kid and alg."""
    text = secret.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise _refuse("the private key looks like a JWK but is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("kty"), str):
            raise _refuse("the private key's JWK has no kty")
        if data["kty"] == "RSA" and isinstance(data.get("n"), str):
            _rsa_bits(len(data["n"].rstrip("=")) * 6)
        if data["kty"] == "oct":
            raise _refuse("this JWK is a symmetric key", hint="Use token_endpoint_auth_method='client_secret_jwt' "
                                                              "with the client secret itself.")
        if data["kty"] not in ("RSA", "EC", "OKP"):
            raise _refuse("the JWK's kty is not RSA, EC or OKP")
        try:
            key = jwk.import_key(data, data["kty"])
        except Exception:  # joserfc and cryptography raise many kinds; their text could quote the input
            raise _refuse("the private key's JWK does not load") from None
        if not key.is_private:
            raise _refuse("this JWK is a public key (no private part)",
                          hint="hush signs with the private key; the provider is given the public one.")
        kid, alg = data.get("kid"), data.get("alg")
        return key, {}, kid if isinstance(kid, str) else None, alg if isinstance(alg, str) else None
    raw, header = _pem_key(text)
    key_type = _jwk_type(raw)
    if isinstance(raw, rsa.RSAPrivateKey):
        _rsa_bits(raw.key_size)
    pem = raw.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return jwk.import_key(pem, key_type), header, None, None


def _rsa_bits(bits: int) -> None:
    """Checked before joserfc sees the key (it warns of small ones, and a warning may be an error)."""
    if bits < MIN_RSA_BITS - 7:  # a JWK's n counted in base64 digits rounds up to 6 bits
        raise _refuse(f"the RSA key has about {bits} bits; {MIN_RSA_BITS} at least")


def _check_alg(key: Any, alg: str) -> None:
    raw = key.private_key
    if alg in RSA_ALGS:
        if not isinstance(raw, rsa.RSAPrivateKey):
            raise _refuse(f"{alg} signs with an RSA key, and this key is not one")
        if raw.key_size < MIN_RSA_BITS:
            raise _refuse(f"the RSA key has {raw.key_size} bits; {MIN_RSA_BITS} at least")
    elif alg in EC_ALGS:
        curve = _CURVES.get(type(raw.curve)) if isinstance(raw, ec.EllipticCurvePrivateKey) else None
        if curve != EC_ALGS[alg]:
            raise _refuse(f"{alg} signs with an EC key on curve {EC_ALGS[alg]}, and this key is not one")
    elif alg == "EdDSA":
        if not isinstance(raw, ed25519.Ed25519PrivateKey):
            raise _refuse("EdDSA signs with an Ed25519 key, and this key is not one")
    else:
        raise _refuse(f"private_key_jwt cannot sign with {masked(alg)}: one of {', '.join(ASYMMETRIC_ALGS)}",
                      hint="RS256 is what every provider takes; ES256 where the provider lists it.")


def _default_alg(key: Any) -> str:
    raw = key.private_key
    if isinstance(raw, ec.EllipticCurvePrivateKey):
        return next((a for a, c in EC_ALGS.items() if c == _CURVES.get(type(raw.curve))), "ES256")
    return "EdDSA" if isinstance(raw, ed25519.Ed25519PrivateKey) else "RS256"


@functools.lru_cache(maxsize=64)  # loading an RSA key checks it (~30 ms): once per key, not per request
def signer(method: str, secret: str, alg: str | None, kid: str | None) -> Signer:
    """The key of `method`, checked against `alg` (None: the key's own, else RS256, ES256 for
    a P-256 key, ...). InvalidArgument, naming the problem only, when it will not sign."""
    if method == CLIENT_SECRET_JWT:
        alg = alg or "HS256"
        if alg not in HMAC_ALGS:
            raise _refuse(f"client_secret_jwt signs with HS256, HS384 or HS512, not {masked(alg)}",
                          hint="For RS256 or ES256, use private_key_jwt with the private key.")
        if len(secret.encode()) < HMAC_ALGS[alg]:
            raise _refuse(f"{alg} needs a client secret of {HMAC_ALGS[alg]} bytes at least (RFC 7518 3.2)",
                          hint="Ask the provider for a longer secret, or use private_key_jwt.")
        key: Any = jwk.OctKey.import_key(secret)
        header: dict[str, str] = {}
    else:
        key, header, own_kid, own_alg = _private_key(secret)
        if alg and own_alg and alg != own_alg:
            raise _refuse(f"the JWK says its alg is {masked(own_alg)}, not {masked(alg)}")
        alg = alg or own_alg or _default_alg(key)
        _check_alg(key, alg)
        kid = kid or own_kid
    if kid:
        header["kid"] = kid
    return Signer(key, alg, header)


def assertion(s: Signer, client_id: str, audience: str) -> str:
    """A client assertion: iss = sub = the client id, aud = the token endpoint, a minute's
    life, a unique jti (a provider refuses a jti it has seen)."""
    now = int(time.time())
    return str(sign_jwt_bearer_assertion(
        s.key, issuer=client_id, audience=audience, subject=client_id, issued_at=now, expires_at=now + LIFETIME,
        claims={"nbf": now, "jti": secrets.token_urlsafe(32)}, header={**s.header, "alg": s.alg}))


def settings(method: str, secret: str | None, alg: str | None, kid: str | None) -> dict[str, Any]:
    """What register_provider stores for a JWT method (the alg and kid; the key is sealed as
    the client secret), after checking that the key loads and signs with that alg."""
    if method not in JWT_METHODS:
        if alg or kid:
            raise InvalidArgument(f"token_endpoint_auth_signing_alg and token_endpoint_auth_kid go with "
                                  f"{' or '.join(JWT_METHODS)}, not {method}")
        return {}
    if not secret:
        raise InvalidArgument(f"{method} needs client_secret=" + (
            "the private key (PEM or JWK)" if method == PRIVATE_KEY_JWT else "the client secret"))
    if kid is not None and not _KID.fullmatch(kid):  # stored in clear: never a key passed in the wrong place
        raise InvalidArgument("token_endpoint_auth_kid must be 1 to 256 printable characters without spaces",
                              hint="The key id the provider shows for the public key; the key itself is client_secret.")
    s = signer(method, secret, alg, kid)
    try:  # what would fail at the first request fails now, before anything is stored
        assertion(s, "probe", "https://probe.invalid/token")
    except Exception:
        raise _refuse(f"the key does not sign with {s.alg}") from None
    return {ALG: s.alg, KID: kid}


class _Fresh:
    """authlib's JWT client auth, each assertion built by assertion() above: authlib's sign()
    re-imports the key per request, takes RSA for any private key, gives an hour's life, and
    keeps the jti of a claims dict it was given for every later request."""
    signer: Signer

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return assertion(self.signer, auth.client_id, token_endpoint)


class _PrivateKeyJWT(_Fresh, PrivateKeyJWT):  # type: ignore[misc]
    pass


class _ClientSecretJWT(_Fresh, ClientSecretJWT):  # type: ignore[misc]
    pass


def client_auth(config: Mapping[str, Any], secret: str | None) -> Any:
    """The authlib client auth method to register on an OAuth2Client for this provider, or
    None when it authenticates otherwise. The audience is the token endpoint whatever the
    endpoint called (OpenID Connect Core 9; Entra ID and Okta check it)."""
    method = config.get("token_endpoint_auth_method")
    if method not in JWT_METHODS or secret is None:
        return None
    auth = (_PrivateKeyJWT if method == PRIVATE_KEY_JWT else _ClientSecretJWT)(
        token_endpoint=config.get("token_endpoint"))
    auth.signer = signer(method, secret, config.get(ALG), config.get(KID))
    return auth
