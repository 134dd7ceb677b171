"""The OAuth page's examples: every provider configuration is a valid call of
register_provider, and the SaaS pattern runs as written against the loopback
server (standing in for Google)."""
from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest

import hush
from docs_text import blocks, page_of, section
from oauth_helpers import REDIRECT, browser, fresh_server, tenant_oauth

TITLE = "OAuth2 and OpenID Connect"


def oauth_blocks() -> list[str]:
    return blocks(section(TITLE), "python")


def test_every_provider_configuration_binds_to_register_provider() -> None:
    sig = inspect.signature(hush.OAuth.register_provider)
    calls = [node for block in oauth_blocks() for node in ast.walk(ast.parse(block))
             if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "register_provider"]
    assert len(calls) >= 4  # the quick start, Google, GitHub, Microsoft
    for call in calls:
        sig.bind(None, *[None for _ in call.args], **{k.arg: None for k in call.keywords if k.arg})
        names = {k.arg for k in call.keywords}
        assert "client_id" in names and ({"issuer_url", "token_endpoint"} & names)


def test_the_saas_pattern_runs_as_written(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    [saas] = [b for b in oauth_blocks() if "def google_callback" in b]
    with tenant_oauth(db) as oa:
        oa.register_provider("google", issuer_url=srv.issuer, client_id="app", client_secret="app-secret",
                             redirect_uris=[REDIRECT], scopes=["openid", "email"])
        scope: dict[str, Any] = {"client": hush.connect(db.dsn("alice"))}
        try:
            exec(compile(saas, page_of(TITLE), "exec"), scope)
            for user in ("user-42", "user-43"):
                cookies: dict[str, str] = {}  # one browser's
                url = scope["connect_google"]("acme", user, cookies)
                assert scope["google_callback"](browser(url), cookies) == f"acme/{user} connected"
            # Login CSRF: the attacker's authorization, completed in the victim's browser (which has
            # a binding of its own, or none), is refused; the attacker's own browser could complete it.
            attacker: dict[str, str] = {}
            callback = browser(scope["connect_google"]("acme", "attacker", attacker))
            no_cookie: dict[str, str] = {}
            its_own: dict[str, str] = {}
            scope["connect_google"]("acme", "user-44", its_own)  # the victim's own authorization, under way
            for victim in (no_cookie, its_own):
                with pytest.raises(hush.AuthorizationBindingMismatch):
                    scope["google_callback"](callback, victim)
            assert scope["google_callback"](callback, attacker) == "acme/attacker connected"
            token = scope["list_user_events"]("acme", "user-42")
        finally:
            scope["client"].close()
        assert srv.tokens[token].user == "alice"
        assert [c.account for c in oa.connections()] == ["attacker", "user-42", "user-43"]
