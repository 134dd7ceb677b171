"""OAuth2/OIDC flows end to end against the loopback authorization server
(tests/oauth_server.py, authlib's server components): nothing in the HTTP is
stubbed; the server counts what reaches it."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

import hush
from helpers import raises_sqlstate
from oauth_helpers import GRANTS, REDIRECT, browser, fresh_server, login, register, tenant_oauth, two_accounts


def test_discovery_fills_the_endpoints_and_manual_endpoints_work_alike(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        found = register(oa, srv).config
        assert found["issuer"] == srv.issuer
        assert found["token_endpoint"] == srv.url("/token")
        assert found["jwks_uri"] == srv.url("/jwks")
        assert found["device_authorization_endpoint"] == srv.url("/device_authorization")
        manual = oa.register_provider(
            "manual", client_id="app", client_secret="app-secret", redirect_uris=[REDIRECT], scopes=["email"],
            authorization_endpoint=srv.url("/authorize"), token_endpoint=srv.url("/token"),
            revocation_endpoint=srv.url("/revoke"), userinfo_endpoint=srv.url("/userinfo"))
        assert manual.config["issuer"] is None and manual.config["jwks_uri"] is None
        # Without openid there is no ID token: the account is the one named at the start.
        tokens = login(oa, "manual", account="octocat")
        assert tokens.account == "octocat" and tokens.id_token is None and tokens.claims is None
        assert oa.access_token("manual") == tokens.access_token
        assert {p.name for p in oa.providers()} == {"idp", "manual"}
        assert all(not hasattr(p, "client_secret") for p in oa.providers())


def test_authorization_code_with_pkce_and_id_token(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        url, state, binding = oa.start_authorization("idp")
        asked = parse_qs(urlsplit(url).query)
        assert asked["code_challenge_method"] == ["S256"] and len(asked["code_challenge"][0]) == 43
        assert asked["state"] == [state] and asked["nonce"][0]
        assert binding not in url and len(binding) == 43
        callback = browser(url)
        assert parse_qs(urlsplit(callback).query)["iss"] == [srv.issuer]
        tokens = oa.complete_authorization(callback, binding=binding)
        assert tokens.account == "sub-alice" and tokens.tenant == "acme"
        assert tokens.claims is not None and tokens.claims["email"] == "alice@example.com"
        assert tokens.claims["nonce"] == asked["nonce"][0]
        assert tokens.refresh_token and tokens.access_token.startswith("at-")
        assert "at-" not in repr(tokens) and "rt-" not in repr(tokens)
        assert oa.access_token("idp") == tokens.access_token
        assert srv.token_count("authorization_code") == 1
        [conn] = oa.connections()
        assert (conn.provider, conn.account, conn.status, conn.has_refresh_token) == (
            "idp", "sub-alice", "active", True)
        assert conn.scopes == ("openid", "email", "offline_access")


def test_a_callback_completes_once(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        url, _, binding = oa.start_authorization("idp")
        callback = browser(url)
        oa.complete_authorization(callback, binding=binding)
        with pytest.raises(hush.OAuthStateInvalid) as e:
            oa.complete_authorization(callback, binding=binding)
        assert e.value.code == "SH073"
        assert srv.token_count() == 1  # the replay never reached the token endpoint


def test_an_expired_state_is_refused_and_consumed(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        url, state, binding = oa.start_authorization("idp")
        callback = browser(url)
        db.sql("UPDATE hush.oauth_pending SET expires_at = now() - interval '1 second'")
        with pytest.raises(hush.OAuthStateInvalid, match="expired"):
            oa.complete_authorization(callback, binding=binding)
        assert db.sql("SELECT count(*) FROM hush.oauth_pending") == [(0,)]
        with pytest.raises(hush.OAuthStateInvalid, match="unknown or was already used"):
            oa.complete_authorization(callback, binding=binding)
        assert srv.token_count() == 0


def test_the_state_expires_after_the_ttl(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db, state_ttl=600) as oa:
        register(oa, srv)
        oa.start_authorization("idp")
        [(ttl,)] = db.sql("SELECT extract(epoch FROM expires_at - created_at) FROM hush.oauth_pending")
        assert float(ttl) == 600


def test_a_wrong_iss_in_the_callback_is_refused(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.callback_issuer = "http://127.0.0.1:1/evil"
    with tenant_oauth(db) as oa:
        register(oa, srv)
        url, _, binding = oa.start_authorization("idp")
        with pytest.raises(hush.InvalidCallback, match="RFC 9207"):
            oa.complete_authorization(browser(url), binding=binding)
        # A callback stripped of iss, from a provider that promises one, is refused too.
        url, _, binding = oa.start_authorization("idp")
        parts = urlsplit(browser(url))
        stripped = {k: v for k, v in parse_qs(parts.query).items() if k != "iss"}
        with pytest.raises(hush.InvalidCallback):
            oa.complete_authorization(parts._replace(query=urlencode(stripped, doseq=True)).geturl(),
                                      binding=binding)
        assert srv.token_count() == 0 and oa.connections() == []


@pytest.mark.parametrize("switch, check", [("tamper_id_token", "signature"), ("wrong_nonce", "nonce")])
def test_a_bad_id_token_is_refused_and_nothing_stored(db: Any, oauth_server: Any, switch: str, check: str) -> None:
    srv = fresh_server(oauth_server)
    setattr(srv.control, switch, True)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        with pytest.raises(hush.InvalidIdToken, match=check):
            login(oa)
        assert oa.connections() == []


def test_an_error_callback_is_raised_typed(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.deny = True
    with tenant_oauth(db) as oa:
        register(oa, srv)
        with pytest.raises(hush.AccessDenied) as e:
            login(oa)
        assert e.value.error == "access_denied"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_authentication_methods(db: Any, oauth_server: Any, method: str) -> None:
    # The server accepts only the method the client is registered with: a success is the proof.
    srv = fresh_server(oauth_server, auth_method=method)
    with tenant_oauth(db) as oa:
        register(oa, srv, token_endpoint_auth_method=method)
        assert login(oa).access_token
        other = "client_secret_post" if method == "client_secret_basic" else "client_secret_basic"
        register(oa, srv, name="wrong", token_endpoint_auth_method=other)
        with pytest.raises(hush.OAuthError) as e:
            login(oa, "wrong")
        assert e.value.error == "invalid_client"


def test_a_public_client_uses_pkce_alone(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server, auth_method="none", secret=None)
    with tenant_oauth(db) as oa:
        p = register(oa, srv, client_secret=None, token_endpoint_auth_method="none")
        assert not p.has_client_secret
        assert login(oa).account == "sub-alice"


def test_client_credentials_are_reused_until_they_near_expiry(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        first = oa.client_credentials("idp", ["api:read"])
        assert first.account == "@client:api:read" and first.refresh_token is None
        assert oa.client_credentials("idp", ["api:read"]).access_token == first.access_token
        assert srv.token_count("client_credentials") == 1
        other = oa.client_credentials("idp", ["api:write"])  # other scopes, another token
        assert other.access_token != first.access_token and srv.token_count("client_credentials") == 2
        db.sql("UPDATE hush.oauth_connections SET expires_at = now() + interval '30 seconds'")
        renewed = oa.client_credentials("idp", ["api:read"])
        assert renewed.access_token != first.access_token and srv.token_count("client_credentials") == 3
        assert oa.access_token("idp", "@client:api:read") == renewed.access_token


class FakeTime:
    """The OAuth object's clock and sleep: sleeping moves the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_device_flow_pending_slow_down_then_approval(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.device_slow_down_within = 60.0  # polls closer than a minute (real time) are too fast
    t = FakeTime()
    with tenant_oauth(db, clock=t.clock, sleep=t.sleep) as oa:
        register(oa, srv)
        device = oa.start_device_authorization("idp", ["openid", "api:read"])
        assert device.user_code and device.verification_uri == srv.url("/device")
        assert device.verification_uri_complete and device.user_code in device.verification_uri_complete
        assert (device.interval, device.expires_in) == (5, 600)
        with pytest.raises(hush.AuthorizationPending):
            oa.poll_device_token("idp", device)
        seen: list[int] = []

        def pending(interval: int) -> None:
            seen.append(interval)
            if len(seen) == 2:
                srv.approve_device(device.user_code, "bob")
        tokens = oa.wait_for_device_token("idp", device, on_pending=pending)
        assert t.sleeps == [5, 10, 15]  # each slow_down adds 5 seconds (RFC 8628 3.5)
        assert seen == [10, 15]
        assert tokens.account == "default" and tokens.refresh_token
        assert srv.token_count("urn:ietf:params:oauth:grant-type:device_code") == 4


def test_device_flow_denial_and_expiry(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    t = FakeTime()
    with tenant_oauth(db, clock=t.clock, sleep=t.sleep) as oa:
        register(oa, srv)
        denied = oa.start_device_authorization("idp", ["api:read"])
        srv.approve_device(denied.user_code, "bob", approved=False)
        with pytest.raises(hush.AccessDenied):
            oa.wait_for_device_token("idp", denied)
        expired = oa.start_device_authorization("idp", ["api:read"])
        srv.expire_device(expired.user_code)
        with pytest.raises(hush.ExpiredToken):
            oa.poll_device_token("idp", expired)
        # On the client's own clock: past expires_in, no more polling at all.
        late = oa.start_device_authorization("idp", ["api:read"])
        before = srv.token_count()
        with pytest.raises(hush.ExpiredToken):
            oa.wait_for_device_token("idp", late, on_pending=lambda _: setattr(t, "now", t.now + 600))
        assert srv.token_count() == before + 1
        assert oa.connections() == []


def test_password_grant(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        tokens = oa.password_grant("idp", "bob", "bob-password", ["api:read"])
        assert tokens.account == "bob" and oa.access_token("idp", "bob") == tokens.access_token
        with pytest.raises(hush.OAuthError) as e:
            oa.password_grant("idp", "bob", "wrong-password")
        # authlib's server answers invalid_request here (RFC 6749 would say invalid_grant): typed either way.
        assert e.value.error in ("invalid_grant", "invalid_request") and "wrong-password" not in str(e.value)


def test_token_exchange_as_a_generic_grant(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        subject = login(oa)
        exchanged = oa.grant("idp", "urn:ietf:params:oauth:grant-type:token-exchange",
                             {"subject_token": subject.access_token,
                              "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                              "scope": "api:read"}, account="downstream")
        assert exchanged.account == "downstream" and exchanged.access_token != subject.access_token
        assert srv.token_count("urn:ietf:params:oauth:grant-type:token-exchange") == 1


def test_several_accounts_must_be_named(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        two_accounts(oa, srv)
        with pytest.raises(hush.OAuthAccountAmbiguous, match="'sub-alice', 'sub-bob'"):
            oa.access_token("idp")
        assert oa.access_token("idp", "sub-bob")
        with pytest.raises(hush.OAuthConnectionNotFound):
            oa.access_token("idp", "sub-carol")
        with pytest.raises(hush.OAuthProviderNotFound):
            oa.access_token("nope")


def test_userinfo_and_revocation_reach_the_server(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        tokens = login(oa)
        assert oa.userinfo("idp") == {"sub": "sub-alice", "email": "alice@example.com"}
        assert oa.revoke("idp") is True
        assert srv.control.revoked == ["refresh_token", "access_token"]
        assert srv.tokens[tokens.access_token].revoked and srv.refresh[tokens.refresh_token or ""].revoked
        assert oa.connections() == []
        with pytest.raises(hush.OAuthConnectionNotFound):
            oa.access_token("idp")


def test_removing_a_provider_removes_its_connections(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        login(oa)
        oa.start_authorization("idp")
        assert oa.remove_provider("idp") is True
        assert oa.remove_provider("idp") is False
        assert oa.connections() == [] and db.sql("SELECT count(*) FROM hush.oauth_pending") == [(0,)]


def test_bad_input_is_refused_with_a_stable_sqlstate(db: Any, oauth_server: Any) -> None:
    fresh_server(oauth_server)
    refused = [("SH004", "SELECT hush.oauth_save_provider('acme', 'x', '[1]'::jsonb)"),
               ("SH004", "SELECT hush.oauth_save_provider('acme', 'x', '{}'::jsonb)"),
               ("SH001", "SELECT hush.oauth_save_provider('acme', '', '{\"client_id\": \"a\"}')"),
               ("SH070", "SELECT hush.oauth_token('acme', 'nope')"),
               ("SH073", "SELECT hush.oauth_consume('short', NULL)"),
               ("SH004", "SELECT hush.oauth_store_tokens('acme', 'x', 'a', 'password', '{}')"),
               ("SH002", "SELECT hush.oauth_providers('not a tenant')")]
    with db.connect("alice") as alice:
        for code, sql in refused:
            with raises_sqlstate(code):
                alice.execute(sql)
    assert db.sql("SELECT count(*) FROM hush.oauth_providers") == [(0,)]


def test_several_providers_at_once_and_discovery_refreshed(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        common = {"issuer_url": srv.issuer, "client_id": "app", "client_secret": "app-secret",
                  "redirect_uris": [REDIRECT], "grant_types": GRANTS}
        made = oa.register_providers({"one": dict(common, scopes=["openid"]), "two": dict(common, scopes=["email"])})
        assert [p.name for p in made] == ["one", "two"]
        db.sql("""UPDATE hush.oauth_providers SET config = config || '{"token_endpoint": "http://127.0.0.1:1/gone"}'
                   WHERE name = 'one'""")
        assert oa.provider("one").config["token_endpoint"].endswith("/gone")
        refreshed = oa.refresh_discovery("one")  # the metadata again; the sealed client secret is kept
        assert refreshed.config["token_endpoint"] == srv.url("/token") and refreshed.has_client_secret
        assert oa.client_credentials("one").access_token
        with pytest.raises(hush.InvalidArgument, match="issuer_url"):
            oa.register_provider("manual", client_id="app", client_secret="s", token_endpoint=srv.url("/token"))
            oa.refresh_discovery("manual")
