"""Examples of the docs that need more than tests/test_docs.py gives them, run as they are
written on the session's cluster: Python blocks (your own transaction, a DBOS transaction,
the OAuth quick start and every provider configuration) and the lifecycle's command line.

What differs from a real deployment is only where things go, replaced in the text before
it runs (as tests/test_install_path.py does): a provider's issuer URL becomes the loopback
OAuth server's, which plays Google, Entra ID and Okta alike. The names an example leaves
to the reader (client ids, BASE_URL) are given values; everything else is the docs' text.
"""
from __future__ import annotations

import ast
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey

import hush
from docs_text import blocks, page_of, section
from oauth_helpers import browser, tenant_oauth

HUSH = Path(sys.executable).parent / "hush"  # the console script of the virtualenv the tests run in
BASE_URL = "http://127.0.0.1"
ISSUERS = ("https://accounts.google.com", "https://login.microsoftonline.com/{ENTRA_TENANT_ID}/v2.0",
           "https://{OKTA_DOMAIN}/oauth2/default")


def python_block(title: str, line: str) -> str:
    """The Python block of the section `title` that holds `line`."""
    [code] = [b for b in blocks(section(title), "python") if line in b.splitlines()]
    return code


def test_own_transaction_example_runs(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    code = python_block("The client", 'with psycopg.connect(os.environ["HUSH_DSN"]) as conn:   # psycopg 3: one transaction')
    db.sql("CREATE TABLE orders (item text, token_version integer)")
    db.sql("GRANT SELECT, INSERT ON orders TO alice")
    with db.connect("alice") as conn:
        hush.Secrets(conn, "acme").save("partner_token", "tok-1")
    monkeypatch.setenv("HUSH_DSN", db.dsn("alice"))
    exec(compile(code, page_of("The client"), "exec"), {})
    assert db.sql("SELECT item, token_version FROM orders") == [("book", 1)]
    with db.connect("alice") as conn:
        assert hush.Secrets(conn, "acme").get("last_order").value == "book"
    # The INSERT and the save are one transaction, committed at the end of the `with`.
    [(xmin,)] = db.sql("SELECT xmin::text::bigint FROM orders")
    assert db.sql("SELECT txid % 4294967296 FROM hush.audit_log WHERE secret_name = 'last_order' AND action = 'create'") == [(xmin,)]


def test_dbos_transaction_example_runs(db: Any, cluster: Any) -> None:
    code = python_block("DBOS", "from dbos import DBOS, SQLAlchemyDatasource")
    db.sql(f"GRANT CREATE ON DATABASE {db.name} TO alice")  # the DBOS section's grant, for this test's role
    with db.connect("alice") as conn:
        hush.Secrets(conn, "acme").save("partner/api_key", "key-1")
        hush.Secrets(conn, "acme").save("partner/api_key", "key-2")
    url = f"postgresql+psycopg://alice@/{db.name}?host={cluster.base}&port={cluster.port}"
    scope: dict[str, Any] = {"app_database_url": url}
    exec(compile(code, page_of("DBOS"), "exec"), scope)
    try:
        assert scope["check_api_key"]("acme") == 2
    finally:
        scope["ds"].engine.dispose()
    assert db.sql("SELECT action, secret_name, version, db_role FROM hush.audit_log WHERE action = 'read'") == [
        ("read", "partner/api_key", 2, "alice")]


def loopback(code: str, srv: Any) -> str:
    """The block with every provider's issuer URL replaced by the loopback server's."""
    for issuer in ISSUERS:
        assert issuer in code, issuer
        code = code.replace(issuer, srv.issuer)
    return code


def test_oauth_quick_start_runs(db: Any, oauth_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    title = "OAuth2 and OpenID Connect"
    code = python_block(title, "client = hush.connect()").replace(ISSUERS[0], oauth_server.issuer)
    oauth_server.control.reset()
    oauth_server.add_client("google-app", "google-secret", redirect_uris=[f"{BASE_URL}/oauth/callback/google"])
    monkeypatch.setenv("HUSH_DSN", db.dsn("alice"))
    scope: dict[str, Any] = {"GOOGLE_CLIENT_ID": "google-app", "GOOGLE_CLIENT_SECRET": "google-secret",
                             "BASE_URL": BASE_URL}
    # Up to the callback; then the browser's round trip to the provider; then the rest.
    tree = ast.parse(code)
    split = next(i for i, node in enumerate(tree.body)
                 if any(isinstance(n, ast.Name) and n.id == "callback_url" for n in ast.walk(node)))
    first, rest = ast.Module(tree.body[:split], []), ast.Module(tree.body[split:], [])
    try:
        exec(compile(first, page_of(title), "exec"), scope)
        scope["callback_url"] = browser(scope["url"])
        exec(compile(rest, page_of(title), "exec"), scope)
    finally:
        scope["client"].close()
    assert scope["tokens"].claims["email"] == "alice@example.com"
    token = scope["headers"]["Authorization"].removeprefix("Bearer ")
    assert oauth_server.tokens[token].user == "alice"


def entra_pem() -> str:
    """A private key followed by its certificate, as Entra ID's certificate credentials come."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hush docs example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM)).decode()


def test_provider_configurations_register(db: Any, oauth_server: Any, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    title = "Provider configurations"
    code = loopback(python_block(title, "# Google: OpenID Connect, endpoints and keys from discovery."), oauth_server)
    oauth_server.control.reset()
    (tmp_path / "entra-key-and-cert.pem").write_text(entra_pem())
    monkeypatch.chdir(tmp_path)
    okta = RSAKey.generate_key(2048, private=True, parameters={"kid": "okta-key-1"}, auto_kid=False)
    names = {f"{p}_CLIENT_{w}": f"{p.lower()}-{w.lower()}" for p in ("GOOGLE", "GITHUB", "MICROSOFT", "SLACK")
             for w in ("ID", "SECRET")}
    names.update(BASE_URL=BASE_URL, ENTRA_TENANT_ID="contoso", OKTA_DOMAIN="example.okta.com",
                 OKTA_CLIENT_ID="okta-app", OKTA_PRIVATE_JWK=json.dumps(okta.as_dict(private=True)),
                 OKTA_KEY_ID="okta-key-1")
    with tenant_oauth(db) as oauth:
        exec(compile(code, page_of(title), "exec"), {"oauth": oauth, **names})
        providers = {p.name: p for p in oauth.providers()}
    assert sorted(providers) == ["github", "google", "microsoft", "okta", "slack"]
    assert providers["microsoft"].config["token_endpoint_auth_method"] == "private_key_jwt"  # the later call
    assert providers["okta"].config["token_endpoint_auth_kid"] == "okta-key-1"
    assert providers["slack"].config["scope_separator"] == ","
    assert providers["google"].config["token_endpoint"].startswith(oauth_server.issuer)  # discovered


def test_lifecycle_command_line_runs(db: Any, tmp_path: Path) -> None:
    """Each line through bash and the `hush` console script, as alice; a line whose comment
    says `exit N` must exit N, which the secret due in three days makes it."""
    title = "The lifecycle from the command line"
    [block] = blocks(section(title), "sh")
    with db.connect("alice") as conn:
        acme = hush.Secrets(conn, "acme")
        acme.save("db_password", "pw-1")
        acme.save("tls_cert", "pem", expires_at=datetime.datetime.now(datetime.timezone.utc)
                  + datetime.timedelta(days=3))
    (tmp_path / "new_password.txt").write_text("pw-3")
    env = {"PATH": f"{HUSH.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": os.environ.get("LANG", "C.UTF-8"),
           "HUSH_DSN": db.dsn("alice"), "NEW_PASSWORD": "pw-2"}
    out = []
    for line in block.splitlines():
        if not line.strip():
            continue
        assert "hush" in shlex.split(line, comments=True), line
        r = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
        expected = re.search(r"#.*\bexit (\d+)", line)
        assert r.returncode == (int(expected[1]) if expected else 0), (line, r.stderr)
        out.append(r.stdout)
    with db.connect("alice") as conn:
        acme = hush.Secrets(conn, "acme")
        assert [(v.version, v.stage) for v in acme.versions("db_password")] == [
            (1, None), (2, "previous"), (3, "current")]
        assert acme.get("db_password").value == "pw-3"
    assert out[3] == "pw-2\n"  # `hush get ... --stage previous`
    assert [d["name"] for d in json.loads(out[4])] == ["tls_cert"]
