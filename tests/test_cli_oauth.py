"""hush oauth provider add|ls|rm, login, device, token, revoke, connections,
against the loopback authorization server: in this process, but for the two
logins, which run the console script while the test plays the browser."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any

import httpx2

from oauth_helpers import fresh_server, login, tenant_oauth
from test_cli import HUSH, hush, ok


def add_provider(db: Any, srv: Any, *extra: str) -> None:
    ok(hush(db, "oauth", "provider", "add", "acme", "idp", "--issuer-url", srv.issuer, "--client-id", "app",
            "--redirect-uri", "http://127.0.0.1/callback", "--scope", "openid", "--scope", "email",
            "--scope", "offline_access", "--grant-type", "authorization_code", "--grant-type", "refresh_token",
            "--grant-type", "urn:ietf:params:oauth:grant-type:device_code", *extra, input="app-secret\n"))


def test_provider_add_ls_rm(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    add_provider(db, srv)
    listed = json.loads(ok(hush(db, "oauth", "provider", "ls", "acme", "--json")).stdout)
    assert [(p["name"], p["config"]["token_endpoint"], p["has_client_secret"]) for p in listed] == [
        ("idp", srv.url("/token"), True)]
    table = ok(hush(db, "oauth", "provider", "ls", "acme")).stdout
    assert "idp" in table and "app-secret" not in table
    assert "app-secret" not in json.dumps(listed)
    ok(hush(db, "oauth", "provider", "rm", "acme", "idp"))
    assert hush(db, "oauth", "provider", "rm", "acme", "idp").returncode == 3
    assert hush(db, "oauth", "provider", "ls", "acme", user="bob").returncode == 4


def test_login_through_the_loopback_listener_then_token_revoke(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    add_provider(db, srv)
    env = {**os.environ, "HUSH_DSN": db.dsn("alice")}
    proc = subprocess.Popen([HUSH, "oauth", "login", "acme", "idp", "--json", "--timeout", "60"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stderr is not None
    lines = [proc.stderr.readline(), proc.stderr.readline()]
    listening = re.search(r"waiting on (http://127\.0\.0\.1:(\d+)/callback)", lines[0])
    assert listening, lines
    # The listener's port is any free one: the server's client accepts exactly that URI (RFC 8252).
    srv.clients["app"].redirect_uris.append(listening[1])
    browser = httpx2.get(lines[1].strip(), follow_redirects=True)  # to the provider, then back to the CLI
    assert browser.status_code == 200 and "you may close this window" in browser.text
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    connected = json.loads(out)
    assert connected["account"] == "sub-alice" and connected["has_refresh_token"]
    assert "at-" not in out and "rt-" not in out and "code=" not in err

    token = ok(hush(db, "oauth", "token", "acme", "idp")).stdout.strip()
    assert token.startswith("at-") and srv.tokens[token].user == "alice"
    conns = json.loads(ok(hush(db, "oauth", "connections", "acme", "--json")).stdout)
    assert [(c["account"], c["status"]) for c in conns] == [("sub-alice", "active")]
    assert token not in json.dumps(conns)
    ok(hush(db, "oauth", "revoke", "acme", "idp"))
    assert srv.tokens[token].revoked
    assert hush(db, "oauth", "token", "acme", "idp").returncode == 3


def test_device_login_prints_the_code_and_waits(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    add_provider(db, srv)
    env = {**os.environ, "HUSH_DSN": db.dsn("alice")}
    proc = subprocess.Popen([HUSH, "oauth", "device", "acme", "idp", "--scope", "api:read", "--account", "tv"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    code = re.search(r"enter the code (\S+)", first)
    assert code and srv.url("/device") in first, first
    time.sleep(0.5)
    srv.approve_device(code[1], "bob")
    _, err = proc.communicate(timeout=30)  # the server's interval is 5 s: one or two polls
    assert proc.returncode == 0, err
    assert "connected acme/idp account 'tv'" in err
    assert hush(db, "oauth", "token", "acme", "idp", "--account", "tv").returncode == 0


def test_a_refused_refresh_exits_11(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    add_provider(db, srv)
    srv.control.token_lifetime = 30
    with tenant_oauth(db) as oa:
        tokens = login(oa)
    srv.refresh[tokens.refresh_token or ""].revoked = True
    r = hush(db, "oauth", "token", "acme", "idp")
    assert r.returncode == 11 and "SH074" in r.stderr and r.stdout == ""
    assert "needs_reauth" in ok(hush(db, "oauth", "connections", "acme")).stdout
