"""What hush keeps of a token response, against the loopback server shaped like
real providers (issue 18): Slack's (comma-separated scopes, a user token in
authed_user) and Salesforce's (instance_url, id, signature, no expires_in); a
provider with manual endpoints and openid whose refreshes carry ID tokens it
cannot verify, refreshed twice in a row by refresh() and by the worker; grant
types a provider does not enable; expires_in 0 or less. The rule that splits
a response (plpython/hush_plpy/oauth_response.py) is also tested on its own."""
from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import hush
from helpers import raises_sqlstate
from oauth_helpers import GRANTS, REDIRECT, SCOPES, browser, fresh_server, login, register, tenant_oauth

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plpython"))
from hush_plpy import errors as plpy_errors  # noqa: E402
from hush_plpy import oauth_response  # noqa: E402

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def manual(oa: hush.OAuth, srv: Any, name: str = "idp", **kw: Any) -> hush.Provider:
    """A provider with endpoints given by hand: no issuer, no jwks_uri, nothing to verify an ID token with."""
    args: dict[str, Any] = {"client_id": "app", "client_secret": "app-secret", "redirect_uris": [REDIRECT],
                            "scopes": SCOPES, "authorization_endpoint": srv.url("/authorize"),
                            "token_endpoint": srv.url("/token"), "grant_types": GRANTS}
    return oa.register_provider(name, **{**args, **kw})


def stored(db: Any, account: str, provider: str = "idp") -> dict[str, Any]:
    """Every token of a connection, read back through hush as alice (audited)."""
    row = db.sql("SELECT access_token, refresh_token, id_token FROM hush.oauth_connection_tokens('acme', %s, %s)",
                 [provider, account], user="alice")[0]
    return dict(zip(("access_token", "refresh_token", "id_token"), row))


def clear_text(db: Any) -> str:
    """Everything stored in clear about connections, and the whole audit trail, as text."""
    rows = db.sql("SELECT c::text FROM hush.oauth_connections c") + db.sql("SELECT a::text FROM hush.audit_log a")
    return "\n".join(r for (r,) in rows)


def make_due(db: Any) -> None:
    """As if the tokens were an hour old with seconds left: the worker's next round takes them."""
    db.sql("UPDATE hush.oauth_connections SET expires_at = now() + interval '10 seconds', "
           "refreshed_at = now() - interval '1 hour'")


# -- stranded connections: an ID token on refresh that cannot be verified ------------------

def test_manual_endpoints_with_openid_refresh_twice_in_a_row(db: Any, oauth_server: Any, caplog: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.id_token_grants = ("password", "refresh_token")  # as Keycloak and Okta answer with openid
    with tenant_oauth(db) as oa, caplog.at_level(logging.WARNING, logger="hush"):
        manual(oa, srv)
        first = oa.password_grant("idp", "alice", "alice-password", ["openid", "offline_access"])
        sent = srv.control.last_token_response
        assert sent and sent["id_token"]  # the provider sent one
        # Not verifiable, so kept out: its sub names no account (the password grant's username does).
        assert first.account == "alice" and first.id_token is None and first.claims is None
        assert first.id_token_rejected and "no issuer and jwks_uri" in first.id_token_rejected
        presented = [first.refresh_token]
        for _ in range(2):
            again = oa.refresh("idp", "alice")  # before: InvalidIdToken, then invalid_grant for good
            assert srv.control.last_token_response and srv.control.last_token_response["id_token"]
            assert again.refresh_token and again.refresh_token not in presented
            assert again.id_token is None and again.id_token_rejected == first.id_token_rejected
            assert stored(db, "alice") == {"access_token": again.access_token, "refresh_token": again.refresh_token,
                                           "id_token": None}
            presented.append(again.refresh_token)
        # Each refresh presented the token the one before had stored: each once, none refused.
        assert srv.control.refresh_uses == Counter({presented[0]: 1, presented[1]: 1})
        [conn] = oa.connections()
        assert conn.status == "active" and conn.last_error is None and conn.failures == 0
        assert oa.access_token("idp", "alice") == again.access_token
    logged = [r.getMessage() for r in caplog.records if r.name == "hush" and "kept out" in r.getMessage()]
    assert len(logged) == 3 and all("provider=idp account=alice" in line for line in logged)
    issued = [first.access_token, *presented, again.access_token]
    assert not any(t and t in caplog.text for t in issued)


def test_the_worker_refreshes_such_a_connection_twice_in_a_row(db: Any, oauth_server: Any, caplog: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.id_token_grants = ("password", "refresh_token")
    with tenant_oauth(db) as oa, caplog.at_level(logging.WARNING, logger="hush"):
        manual(oa, srv)
        first = oa.password_grant("idp", "alice", "alice-password", ["openid", "offline_access"])
        presented = [first.refresh_token]
        w = hush.OAuthWorker(db.dsn("wendy"))
        try:
            for _ in range(2):
                make_due(db)
                assert w.run_once() == {"refreshed": 1}  # before: failed (the ID token), then needs_reauth
                issued = srv.control.last_token_response
                assert issued and issued["id_token"] and issued["refresh_token"] not in presented
                assert stored(db, "alice") == {"access_token": issued["access_token"],
                                               "refresh_token": issued["refresh_token"], "id_token": None}
                presented.append(issued["refresh_token"])
        finally:
            w.close()
        assert srv.control.refresh_uses == Counter({presented[0]: 1, presented[1]: 1})
        assert [(c.status, c.failures, c.last_error) for c in oa.connections()] == [("active", 0, None)]
    assert any("kept out" in r.getMessage() and "refresh" in r.getMessage() for r in caplog.records)
    assert not any(t in caplog.text for t in presented if t)


def test_the_code_flow_without_anything_to_verify_with_keeps_the_id_token_out(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        manual(oa, srv)
        named = login(oa, account="octocat")  # openid asked: the code grant sends an ID token
        assert named.account == "octocat" and named.id_token is None and named.id_token_rejected
        # Nobody to say whose it is: the sub goes unused, the default account is taken.
        unnamed = login(oa)
        assert unnamed.account == "default" and unnamed.claims is None
        assert {c.account for c in oa.connections()} == {"octocat", "default"}
        assert stored(db, "default")["id_token"] is None


def test_a_verifiable_refresh_id_token_is_kept_and_a_bad_one_kept_out_not_the_tokens(db: Any,
                                                                                     oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.id_token_grants = ("refresh_token",)
    with tenant_oauth(db) as oa:
        register(oa, srv)  # discovery: issuer and jwks_uri
        tokens = login(oa)
        good = oa.refresh("idp")
        assert good.id_token and good.claims and good.claims["sub"] == "sub-alice" and good.id_token_rejected is None
        assert stored(db, "sub-alice")["id_token"] == good.id_token
        srv.control.tamper_id_token = True
        bad = oa.refresh("idp")
        assert bad.id_token is None and bad.claims is None and "signature" in (bad.id_token_rejected or "")
        assert stored(db, "sub-alice") == {"access_token": bad.access_token, "refresh_token": bad.refresh_token,
                                           "id_token": None}
        assert oa.refresh("idp").refresh_token not in (tokens.refresh_token, good.refresh_token, bad.refresh_token)
        # A new grant whose ID token fails is still refused, and nothing is stored.
        with pytest.raises(hush.InvalidIdToken):
            login(oa, account="someone")
        assert "someone" not in {c.account for c in oa.connections()}


# -- the full token response ---------------------------------------------------------------

def test_a_slack_style_response(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.response_style = "slack"
    with tenant_oauth(db) as oa:
        manual(oa, srv, "slack", scopes=["api:read", "api:write"], scope_separator=",")
        url, _state, binding = oa.start_authorization("slack", account="T0TEAM")
        assert parse_qs(urlsplit(url).query)["scope"] == ["api:read,api:write"]
        tokens = oa.complete_authorization(browser(url), binding=binding)
        sent = srv.control.last_token_response
        assert sent and sent["scope"] == "api:read,api:write"
        user_token, hook = sent["authed_user"]["access_token"], sent["incoming_webhook"]["url"]
        assert tokens.scopes == ("api:read", "api:write") and tokens.token_type == "bot"
        assert tokens.fields == {"ok": True, "bot_user_id": "U0BOT", "app_id": "A0APP", "enterprise": None,
                                 "is_enterprise_install": False, "team": {"id": "T0TEAM", "name": "Acme"},
                                 "authed_user": {"id": "U0USER", "scope": "chat:write,channels:history",
                                                 "token_type": "user"}}
        # A webhook URL lets anyone who has it post: the whole member is sealed.
        assert tokens.secret_fields == {"authed_user": {"access_token": user_token},
                                        "incoming_webhook": sent["incoming_webhook"]}
        assert user_token not in repr(tokens)
        read = oa.token("slack", "T0TEAM")  # the stored token, as any reader gets it
        assert read.scopes == ("api:read", "api:write")
        assert (read.fields, read.secret_fields) == (tokens.fields, tokens.secret_fields)
        [conn] = oa.connections()
        assert conn.scopes == ("api:read", "api:write") and conn.fields == tokens.fields
        # The scope separator goes out on the grants that send scopes, too.
        oa.password_grant("slack", "bob", "bob-password", ["api:read", "api:write"], account="bob")
        assert srv.control.token_scopes[-1] == "api:read,api:write"
        # Sealed: in no clear column, no listing, no audit row.
        assert user_token not in json.dumps([c.fields for c in oa.connections()], default=str)
    text = clear_text(db)
    assert user_token not in text and hook not in text and "xoxp-" not in text
    with db.connect("rita") as rita:  # hush.oauth_token from SQL: fields and secret_fields
        fields, secret = rita.execute("SELECT fields, secret_fields FROM hush.oauth_token('acme', 'slack', 'T0TEAM')"
                                      ).fetchone()
    assert fields["team"]["id"] == "T0TEAM" and secret["authed_user"]["access_token"] == user_token


def test_a_salesforce_style_response_and_its_refresh(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.response_style = "salesforce"
    with tenant_oauth(db) as oa:
        manual(oa, srv, "sf", scopes=["api", "offline_access"])
        tokens = login(oa, "sf", account="ceo")
        sent = srv.control.last_token_response
        assert sent and "expires_in" not in sent
        assert tokens.expires_at is None  # no expires_in: a token that does not expire
        assert tokens.fields == {"instance_url": "https://acme.my.salesforce.example",
                                 "id": "https://login.salesforce.example/id/00D0ACME/0050USER",
                                 "issued_at": sent["issued_at"]}
        # An HMAC keyed with the client secret over id and issued_at: sealed (oauth_response.py says why).
        assert tokens.secret_fields == {"signature": sent["signature"]}
        assert oa.token("sf", "ceo").fields == tokens.fields
        assert [c.fields for c in oa.connections("sf")] == [tokens.fields]
        # A refresh that answers without some field keeps the stored one; those it carries win.
        srv.control.response_style = None
        again = oa.refresh("sf", "ceo")
        assert again.fields == tokens.fields and again.secret_fields == tokens.secret_fields
        srv.control.response_style = "salesforce"
        third = oa.refresh("sf", "ceo")
        third_sent = srv.control.last_token_response
        assert third_sent and third.fields["issued_at"] == third_sent["issued_at"]
        assert third.secret_fields == {"signature": third_sent["signature"]}
    assert sent["signature"] not in clear_text(db) and third_sent["signature"] not in clear_text(db)


def test_fields_from_sql_stores_and_bad_provider_settings(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        manual(oa, srv, grant_types=["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:"
                                     "token-exchange"])
    response = {"access_token": "at-sql", "token_type": "N_A", "expires_in": "3600", "api_domain": "https://zoho.example",
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "refresh_token_expires_in": 86400, "x": {"session_key": "sk-1", "n": [1, 2]},
                "list": [{"token": "t-in-a-list"}]}
    with db.connect("alice") as alice:
        row = alice.execute("SELECT scopes, fields, secret_fields FROM hush.oauth_store_tokens('acme', 'idp', 'z', "
                            "'urn:ietf:params:oauth:grant-type:token-exchange', %s)", [json.dumps(response)]).fetchone()
        assert row[1] == {"api_domain": "https://zoho.example", "refresh_token_expires_in": 86400,
                          "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "x": {"n": [1, 2]}}
        assert row[2] == {"x": {"session_key": "sk-1"}, "list": [{"token": "t-in-a-list"}]}
        [(valid_for,)] = alice.execute("SELECT valid_for FROM hush.oauth_token('acme', 'idp', 'z')").fetchall()
        assert 3500 < valid_for <= 3600  # "3600", as Azure AD v1 sends it
        for config in ({"client_id": "c", "scope_separator": ":"}, {"client_id": "c", "scope_separator": ", "},
                       {"client_id": "c", "grant_types": []}, {"client_id": "c", "grant_types": "password"},
                       {"client_id": "c", "grant_types": [1]}):
            with raises_sqlstate("SH004"):
                alice.execute("SELECT hush.oauth_save_provider('acme', 'bad', %s)", [json.dumps(config)])
        big = {"access_token": "at-big", "blob": "x" * (oauth_response.MAX_FIELDS_BYTES + 1)}
        with raises_sqlstate("SH004"):
            alice.execute("SELECT hush.oauth_store_tokens('acme', 'idp', 'big', 'authorization_code', %s)",
                          [json.dumps(big)])
    assert "sk-1" not in clear_text(db) and "t-in-a-list" not in clear_text(db)
    assert db.sql("SELECT count(*) FROM hush.oauth_providers WHERE name = 'bad'") == [(0,)]
    assert db.sql("SELECT account FROM hush.oauth_connections") == [("z",)]


# -- grant types -----------------------------------------------------------------------------

def test_a_grant_type_the_provider_does_not_enable_is_refused(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        manual(oa, srv, grant_types=["authorization_code"])  # no refresh_token either
        with pytest.raises(hush.OAuthGrantNotEnabled) as e:
            oa.password_grant("idp", "bob", "bob-password")
        assert e.value.code == "SH081" and "'password'" in e.value.message and "bob-password" not in str(e.value)
        for refused in (lambda: oa.client_credentials("idp"), lambda: oa.start_device_authorization("idp"),
                        lambda: oa.grant("idp", "urn:ietf:params:oauth:grant-type:token-exchange", {})):
            with pytest.raises(hush.OAuthGrantNotEnabled):
                refused()
        assert srv.token_count() == 0  # refused before any request
        tokens = login(oa, account="u1")
        with pytest.raises(hush.OAuthGrantNotEnabled):  # a refresh needs refresh_token enabled
            oa.refresh("idp", "u1")
        assert srv.token_count("refresh_token") == 0
        [conn] = oa.connections()  # recorded like any failed refresh
        assert conn.status == "active" and conn.failures == 1 and conn.last_error
        assert oa.token("idp", "u1").access_token == tokens.access_token  # the stored tokens are as they were
        # The server refuses storing such tokens, whoever calls: nothing is written.
        with db.connect("alice") as alice:
            with raises_sqlstate("SH081"):
                alice.execute("SELECT hush.oauth_store_tokens('acme', 'idp', 'sql', 'password', %s)",
                              [json.dumps({"access_token": "at-sql", "expires_in": 60})])
        assert [c.account for c in oa.connections()] == ["u1"]
        assert oa.token("idp", "u1").access_token == tokens.access_token
        # Client credentials refresh by fetching again: they need client_credentials, not refresh_token.
        manual(oa, srv, "svc", grant_types=["client_credentials"])
        service = oa.client_credentials("svc", ["api:read"])
        assert oa.refresh("svc", service.account).access_token != service.access_token


def test_a_provider_saved_without_grant_types_allows_any(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    config = {"client_id": "app", "token_endpoint": srv.url("/token"), "token_endpoint_auth_method": "client_secret_basic"}
    with db.connect("alice") as alice:  # as a provider saved from SQL before grant types were enforced
        alice.execute("SELECT hush.oauth_save_provider('acme', 'old', %s, %s)", [json.dumps(config), "app-secret"])
        alice.execute("SELECT hush.oauth_store_tokens('acme', 'old', 'sql', 'password', %s)",
                      [json.dumps({"access_token": "at-sql", "refresh_token": "rt-sql", "expires_in": 60})])
    with tenant_oauth(db) as oa:
        assert oa.password_grant("old", "bob", "bob-password", account="bob").account == "bob"
        assert oa.client_credentials("old").access_token


# -- expires_in ------------------------------------------------------------------------------

@pytest.mark.parametrize("lifetime", [0, -30])
def test_expires_in_zero_or_less_is_refused_and_nothing_stored(db: Any, oauth_server: Any, lifetime: int) -> None:
    srv = fresh_server(oauth_server)
    srv.control.rotate_refresh_tokens = False  # the refresh token refused tokens came for stays good
    with tenant_oauth(db) as oa:
        register(oa, srv)
        srv.control.token_lifetime = lifetime
        with pytest.raises(hush.OAuthError, match="expires_in"):
            oa.password_grant("idp", "bob", "bob-password", account="bob")
        assert oa.connections() == []
        srv.control.token_lifetime = 30
        tokens = oa.password_grant("idp", "bob", "bob-password", account="bob")
        srv.control.token_lifetime = lifetime
        with pytest.raises(hush.OAuthError, match="expires_in"):  # a failed refresh, recorded as one
            oa.refresh("idp", "bob")
        [conn] = oa.connections()
        assert conn.status == "active" and conn.failures == 1 and "expires_in" in (conn.last_error or "")
        assert stored(db, "bob")["access_token"] == tokens.access_token  # as they were
        # The worker records it too, and backs off: no round after round for free.
        w = hush.OAuthWorker(db.dsn("wendy"))
        try:
            make_due(db)
            db.sql("UPDATE hush.oauth_connections SET next_attempt_at = NULL")
            assert w.run_once() == {"failed": 1}
            assert w.run_once() == {}
        finally:
            w.close()
        [conn] = oa.connections()
        assert conn.failures == 2 and conn.next_attempt_at is not None


def test_the_server_bounds_expires_in(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
    with db.connect("alice") as alice:
        for bad in (0, -1, 0.5, "0", "-5", "soon", "1e3", True, 10 ** 12, float("1e300")):
            with raises_sqlstate("SH004"):
                alice.execute("SELECT hush.oauth_store_tokens('acme', 'idp', 'x', 'authorization_code', %s)",
                              [json.dumps({"access_token": "at-x", "expires_in": bad})])
        ok = alice.execute("SELECT expires_at IS NULL FROM hush.oauth_store_tokens('acme', 'idp', 'x', "
                           "'authorization_code', %s)", [json.dumps({"access_token": "at-x"})]).fetchone()
        assert ok == (True,)
    assert db.sql("SELECT count(*) FROM hush.oauth_connections") == [(1,)]


# -- the rule on its own ---------------------------------------------------------------------

def test_the_rule_splits_by_name_recursively_and_fails_closed() -> None:
    clear, secret = oauth_response.split({
        "ok": True, "token_type": "bot", "issued_token_type": "urn:x", "refresh_token_expires_in": 3600,
        "id_token_hint": None, "api_key": "k", "client_secret": "s", "user_password": "p", "saml_assertion": "a",
        "signature": "h", "session_state": "st", "authed_user": {"id": "U1", "access_token": "u", "scope": "a,b"},
        "tokens": [{"kind": "x"}], "items": [{"name": "n"}, {"refresh_token": "r"}], "plain": [1, "two"],
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}},
        "token_type_long": "t" * 500, "token_count": 3})
    assert clear == {"ok": True, "token_type": "bot", "issued_token_type": "urn:x", "refresh_token_expires_in": 3600,
                     "id_token_hint": None, "authed_user": {"id": "U1", "scope": "a,b"}, "plain": [1, "two"]}
    assert secret == {"api_key": "k", "client_secret": "s", "user_password": "p", "saml_assertion": "a",
                      "signature": "h", "session_state": "st", "authed_user": {"access_token": "u"},
                      "tokens": [{"kind": "x"}], "items": [{"name": "n"}, {"refresh_token": "r"}],
                      "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}},
                      "token_type_long": "t" * 500, "token_count": 3}
    assert oauth_response.scopes("a,b , c,", ",") == ["a", "b", "c"]
    assert oauth_response.scopes("a  b\tc", " ") == ["a", "b", "c"] == oauth_response.scopes("a b c", None)
    assert oauth_response.merged({"a": 1, "b": 2}, {"b": 3}, 100) == {"a": 1, "b": 3}
    assert oauth_response.merged({"a": "x" * 100}, {"b": 3}, 100) == {"b": 3}  # no growth without end
    assert plpy_errors.CODES[plpy_errors.OAUTH_GRANT_NOT_ENABLED]
    assert hush.OAuthGrantNotEnabled.sqlstate == plpy_errors.OAUTH_GRANT_NOT_ENABLED


def test_short_secret_words_match_whole_name_components_both_ways() -> None:
    """jwt, bearer, sid, ticket, otp, pin, pwd, pass, auth, mac, hmac: a member is secret when
    one of its name's components (split on _ - . and between camelCase words, a plural's s
    dropped) is one of them; as part of a longer word they seal nothing (authed_user,
    pinterest_id, passport_number stay clear). The long words still match anywhere."""
    secret_names = ["id_jwt", "sessionJWT", "bearer", "twilio_sid", "sids", "ticket", "kerberos-tickets", "otp",
                    "otp_code", "userPIN", "PINCode", "pin", "pwd", "user.pwd", "pass", "wifi_pass", "x-auth",
                    "auth", "authParams", "mac", "request_mac", "hmac", "HMAC-SHA256", "hmacDigest",
                    "accesstoken", "apikey"]
    clear_names = ["authed_user", "author", "authority", "pinterest_id", "spinner", "passport_number", "compass",
                   "machine", "macro", "sidebar", "considered", "ticketing_url_count", "jwtish", "otpx",
                   "bearerless", "pwdx"]
    obj = {name: "v" for name in secret_names + clear_names}
    clear, secret = oauth_response.split(obj)
    assert sorted(secret) == sorted(secret_names)
    assert sorted(clear) == sorted(clear_names)
    # Slack's authed_user is split member by member, not sealed whole by "auth".
    clear, secret = oauth_response.split({"authed_user": {"id": "U1", "access_token": "xoxp-1", "scope": "a"}})
    assert clear == {"authed_user": {"id": "U1", "scope": "a"}} and secret == {"authed_user": {"access_token": "xoxp-1"}}
    # What such a name holds when it cannot carry a credential stays clear, as for the long words.
    assert oauth_response.split({"auth_type": "basic", "pin_expires_in": 300, "otp": None}) == (
        {"auth_type": "basic", "pin_expires_in": 300, "otp": None}, {})


def test_a_capability_url_is_sealed_whatever_its_name() -> None:
    """A URL that lets whoever holds it in (a signed query string, userinfo, a fragment, a
    webhook's path) is sealed under any name, nested or in a list; other URLs stay clear."""
    capabilities = {
        "download": "https://files.example/f/1?sig=abc&exp=1",
        "db": "postgres://app:pw@db.example/app",
        "share": "https://app.example/s#k=secret",
        "channel": {"url": "https://hooks.slack.com/services/T0/B0/XXXX"},
        "notify": "https://discord.com/api/webhooks/1/abc",
        "links": ["https://a.example/x", "https://b.example/y?token=t"],
        "spaced": "  HTTPS://files.example/g?x=1",
    }
    plain = {"instance_url": "https://acme.my.salesforce.example",
             "id": "https://login.salesforce.example/id/00D0ACME/0050USER", "api_domain": "https://www.zohoapis.com",
             "docs": "https://example.com/guide/", "note": "not a url ? really", "links2": ["https://a.example/x"]}
    clear, secret = oauth_response.split({**capabilities, **plain})
    assert clear == plain
    assert secret == capabilities


def test_sql_stores_keep_capability_urls_and_short_word_secrets_out_of_clear_columns(db: Any,
                                                                                     oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        manual(oa, srv)
    response = {"access_token": "at-sql", "id_jwt": "eyJ-secret-jwt", "user": {"pin": "4711", "name": "Bob"},
                "hook": {"url": "https://hooks.slack.com/services/T0/B0/HOOKSECRET"},
                "export": "https://files.example/e?sig=SIGSECRET", "authed_user": {"id": "U1"}}
    with db.connect("alice") as alice:
        fields, secret = alice.execute(
            "SELECT fields, secret_fields FROM hush.oauth_store_tokens('acme', 'idp', 'z', 'authorization_code', %s)",
            [json.dumps(response)]).fetchone()
    assert fields == {"user": {"name": "Bob"}, "authed_user": {"id": "U1"}}
    assert secret == {"id_jwt": "eyJ-secret-jwt", "user": {"pin": "4711"}, "hook": response["hook"],
                      "export": response["export"]}
    text = clear_text(db)
    for value in ("eyJ-secret-jwt", "4711", "HOOKSECRET", "SIGSECRET"):
        assert value not in text
