"""Shared steps of the OAuth tests: a client registered at the loopback server,
the tenant's OAuth over a pool, and what the user's browser does."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import httpx2

import hush

REDIRECT = "http://127.0.0.1/callback"
SCOPES = ["openid", "email", "offline_access"]
# Every grant the loopback server serves: register() enables them all (hush refuses a grant its
# provider config does not list; tests/test_oauth_responses.py tests that).
GRANTS = ["authorization_code", "refresh_token", "client_credentials", "password",
          "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange"]


def fresh_server(srv: Any, auth_method: str = "client_secret_basic", client_id: str = "app",
                 secret: str | None = "app-secret") -> Any:
    """The server with its switches reset and a client registered."""
    srv.control.reset()
    srv.add_client(client_id, secret, auth_method=auth_method, redirect_uris=[REDIRECT])
    return srv


@contextmanager
def tenant_oauth(db: Any, user: str = "alice", tenant: str = "acme", **kw: Any) -> Iterator[hush.OAuth]:
    client = hush.connect(db.dsn(user), max_size=30)
    try:
        yield hush.OAuth(client.pool, tenant, **kw)
    finally:
        client.close()


def register(oa: hush.OAuth, srv: Any, name: str = "idp", **kw: Any) -> hush.Provider:
    args: dict[str, Any] = {"issuer_url": srv.issuer, "client_id": "app", "client_secret": "app-secret",
                            "redirect_uris": [REDIRECT], "scopes": SCOPES, "grant_types": GRANTS}
    args.update(kw)
    return oa.register_provider(name, **args)


def browser(url: str) -> str:
    """GET the authorization URL as the user's browser would; the callback URL it is sent to."""
    resp = httpx2.get(url)
    assert resp.status_code == 302, resp.text
    return str(resp.headers["location"])


def login(oa: hush.OAuth, provider: str = "idp", **kw: Any) -> hush.TokenSet:
    url, _state, binding = oa.start_authorization(provider, **kw)
    return oa.complete_authorization(browser(url), binding=binding)


def stale_login(oa: hush.OAuth, srv: Any, **kw: Any) -> hush.TokenSet:
    """Register the provider and log in with a 30-second token (inside the client's 60-second
    skew, so the next access_token() refreshes); later tokens live an hour."""
    srv.control.token_lifetime = 30
    register(oa, srv, **kw)
    tokens = login(oa)
    srv.control.token_lifetime = 3600
    return tokens


def two_accounts(oa: hush.OAuth, srv: Any) -> None:
    """Register the provider and connect two accounts of it: sub-alice, then sub-bob."""
    register(oa, srv)
    login(oa)
    srv.control.user = "bob"
    login(oa)
