"""private_key_jwt and client_secret_jwt client authentication (RFC 7523 section 2.2,
OpenID Connect Core 9) against the loopback server, which checks every assertion with
authlib's JWTBearerClientAssertion and the client's public JWK: token, refresh,
revocation and device requests are signed in the client with the key hush keeps sealed
as the provider's client secret; a wrong key is refused by the server, an unusable one
by register_provider (nothing stored); the key appears in no table in clear, audit row,
repr, error or log line."""
from __future__ import annotations

import base64
import datetime
import hashlib
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey, RSAKey

import hush
from oauth_helpers import GRANTS, REDIRECT, SCOPES, login, tenant_oauth
from test_cli import hush as hush_cli, ok
from test_oauth_security import _everything_stored

SECRET_40 = "jwt-secret-" + "k" * 29  # client_secret_jwt: HS256 wants 32 bytes at least


def _rsa(bits: int = 2048) -> RSAKey:
    return RSAKey.generate_key(bits, private=True, parameters={"kid": "app-key"}, auto_kid=False)


def _pem(key: Any) -> str:
    return key.as_pem(private=True).decode()


def _jwt_server(srv: Any, key: Any, client_id: str = "app") -> Any:
    """The server with a private_key_jwt client that knows only `key`'s public half."""
    srv.control.reset()
    srv.add_client(client_id, None, auth_method="private_key_jwt", redirect_uris=[REDIRECT],
                   jwks={"keys": [key.as_dict(private=False)]})
    return srv


def _register(oa: hush.OAuth, srv: Any, secret: str, method: str = "private_key_jwt", name: str = "idp",
              **kw: Any) -> hush.Provider:
    return oa.register_provider(name, issuer_url=srv.issuer, client_id="app", client_secret=secret,
                                redirect_uris=[REDIRECT], scopes=SCOPES, token_endpoint_auth_method=method,
                                **{"grant_types": GRANTS, **kw})


def _material(key: Any) -> list[str]:
    """What of a private key must never show: its PEM body lines and its JWK's private numbers."""
    d = key.as_dict(private=True)
    lines = [ln for ln in _pem(key).splitlines() if ln and not ln.startswith("-----")]
    return lines + [d[k] for k in ("d", "p", "q", "dp", "dq", "qi") if k in d]


def test_private_key_jwt_end_to_end(db: Any, oauth_server: Any) -> None:
    key = _rsa()
    srv = _jwt_server(oauth_server, key)
    with tenant_oauth(db) as oa:
        provider = _register(oa, srv, _pem(key), token_endpoint_auth_kid="app-key")
        assert provider.config["token_endpoint_auth_method"] == "private_key_jwt"
        assert provider.config["token_endpoint_auth_signing_alg"] == "RS256"
        service = oa.client_credentials("idp", ["api:read"])       # client credentials
        tokens = login(oa)                                          # authorization code...
        refreshed = oa.refresh("idp", tokens.account)               # ...and a refresh
        assert refreshed.access_token != tokens.access_token
        assert srv.tokens[refreshed.access_token].user == "alice"
        device = oa.start_device_authorization("idp", ["api:read"], account="tv")
        assert device.user_code
        assert oa.revoke("idp", tokens.account)                     # revocation: two requests
        assert srv.tokens[refreshed.access_token].revoked
        assert srv.tokens[service.access_token].client_id == "app"
    assert srv.token_count() == 3
    signed = srv.control.client_assertions
    assert len(signed) == 6  # 3 token requests, 1 device authorization, 2 revocations
    for a in signed:
        h, c = a["header"], a["claims"]
        assert (h["alg"], h["kid"]) == ("RS256", "app-key")
        assert c["iss"] == c["sub"] == "app"
        assert c["aud"] == srv.url("/token")  # the token endpoint, whatever endpoint was called
        assert 0 < c["exp"] - c["iat"] <= 60  # short-lived
    assert len({a["claims"]["jti"] for a in signed}) == 6  # unique: the server refuses a jti it has seen


def test_the_server_refuses_an_assertion_signed_with_another_key(db: Any, oauth_server: Any) -> None:
    srv = _jwt_server(oauth_server, _rsa())
    with tenant_oauth(db) as oa:
        _register(oa, srv, _pem(_rsa()))  # a good key, but not the one the provider knows
        with pytest.raises(hush.OAuthError) as e:
            oa.client_credentials("idp")
        assert e.value.error == "invalid_client"
        assert oa.connections() == []
    assert srv.token_count() == 1 and srv.control.client_assertions == []


def test_es256_from_a_jwk_and_a_certificate_thumbprint(db: Any, oauth_server: Any) -> None:
    ec_key = ECKey.generate_key("P-256", private=True, parameters={"kid": "ec-1"}, auto_kid=False)
    srv = _jwt_server(oauth_server, ec_key)
    with tenant_oauth(db) as oa:
        p = _register(oa, srv, json.dumps(ec_key.as_dict(private=True)))
        assert p.config["token_endpoint_auth_signing_alg"] == "ES256"  # the key's kind decides
        oa.client_credentials("idp")
    [a] = srv.control.client_assertions
    assert (a["header"]["alg"], a["header"]["kid"]) == ("ES256", "ec-1")

    # Entra ID finds the key by its certificate: a PEM with both signs with x5t#S256 in the header.
    rsa_key = _rsa()
    cert = _certificate(rsa_key.private_key)
    srv = _jwt_server(oauth_server, rsa_key)
    with tenant_oauth(db) as oa:
        _register(oa, srv, _pem(rsa_key) + cert.public_bytes(serialization.Encoding.PEM).decode(),
                  name="entra", token_endpoint_auth_signing_alg="PS256")
        oa.client_credentials("entra")
    [a] = srv.control.client_assertions
    der = cert.public_bytes(serialization.Encoding.DER)
    assert a["header"]["alg"] == "PS256"
    assert a["header"]["x5t#S256"] == base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def _certificate(private_key: Any) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hush test client")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(private_key, hashes.SHA256()))


def test_client_secret_jwt(db: Any, oauth_server: Any) -> None:
    srv = oauth_server
    srv.control.reset()
    srv.add_client("app", SECRET_40, auth_method="client_secret_jwt", redirect_uris=[REDIRECT])
    with tenant_oauth(db) as oa:
        p = _register(oa, srv, SECRET_40, method="client_secret_jwt")
        assert p.config["token_endpoint_auth_signing_alg"] == "HS256"
        oa.client_credentials("idp")
        tokens = login(oa)
        oa.refresh("idp", tokens.account)
    assert [a["header"]["alg"] for a in srv.control.client_assertions] == ["HS256"] * 3
    # The same client with the secret sent as such is refused: the method is the client's.
    with tenant_oauth(db) as oa:
        oa.register_provider("plain", issuer_url=srv.issuer, client_id="app", client_secret=SECRET_40,
                             grant_types=GRANTS)
        with pytest.raises(hush.OAuthError) as e:
            oa.client_credentials("plain")
        assert e.value.error == "invalid_client"


def test_the_key_is_never_in_clear(db: Any, cluster: Any, oauth_server: Any) -> None:
    key = _rsa()
    srv = _jwt_server(oauth_server, key)
    db.sql("SELECT hush.configure_tenant('acme', audit_reads => true)")
    with tenant_oauth(db) as oa:
        p = _register(oa, srv, _pem(key))
        tokens = login(oa)
        oa.refresh("idp", tokens.account)
        oa.client_credentials("idp")  # reads the provider's key: oauth_client_secret_read
        shown = [repr(p), str(p.config), repr(oa), repr(oa.providers()), repr(oa.connections()), repr(tokens)]
        _register(oa, srv, _pem(_rsa()))  # another key: the next request fails at the provider
        with pytest.raises(hush.OAuthError) as e:
            oa.refresh("idp", tokens.account)
        shown += [str(e.value), repr(e.value), repr(oa.connections()), repr(oa.events())]
    listed = ok(hush_cli(db, "oauth", "provider", "ls", "acme", "--json")).stdout
    stored = _everything_stored(db)
    assert "oauth_client_secret_read" in stored  # the key was released on audited reads...
    db.sql("SELECT pg_sleep(0.2)")  # let the logger flush
    log = cluster.log.read_text(errors="replace")
    for part in _material(key):
        for where in (*shown, listed, stored, log):
            assert part not in where  # ...and is nowhere in clear


BAD_KEYS = {
    "not a key": lambda: "not a key at all",
    "a public key": lambda: _rsa().as_pem(private=False).decode(),
    "a public JWK": lambda: json.dumps(_rsa().as_dict(private=False)),
    "an encrypted PEM": lambda: rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")).decode(),
    "a damaged PEM": lambda: _pem(_rsa()).replace("A", "B", 40),
    "an RSA key too small": lambda: rsa.generate_private_key(65537, 1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
    "a certificate of another key": lambda: _pem(_rsa()) + _certificate(
        rsa.generate_private_key(65537, 2048)).public_bytes(serialization.Encoding.PEM).decode(),
    "a symmetric JWK": lambda: json.dumps({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}),
}
BAD_ALGS = [  # (method, secret, alg): the key loads, but not for that alg
    ("private_key_jwt", lambda: _pem(_rsa()), "ES256"),
    ("private_key_jwt", lambda: ECKey.generate_key("P-256", private=True).as_pem(private=True).decode(), "RS256"),
    ("private_key_jwt", lambda: ECKey.generate_key("P-384", private=True).as_pem(private=True).decode(), "ES256"),
    ("private_key_jwt", lambda: _pem(_rsa()), "HS256"),
    ("private_key_jwt", lambda: _pem(_rsa()), "none"),
    ("client_secret_jwt", lambda: SECRET_40, "RS256"),
    ("client_secret_jwt", lambda: "short-secret", "HS256"),
    ("client_secret_basic", lambda: "app-secret", "RS256"),  # a signing alg with a method that signs nothing
]


def _refused(db: Any, srv: Any, method: str, secret: str, alg: str | None) -> hush.InvalidArgument:
    with tenant_oauth(db) as oa:
        with pytest.raises(hush.InvalidArgument) as e:
            _register(oa, srv, secret, method=method, token_endpoint_auth_signing_alg=alg)
        assert e.value.code == "SH004"
        assert oa.providers() == []  # nothing written
    for line in secret.splitlines():
        if len(line) > 8 and not line.startswith("-----"):
            assert line not in str(e.value)
    return e.value


@pytest.mark.parametrize("what", list(BAD_KEYS))
def test_an_unusable_key_is_refused_at_register(db: Any, oauth_server: Any, what: str) -> None:
    srv = oauth_server
    srv.control.reset()
    _refused(db, srv, "private_key_jwt", BAD_KEYS[what](), None)
    assert srv.token_count() == 0


@pytest.mark.parametrize("method, secret, alg", BAD_ALGS)
def test_a_key_that_does_not_match_the_alg_is_refused(db: Any, oauth_server: Any, method: str, secret: Any,
                                                      alg: str) -> None:
    _refused(db, oauth_server, method, secret(), alg)


def test_a_key_passed_as_the_kid_is_refused(db: Any, oauth_server: Any) -> None:
    """The kid is stored in clear, in the provider's config: a key put there by mistake is refused."""
    key = _pem(_rsa())
    with tenant_oauth(db) as oa:
        with pytest.raises(hush.InvalidArgument, match="token_endpoint_auth_kid") as e:
            _register(oa, oauth_server, key, token_endpoint_auth_kid=key)
        assert oa.providers() == [] and key.splitlines()[1] not in str(e.value)


def test_cli_provider_add_reads_the_key_from_a_file(db: Any, oauth_server: Any, tmp_path: Any) -> None:
    key = _rsa()
    srv = _jwt_server(oauth_server, key)
    pem = tmp_path / "key.pem"
    pem.write_text(_pem(key))
    ok(hush_cli(db, "oauth", "provider", "add", "acme", "idp", "--issuer-url", srv.issuer, "--client-id", "app",
                "--auth-method", "private_key_jwt", "--kid", "app-key", "--client-secret-from-file", str(pem),
                "--grant-type", "client_credentials"))
    token = ok(hush_cli(db, "oauth", "provider", "ls", "acme", "--json")).stdout
    assert json.loads(token)[0]["config"]["token_endpoint_auth_kid"] == "app-key"
    with tenant_oauth(db) as oa:
        oa.client_credentials("idp")
    assert srv.control.client_assertions[0]["header"]["kid"] == "app-key"
    bad = tmp_path / "public.pem"
    bad.write_text(key.as_pem(private=False).decode())
    refused = hush_cli(db, "oauth", "provider", "add", "acme", "other", "--issuer-url", srv.issuer, "--client-id",
                       "app", "--auth-method", "private_key_jwt", "--client-secret-from-file", str(bad))
    assert refused.returncode != 0 and "public key" in refused.stderr
