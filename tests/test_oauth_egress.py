"""The OAuth egress policy and redaction, against the loopback authorization server
and raw loopback sockets: where a tenant's writer may point hush's requests (https to
public addresses; plain http and non-public addresses only where an admin allowed
them, checked on the resolved address at connect time), no redirect followed, one
"provider unreachable" whatever the transport failure, and nothing hush sent coming
back through a provider's error text in any encoding. Every test database allows
127.0.0.1 and localhost (http and private: tests/conftest.py); tests that need less
take entries away in their own database."""
from __future__ import annotations

import base64
import ipaddress
import json
import logging
import secrets
import socket
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import quote, quote_plus

import pytest

import hush
from hush._oauth_egress import EgressPolicy, Refused, category, check_url
from hush._oauth_redact import redact
from helpers import raises_sqlstate
from oauth_helpers import GRANTS, fresh_server, register, stale_login, tenant_oauth
from test_cli import hush as hush_cli

UNREACHABLE = "token endpoint: provider unreachable"


# -- helpers ---------------------------------------------------------------------------------

def save_provider(db: Any, name: str, secret: str | None = "app-secret", **config: Any) -> None:
    """A provider stored with hush.oauth_save_provider directly, as a writer may: nothing of
    the client's own checks at register time stands in the way."""
    conf = {"client_id": "app", "grant_types": GRANTS, **config}
    db.sql("SELECT hush.oauth_save_provider('acme', %s, %s, %s)", [name, json.dumps(conf), secret], user="alice")


def connect_account(db: Any, provider: str, refresh_token: str | None = None, account: str = "u1",
                    due: bool = False) -> str:
    """A stored connection with the given refresh token (by default a random one)."""
    refresh_token = refresh_token or "rt-" + secrets.token_urlsafe(16)
    tokens = {"access_token": "at-" + secrets.token_urlsafe(16), "refresh_token": refresh_token,
              "token_type": "Bearer", "expires_in": 3600}
    db.sql("SELECT hush.oauth_store_tokens('acme', %s, %s, 'authorization_code', %s)",
           [provider, account, json.dumps(tokens)], user="alice")
    if due:  # as if issued an hour before its last minute: due for the worker
        db.sql("UPDATE hush.oauth_connections SET expires_at = now() + interval '1 minute', "
               "refreshed_at = now() - interval '1 hour' WHERE provider = %s", [provider])
    return refresh_token


def disallow(db: Any, host: str) -> None:
    assert db.sql("SELECT hush.oauth_disallow_egress(%s)", [host], user="adam") == [(True,)]


@contextmanager
def tarpit() -> Iterator[socket.socket]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.setblocking(False)
    try:
        yield s
    finally:
        s.close()


def reached(s: socket.socket) -> int:
    """How many connections reached the listening socket."""
    n = 0
    while True:
        try:
            conn, _ = s.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def last_error(oa: hush.OAuth, provider: str) -> str | None:
    [conn] = oa.connections(provider)
    return conn.last_error


# -- the policy is the admin's -----------------------------------------------------------------

def test_only_an_admin_changes_the_policy_and_every_change_is_audited(db: Any) -> None:
    before = db.sql("SELECT host, allow_http, allow_private FROM hush.oauth_egress_policy()", user="adam")
    assert before == [("127.0.0.1", True, True), ("localhost", True, True)]
    for user in ("alice", "rita", "wendy", "audrey", "otto"):
        with raises_sqlstate("42501"):
            db.sql("SELECT hush.oauth_allow_egress('169.254.169.254', true, true)", user=user)
        with raises_sqlstate("42501"):
            db.sql("SELECT hush.oauth_disallow_egress('127.0.0.1')", user=user)
    for user in ("alice", "rita", "wendy", "adam"):  # every role that speaks to providers reads it
        assert db.sql("SELECT host, allow_http, allow_private FROM hush.oauth_egress_policy()", user=user) == before
    for user in ("audrey", "otto"):
        with raises_sqlstate("42501"):
            db.sql("SELECT * FROM hush.oauth_egress_policy()", user=user)
    for user in ("alice", "adam"):  # and nobody reads or writes the table itself
        with raises_sqlstate("42501"):
            db.sql("SELECT * FROM hush.oauth_egress", user=user)

    row = db.sql("SELECT host, allow_http, allow_private, created_by FROM hush.oauth_allow_egress("
                 "'10.1.2.3/8', allow_private => true)", user="adam")
    assert row == [("10.0.0.0/8", False, True, "adam")]
    assert db.sql("SELECT (hush.oauth_allow_egress('IdP.Corp.Example.', allow_http => true)).host",
                  user="adam") == [("idp.corp.example",)]
    assert db.sql("SELECT hush.oauth_disallow_egress('10.0.0.0/8')", user="adam") == [(True,)]
    assert db.sql("SELECT hush.oauth_disallow_egress('10.0.0.0/8')", user="adam") == [(False,)]
    audited = db.sql("SELECT tenant_id, action, db_role, detail->>'host' FROM hush.audit_log "
                     "WHERE action LIKE 'oauth_egress%%' AND detail->>'host' NOT IN ('127.0.0.1', 'localhost') "
                     "ORDER BY id")
    assert audited == [("*", "oauth_egress_allow", "adam", "10.0.0.0/8"),
                       ("*", "oauth_egress_allow", "adam", "idp.corp.example"),
                       ("*", "oauth_egress_disallow", "adam", "10.0.0.0/8")]

    for bad in ("not a host", "a..b", "-x.example", "127.1", "x" * 300, "", "https://idp.example/"):
        with raises_sqlstate("SH004"):
            db.sql("SELECT hush.oauth_allow_egress(%s, true, true)", [bad], user="adam")
    with raises_sqlstate("SH004"):  # an entry that allows nothing
        db.sql("SELECT hush.oauth_allow_egress('idp.example', false, false)", user="adam")
    with raises_sqlstate("SH004"):
        db.sql("SELECT hush.oauth_allow_egress('idp.example', NULL, true)", user="adam")
    assert [h for (h,) in db.sql("SELECT host FROM hush.oauth_egress_policy()", user="adam")] == [
        "127.0.0.1", "idp.corp.example", "localhost"]


# -- http, and non-public addresses --------------------------------------------------------------

def test_plain_http_to_a_host_not_allowed_is_refused_at_register_and_at_use(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        with pytest.raises(hush.EgressRefused) as e:
            oa.register_provider("plain", client_id="app", client_secret="app-secret",
                                 token_endpoint="http://idp.example.com/token?key=SEKRET-in-the-query")
        assert e.value.code == "SH079" and e.value.host == "idp.example.com" and "plain http" in e.value.reason
        assert "SEKRET" not in str(e.value) and "SEKRET" not in e.value.message
        with pytest.raises(hush.EgressRefused):  # the browser's URL must be https too
            oa.register_provider("plain", client_id="app", client_secret="app-secret",
                                 token_endpoint="https://idp.example.com/token",
                                 authorization_endpoint="http://idp.example.com/authorize")
        with pytest.raises(hush.EgressRefused) as e:  # a private address named in the URL
            oa.register_provider("meta", client_id="app", client_secret="app-secret",
                                 token_endpoint="https://169.254.169.254/latest/meta-data/")
        assert "link-local" in e.value.reason
        assert oa.providers() == []  # nothing stored

        # A writer that stores a provider itself gets no further at use.
        save_provider(db, "meta", token_endpoint="http://169.254.169.254/latest/meta-data/iam")
        with pytest.raises(hush.EgressRefused) as e:
            oa.client_credentials("meta")
        assert e.value.host == "169.254.169.254" and "plain http" in e.value.reason
        save_provider(db, "browser", token_endpoint="https://idp.example.com/token",
                      authorization_endpoint="http://idp.example.com/authorize", redirect_uris=["https://app/cb"])
        with pytest.raises(hush.EgressRefused):
            oa.start_authorization("browser")

        # The loopback server, allowed over http by the test set-up: works until an admin says no.
        tokens = stale_login(oa, srv)
        assert oa.access_token("idp") != tokens.access_token
        db.sql("SELECT hush.oauth_allow_egress('127.0.0.1', allow_http => false, allow_private => true)", user="adam")
    requests = srv.token_count()
    with tenant_oauth(db) as oa:  # a new instance: the 30-second cache of the policy is its own
        with pytest.raises(hush.EgressRefused) as e:
            oa.refresh("idp")
        assert "plain http" in e.value.reason
        assert "egress to 127.0.0.1 refused: plain http" in (last_error(oa, "idp") or "")
    assert srv.token_count() == requests  # nothing reached the server


def test_a_name_resolving_to_loopback_is_refused_at_connect_though_its_address_is_allowed(db: Any) -> None:
    """localhost resolves to 127.0.0.1, which is allowed: the name is not, so its connection
    is refused once resolved, before any packet leaves. Allowing the name lets it through."""
    disallow(db, "localhost")
    with tarpit() as s:
        port = s.getsockname()[1]
        save_provider(db, "inside", token_endpoint=f"https://localhost:{port}/token")
        connect_account(db, "inside")
        with tenant_oauth(db, timeout=0.5, retries=2, sleep=lambda _: None) as oa:
            with pytest.raises(hush.EgressRefused) as e:
                oa.refresh("inside", "u1")
            assert e.value.host == "localhost" and "resolves to a loopback address" in e.value.reason
            assert e.value.message == UNREACHABLE and "loopback" in str(e.value)  # the caller is told
            assert last_error(oa, "inside") == UNREACHABLE  # what is recorded is not
        assert reached(s) == 0
        db.sql("SELECT hush.oauth_allow_egress('localhost', allow_private => true)", user="adam")
        with tenant_oauth(db, timeout=0.5, retries=1, sleep=lambda _: None) as oa:
            with pytest.raises(hush.ProviderUnavailable) as e:  # TLS to a socket that never answers
                oa.refresh("inside", "u1")
            assert not isinstance(e.value, hush.EgressRefused)
        assert reached(s) == 1


def test_connect_refused_timeout_and_refusal_at_connect_read_the_same(db: Any) -> None:
    """No oracle for a writer probing the network through last_error, events and audit rows."""
    disallow(db, "localhost")
    with tarpit() as s:
        port = s.getsockname()[1]
        endpoints = {"refused": f"http://127.0.0.1:{closed_port()}/token",
                     "timeout": f"http://127.0.0.1:{port}/token",
                     "resolved": f"https://localhost:{port}/token"}
        for name, url in endpoints.items():
            save_provider(db, name, token_endpoint=url)
            connect_account(db, name)
        errors = {}
        with tenant_oauth(db, timeout=0.5, retries=2, sleep=lambda _: None) as oa:
            for name in endpoints:
                with pytest.raises(hush.ProviderUnavailable) as e:
                    oa.refresh(name, "u1")
                errors[name] = (e.value.message, e.value.status, e.value.retry_after, last_error(oa, name))
        assert reached(s) == 2  # the two attempts of "timeout"; "resolved" never connected
    assert set(errors.values()) == {(UNREACHABLE, None, None, UNREACHABLE)}, errors
    audited = db.sql("SELECT secret_name, detail->>'error' FROM hush.audit_log WHERE action = 'oauth_refresh_failed'")
    assert sorted(audited) == sorted((name, UNREACHABLE) for name in endpoints)
    events = db.sql("SELECT provider, detail->>'error' FROM hush.oauth_events", user="postgres")
    assert sorted(events) == sorted((name, UNREACHABLE) for name in endpoints)


def test_a_redirect_is_refused_not_followed(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db, sleep=lambda _: None) as oa:
        stale_login(oa, srv)
        srv.control.redirect_token_to = srv.url("/token").replace("127.0.0.1", "localhost")
        before = srv.token_count()
        with pytest.raises(hush.EgressRefused) as e:
            oa.refresh("idp")
        assert e.value.code == "SH079" and e.value.status == 307 and "redirect (HTTP 307)" in e.value.reason
        assert srv.token_count() == before + 1  # once, not retried, not followed
        assert "redirect (HTTP 307)" in (last_error(oa, "idp") or "")
        srv.control.redirect_token_to = None
        assert oa.refresh("idp").access_token  # the stored refresh token is still good


# -- redaction -----------------------------------------------------------------------------------

# Values with what each encoding changes: quote (/ + = space " \), JSON (" \), base64. ASCII, as
# RFC 6749 has client secrets and tokens (authlib form-encodes nothing else).
CLIENT_ID = "app"
CLIENT_SECRET = 'cl"ient/s\\ecr+t =x'


def forms(value: str) -> list[str]:
    """What a test looks for: the forms a careless provider repeats, and the Basic credentials."""
    basics = [f"{quote(CLIENT_ID, safe='')}:{quote(CLIENT_SECRET, safe='')}",
              f"{quote(CLIENT_ID)}:{quote(CLIENT_SECRET)}", f"{CLIENT_ID}:{CLIENT_SECRET}"]
    return [value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1], base64.b64encode(value.encode()).decode().rstrip("="),
            *(base64.b64encode(b.encode()).decode().rstrip("=") for b in basics)]


def leaks(text: str | None, values: list[str]) -> list[str]:
    return [f for v in values for f in forms(v) if text and f.lower() in text.lower()]


@pytest.mark.parametrize("echoed,auth_method", [(("form",), "client_secret_post"), (("json",), "client_secret_post"),
                                                (("b64",), "client_secret_post"), (("basic",), "client_secret_basic"),
                                                (("form", "json", "b64", "b64body", "basic"), "client_secret_basic")])
def test_an_echo_in_any_encoding_reaches_no_record(db: Any, oauth_server: Any, echoed: tuple[str, ...],
                                                   auth_method: str) -> None:
    srv = fresh_server(oauth_server, auth_method=auth_method, secret=CLIENT_SECRET)
    refresh_token = 'rt/+"=\\ ' + secrets.token_urlsafe(12)
    with tenant_oauth(db) as oa:
        register(oa, srv, client_secret=CLIENT_SECRET, token_endpoint_auth_method=auth_method)
        connect_account(db, "idp", refresh_token)
        srv.control.echo_request, srv.control.echo_forms = "invalid_request", echoed
        with pytest.raises(hush.OAuthError) as e:
            oa.refresh("idp", "u1")
        recorded = last_error(oa, "idp")
    secrets_sent = [refresh_token, CLIENT_SECRET]
    assert e.value.error == "invalid_request" and recorded and recorded.startswith(
        "the provider answered invalid_request")
    if len(echoed) == 1:  # blanked in place: the rest of the description is kept
        assert "***" in recorded and "withheld" not in recorded, recorded
    else:  # base64 of the whole body, where a value cannot be blanked in place: withheld whole
        assert recorded.endswith("(withheld: the provider's text repeated what hush sent it)"), recorded
    for text in (str(e.value), e.value.message, e.value.description, recorded):
        assert not leaks(text, secrets_sent), text
    stored = (db.sql("SELECT a::text FROM hush.audit_log a") + db.sql("SELECT c::text FROM hush.oauth_connections c")
              + db.sql("SELECT e::text FROM hush.oauth_events e"))
    assert not [row for (row,) in stored if leaks(row, secrets_sent)]


def test_what_an_internal_service_answers_is_not_kept(db: Any, oauth_server: Any) -> None:
    """An `error` that is no OAuth error code, and a description past 200 characters."""
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        connect_account(db, "idp")
        srv.control.echo_request, srv.control.echo_forms = "<html>admin console: db=10.0.0.7</html>", ("form",)
        with pytest.raises(hush.OAuthError) as e:
            oa.refresh("idp", "u1")
        recorded = last_error(oa, "idp") or ""
    assert e.value.error == "invalid_response" and "admin console" not in str(e.value)
    assert "admin console" not in recorded and len(e.value.description or "") <= 200


WITHHELD = "(withheld: the provider's text repeated what hush sent it)"


@pytest.mark.parametrize("text,kept", [
    ("form refresh_token=rt%2Fa%2Bb%3D", "form refresh_token=***"),
    ('json {"t": "rt\\/a+b="}', 'json {"t": "***"}'),
    ('json {"t": "rt\\/a+b\\u003d"}', WITHHELD),  # an encoder that escapes more than it must
    ("lower hex rt%2fa%2bb%3d", "lower hex ***"),
    ("b64url " + base64.urlsafe_b64encode(b"xx rt/a+b= yy").decode(), "b64url eHgg***SB5eQ=="),
    # what cannot be blanked in place (inside a longer base64 text, encoded twice) is withheld whole
    ("b64 " + base64.b64encode(b"grant_type=refresh_token&refresh_token=rt%2Fa%2Bb%3D").decode(), WITHHELD),
    ("twice " + quote(quote("rt/a+b=", safe=""), safe=""), WITHHELD),
    ("x" * 500, "x" * 200),
])
def test_redaction_sees_through_encodings(text: str, kept: str) -> None:
    assert redact(text, ["rt/a+b="]) == kept


# -- the worker and the CLI ------------------------------------------------------------------------

def test_the_worker_obeys_the_policy(db: Any, caplog: Any) -> None:
    disallow(db, "localhost")
    with tarpit() as s:
        port = s.getsockname()[1]
        save_provider(db, "inside", token_endpoint=f"https://localhost:{port}/token")
        save_provider(db, "plain", token_endpoint="http://idp.example.com/token")
        connect_account(db, "inside", due=True)
        connect_account(db, "plain", due=True)
        w = hush.OAuthWorker(db.dsn("wendy"), timeout=1)
        try:
            with caplog.at_level(logging.INFO, logger="hush.oauth_worker"):
                w.run_once()
        finally:
            w.close()
        assert reached(s) == 0
    rows = dict(db.sql("SELECT provider, last_error FROM hush.oauth_connections"))
    assert rows["inside"] == UNREACHABLE
    assert "egress to idp.example.com refused: plain http" in rows["plain"]
    [line] = [r.getMessage() for r in caplog.records if "provider=inside" in r.getMessage()]
    assert line.endswith(UNREACHABLE) and "loopback" not in line, line  # the log tells no more than last_error


def test_the_cli_refuses_an_http_endpoint(db: Any) -> None:
    r = hush_cli(db, "oauth", "provider", "add", "acme", "plain", "--client-id", "app",
                 "--token-endpoint", "http://idp.example.com/token", input="app-secret\n")
    assert r.returncode == 11 and "idp.example.com" in r.stderr and "plain http" in r.stderr, r.stderr
    assert db.sql("SELECT count(*) FROM hush.oauth_providers('acme')", user="alice") == [(0,)]


# -- the checks themselves ---------------------------------------------------------------------------

@pytest.mark.parametrize("address,kind", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("100.64.0.1", "shared"), ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("fd00::1", "private (ULA)"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("::ffff:127.0.0.1", "loopback"),
    ("64:ff9b::a00:1", "private"), ("2002:a9fe:a9fe::", "link-local"), ("::127.0.0.1", "reserved"),
    ("fec0::1", "reserved"), ("198.18.0.1", "private"), ("8.8.8.8", None), ("2606:4700::1111", None),
    ("::ffff:8.8.8.8", None), ("64:ff9b::808:808", None)])
def test_non_public_addresses(address: str, kind: str | None) -> None:
    found = category(ipaddress.ip_address(address))
    assert (found is None) if kind is None else (found or "").startswith(kind), found


def test_an_entry_names_what_a_url_may_say() -> None:
    policy = EgressPolicy.of([("10.0.0.0/8", True, True), ("idp.corp", False, True)])
    assert check_url("http://10.1.1.1/token", policy) == "10.1.1.1"
    assert check_url("https://IDP.corp./token", policy) == "idp.corp"
    for url in ("http://idp.corp/token", "http://11.0.0.1/x", "https://[::1]/", "ftp://idp.corp/",
                "https://user:pw@idp.corp/", "https:///x"):
        with pytest.raises(Refused):
            check_url(url, policy)
    assert not policy.allows_private("evil.example") and policy.allows_private("10.2.3.4")
    assert not EgressPolicy().allows_http("127.0.0.1")


