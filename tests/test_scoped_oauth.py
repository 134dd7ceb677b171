"""OAuth under scoped grants (issue 20): oauth_use and oauth_manage checked against
the provider's name. A provider outside the caller's oauth_use answers exactly as
one that is not registered (SH070); an oauth_manage step outside is refused with
SH020 from the name alone, whether the provider exists or not; the listings show
only the providers under the caller's prefixes; the worker refreshes only the
connections whose provider it may use; audit rows name the grant. Against the
loopback OAuth server, as non-superuser roles (the superuser only sets up and
inspects)."""
from __future__ import annotations

import json
from typing import Any, Iterator

import psycopg
import pytest

import hush
from helpers import raises_sqlstate
from oauth_helpers import fresh_server, register, tenant_oauth

PROVIDERS = ("github", "github-enterprise", "gitlab")
BINDING = "b" * 43
VERIFIER = "v" * 43


def scope(db: Any, role: str, tenant: str, *grants: tuple[str, tuple[str, ...]]) -> None:
    """Replace `role`'s grants on `tenant` by these (prefix, capabilities)."""
    db.sql("SELECT hush.revoke_tenant(%s, %s)", [role, tenant])
    api = db.sql("SELECT to_regprocedure('hush.grant(name,text,text,text[])') IS NOT NULL")[0][0]
    for prefix, caps in grants:
        if api:
            db.sql("SELECT hush.grant(%s, %s, %s, %s::text[])", [role, tenant, prefix, list(caps)], user="adam")
        else:
            db.sql("INSERT INTO hush.tenant_grants (tenant_id, role_name, granted_by, prefix, capabilities) "
                   "VALUES (%s, %s, 'postgres', %s, %s::text[])", [tenant, role, prefix, list(caps)])


def store(db: Any, srv: Any, tenant: str, provider: str, account: str = "u1", lifetime: int = 3600) -> dict:
    """Tokens minted at the loopback server, stored through hush by bob (every capability)."""
    minted = srv.mint("app", account, lifetime)
    db.sql("SELECT hush.oauth_store_tokens(%s, %s, %s, 'authorization_code', %s)",
           [tenant, provider, account, json.dumps(minted)], user="bob")
    return minted


@pytest.fixture
def acme(db: Any, oauth_server: Any) -> Iterator[Any]:
    """acme with the providers github, github-enterprise and gitlab (one loopback server), each
    with the account u1 connected; bob holds the whole tenant and set them up."""
    srv = fresh_server(oauth_server)
    db.sql("SELECT hush.grant_tenant('bob', 'acme')", user="adam")
    with tenant_oauth(db, user="bob") as oa:
        for name in PROVIDERS:
            register(oa, srv, name=name)
    for name in PROVIDERS:
        store(db, srv, "acme", name)
    yield srv


def error(db: Any, user: str, sql: str, params: dict) -> tuple[str | None, str]:
    """The SQLSTATE and message a call fails with ((None, '') when it does not fail)."""
    with db.connect(user) as conn:
        try:
            conn.execute(sql, params)
        except psycopg.Error as e:
            return e.sqlstate, str(e.diag.message_primary)
    return None, ""


def alike(db: Any, user: str, sql: str, params: dict, outside: str, absent: str = "gitlaz") -> tuple[str, str]:
    """The call on a provider outside the caller's grants fails exactly as on one not registered
    (`absent`, of the same length and first characters: messages show names by those)."""
    out = error(db, user, sql, dict(params, p=outside))
    missing = error(db, user, sql, dict(params, p=absent))
    assert out[0] is not None, f"{sql} on {outside!r} did not fail"
    assert (out[0], out[1].replace(outside, "NAME")) == (missing[0], missing[1].replace(absent, "NAME"))
    return out


def state_of(db: Any) -> list[Any]:
    """Everything an OAuth call could write, to compare before and after a refusal."""
    return db.sql("SELECT (SELECT count(*) FROM hush.audit_log), "
                  "(SELECT string_agg(t::text, ',' ORDER BY t.name) FROM hush.oauth_providers t), "
                  "(SELECT string_agg(t::text, ',' ORDER BY t.id) FROM hush.oauth_pending t), "
                  "(SELECT string_agg(t::text, ',' ORDER BY t.id) FROM hush.oauth_connections t)")


# -- oauth_use ------------------------------------------------------------------------------------

USE_CALLS = {
    "oauth_token": "SELECT access_token FROM hush.oauth_token('acme', %(p)s, %(a)s)",
    "oauth_access_token": "SELECT hush.oauth_access_token('acme', %(p)s, %(a)s, 0)",
    "oauth_request_refresh": "SELECT * FROM hush.oauth_request_refresh('acme', %(p)s, 'u1')",
    "oauth_claim_refresh": "SELECT * FROM hush.oauth_claim_refresh('acme', %(p)s, 'u1', 'me', 60, 1)",
    "oauth_finish_refresh": "SELECT * FROM hush.oauth_finish_refresh('acme', %(p)s, 'u1', 'hush_lease_x', 1, "
                            "'{\"access_token\": \"x\", \"token_type\": \"Bearer\"}')",
    "oauth_release_refresh": "SELECT hush.oauth_release_refresh('acme', %(p)s, 'u1', 'hush_lease_x', 1, 'e', true)",
}


@pytest.mark.parametrize("call", sorted(USE_CALLS))
@pytest.mark.parametrize("account", ["u1", None])
def test_a_provider_outside_oauth_use_answers_as_one_not_registered(db: Any, acme: Any, call: str,
                                                                   account: str | None) -> None:
    scope(db, "rita", "acme", ("github", ("oauth_use",)))
    before = state_of(db)
    code, _ = alike(db, "rita", USE_CALLS[call], {"a": account}, outside="gitlab")
    assert code == "SH070"
    assert state_of(db) == before
    # Inside the prefix the same call gets past the check (github-enterprise too: a literal prefix).
    for inside in ("github", "github-enterprise"):
        assert error(db, "rita", USE_CALLS[call], {"p": inside, "a": account})[0] != "SH070"


def test_oauth_use_reads_the_tokens_of_its_providers(db: Any, acme: Any) -> None:
    minted = store(db, acme, "acme", "github-enterprise", "u2")
    scope(db, "rita", "acme", ("github", ("oauth_use",)))
    with tenant_oauth(db, user="rita") as oa:
        assert oa.access_token("github-enterprise", "u2") == minted["access_token"]
        assert oa.token("github", "u1").access_token
        with pytest.raises(hush.OAuthProviderNotFound):
            oa.token("gitlab", "u1")
    # Inside, a connection that is not there is SH071, as ever.
    with raises_sqlstate("SH071"):
        db.sql("SELECT * FROM hush.oauth_token('acme', 'github', 'nobody')", user="rita")


def test_the_reader_refresh_check_comes_first_outside_as_for_a_missing_provider(db: Any, acme: Any) -> None:
    db.sql("SELECT hush.configure_tenant('acme', reader_refresh => false)", user="adam")
    scope(db, "rita", "acme", ("github", ("oauth_use",)))
    for call in ("oauth_claim_refresh", "oauth_finish_refresh", "oauth_release_refresh"):
        assert alike(db, "rita", USE_CALLS[call], {"a": None}, outside="gitlab")[0] == "SH077"


def test_oauth_use_refreshes_on_demand_and_audit_rows_name_the_grant(db: Any, acme: Any) -> None:
    scope(db, "rita", "acme", ("github", ("oauth_use",)))
    with tenant_oauth(db, user="rita") as oa:
        old = oa.token("github", "u1")
        new = oa.refresh("github", "u1")
        assert new.access_token != old.access_token
    grant = {"tenant": "acme", "role": "rita", "prefix": "github"}
    rows = db.sql("SELECT action, detail->'grant' FROM hush.audit_log WHERE db_role = 'rita' ORDER BY id")
    assert {a for a, _ in rows} >= {"oauth_token_read", "oauth_refresh_claim", "oauth_refresh"}
    assert all(g == grant for _, g in rows), rows


# -- oauth_manage ---------------------------------------------------------------------------------

MANAGE_CALLS = {
    "oauth_save_provider": "SELECT hush.oauth_save_provider('acme', %(p)s, '{\"client_id\": \"x\"}', 'shh')",
    "oauth_remove_provider": "SELECT hush.oauth_remove_provider('acme', %(p)s)",
    "oauth_provider": "SELECT * FROM hush.oauth_provider('acme', %(p)s)",
    "oauth_begin": "SELECT hush.oauth_begin('acme', %(p)s, %(state)s, %(verifier)s, NULL, NULL, NULL, "
                   "binding => %(binding)s)",
    "oauth_store_tokens": "SELECT * FROM hush.oauth_store_tokens('acme', %(p)s, 'u1', 'authorization_code', "
                          "'{\"access_token\": \"x\", \"token_type\": \"Bearer\"}')",
    "oauth_connection_tokens": "SELECT * FROM hush.oauth_connection_tokens('acme', %(p)s, 'u1')",
    "oauth_disconnect": "SELECT hush.oauth_disconnect('acme', %(p)s, 'u1')",
}
MANAGE_ACTIONS = {"oauth_save_provider": "oauth_provider_save", "oauth_remove_provider": "oauth_provider_remove",
                  "oauth_provider": "oauth_client_secret_read", "oauth_begin": "oauth_authorize",
                  "oauth_store_tokens": "oauth_token_store", "oauth_connection_tokens": "oauth_tokens_read",
                  "oauth_disconnect": "oauth_disconnect"}


@pytest.mark.parametrize("call", sorted(MANAGE_CALLS))
def test_oauth_manage_one_function_at_a_time(db: Any, acme: Any, call: str) -> None:
    # alice uses every provider but manages github's only.
    scope(db, "alice", "acme", ("", ("oauth_use",)), ("github", ("oauth_manage",)))
    # mallory, a writer, has no oauth_manage at all (oauth_use on the whole tenant).
    scope(db, "mallory", "acme", ("", ("oauth_use", "read", "write")))
    params = {"state": "s" * 32, "verifier": VERIFIER, "binding": BINDING}
    before = state_of(db)
    # Refused from the name alone: an existing provider outside and one that is not there alike.
    code, message = alike(db, "alice", MANAGE_CALLS[call], params, outside="gitlab")
    assert code == "SH020" and "oauth_manage" in message
    with raises_sqlstate("SH020"):  # a literal prefix: 'git' is not under 'github'
        db.sql(MANAGE_CALLS[call], dict(params, p="git"), user="alice")
    assert state_of(db) == before
    with raises_sqlstate("SH020"):
        db.sql(MANAGE_CALLS[call], dict(params, p="github"), user="mallory")
    assert state_of(db) == before
    # Inside, it does its work, and its audit row names the grant.
    db.sql(MANAGE_CALLS[call], dict(params, p="github"), user="alice")
    details = db.sql("SELECT detail->'grant' FROM hush.audit_log WHERE db_role = 'alice' AND action = %s",
                     [MANAGE_ACTIONS[call]])
    assert details == [({"tenant": "acme", "role": "alice", "prefix": "github"},)]


def test_oauth_use_without_oauth_manage_saves_no_provider_and_reads_no_client_secret(db: Any, acme: Any) -> None:
    scope(db, "alice", "acme", ("", ("oauth_use", "read", "write")))
    with tenant_oauth(db, user="alice") as oa:
        assert oa.token("github", "u1").access_token  # the tokens, yes
        with pytest.raises(hush.TenantAccessDenied):
            register(oa, acme, name="github")
        with pytest.raises(hush.TenantAccessDenied):
            register(oa, acme, name="brand-new")
        with pytest.raises(hush.TenantAccessDenied):  # its own tokens by client credentials: a new authorization
            oa.client_credentials("github")
        assert oa.provider("github").config["client_id"] == "app"  # the listing's config, never the secret
    with raises_sqlstate("SH020"):
        db.sql("SELECT client_secret FROM hush.oauth_provider('acme', 'github')", user="alice")
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE db_role = 'alice' "
                  "AND action IN ('oauth_provider_save', 'oauth_client_secret_read')") == [(0,)]
    assert db.sql("SELECT count(*) FROM hush.oauth_providers WHERE name = 'brand-new'") == [(0,)]


def test_a_callback_of_a_provider_outside_oauth_manage_is_refused_and_left_pending(db: Any, acme: Any) -> None:
    scope(db, "alice", "acme", ("github", ("oauth_use", "oauth_manage")))
    states = {}
    for name in ("github", "gitlab"):
        states[name] = ("s-" + name).ljust(32, "x")
        db.sql("SELECT hush.oauth_begin('acme', %s, %s, %s, NULL, NULL, NULL, binding => %s)",
               [name, states[name], VERIFIER, BINDING], user="bob")
    before = state_of(db)
    with raises_sqlstate("SH020") as ei:
        db.sql("SELECT * FROM hush.oauth_consume(%s, %s)", [states["gitlab"], BINDING], user="alice")
    assert "gitlab" not in str(ei.value) and "oauth_manage" in str(ei.value)
    assert state_of(db) == before  # nothing taken, nothing recorded
    # The state is still good for a role that may manage gitlab; alice completes her own.
    assert db.sql("SELECT provider, code_verifier FROM hush.oauth_consume(%s, %s)", [states["gitlab"], BINDING],
                  user="bob") == [("gitlab", VERIFIER)]
    assert db.sql("SELECT provider, code_verifier FROM hush.oauth_consume(%s, %s)", [states["github"], BINDING],
                  user="alice") == [("github", VERIFIER)]
    assert db.sql("SELECT detail->'grant' FROM hush.audit_log WHERE db_role = 'alice' AND action = 'oauth_callback'") \
        == [({"tenant": "acme", "role": "alice", "prefix": "github"},)]


# -- listings -------------------------------------------------------------------------------------

def test_listings_show_only_providers_under_oauth_use_or_oauth_manage(db: Any, acme: Any) -> None:
    for name in ("gitlab", *PROVIDERS):  # gitlab's first: a page of one must skip it, not show it
        db.sql("INSERT INTO hush.oauth_events (tenant_id, provider, account, event, detail) "
               "VALUES ('acme', %s, 'u1', 'refresh_failed', '{}')", [name])
    scope(db, "alice", "acme", ("github", ("oauth_use",)))
    assert db.sql("SELECT provider FROM hush.oauth_events('acme', max_rows => 1)", user="alice") == [("github",)]

    def listed(user: str) -> tuple[list, list, list, list]:
        with db.connect(user) as conn:
            return ([r[0] for r in conn.execute("SELECT name FROM hush.oauth_providers('acme')")],
                    [r[0] for r in conn.execute("SELECT provider FROM hush.oauth_connections('acme')")],
                    [r[0] for r in conn.execute("SELECT provider FROM hush.oauth_connections('acme', 'gitlab')")],
                    [r[0] for r in conn.execute("SELECT provider FROM hush.oauth_events('acme')")])
    github = ["github", "github-enterprise"]
    assert listed("alice") == (github, github, [], github)
    # oauth_manage counts as well; a grant of another capability only (read) does not.
    scope(db, "alice", "acme", ("github", ("oauth_use",)), ("gitlab", ("oauth_manage",)), ("", ("read",)))
    assert listed("alice") == (list(PROVIDERS), list(PROVIDERS), ["gitlab"], ["gitlab", *PROVIDERS])
    scope(db, "alice", "acme", ("", ("read", "list")))
    assert listed("alice") == ([], [], [], [])


# -- the worker -----------------------------------------------------------------------------------

@pytest.mark.parametrize("grant_tenant", ["acme", "*"])
def test_the_worker_refreshes_only_connections_of_providers_it_may_use(db: Any, acme: Any,
                                                                       grant_tenant: str) -> None:
    db.sql("SELECT hush.grant_tenant('bob', 'globex')", user="adam")
    with tenant_oauth(db, user="bob", tenant="globex") as oa:
        register(oa, acme, name="github")
    store(db, acme, "globex", "github")
    for name in PROVIDERS:  # every connection falls due (30 s left of a token an hour old)
        store(db, acme, "acme", name, "due", lifetime=30)
    store(db, acme, "globex", "github", "due", lifetime=30)
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = refreshed_at - interval '1 hour' WHERE account = 'due'")
    scope(db, "wendy", "acme")
    scope(db, "wendy", grant_tenant, ("github", ("oauth_use",)))
    with db.connect("wendy") as conn:
        assert conn.execute("SELECT hush.oauth_worker_next_due()").fetchone()[0] == 0
    w = hush.OAuthWorker(db.dsn("wendy"))
    assert w.run_once() == {"refreshed": 2 if grant_tenant == "acme" else 3}
    w.close()
    refreshed = db.sql("SELECT tenant_id, provider FROM hush.oauth_connections WHERE account = 'due' "
                       "AND generation = 2 ORDER BY 1, 2")
    expect = [("acme", "github"), ("acme", "github-enterprise")]
    assert refreshed == expect + ([("globex", "github")] if grant_tenant == "*" else [])
    with db.connect("wendy") as conn:
        # gitlab's connection is still due, but not the worker's: it sleeps until one of its own is.
        assert conn.execute("SELECT hush.oauth_worker_next_due()").fetchone()[0] > 60
        assert conn.execute("SELECT count(*) FROM hush.oauth_worker_claim('w')").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM hush.oauth_worker_lease('w')").fetchone()[0] == 0
        # A finish it was never leased: outside, as for a provider that is not there.
        finished = {p: conn.execute("SELECT sqlstate, message FROM hush.oauth_worker_finish(ARRAY['acme'], "
                                    "ARRAY[%s], ARRAY['due'], ARRAY['hush_lease_x'], ARRAY[1], "
                                    "ARRAY['{\"access_token\": \"x\"}']::jsonb[])", [p]).fetchone()
                    for p in ("gitlab", "gitlaz")}
    assert finished["gitlab"][0] == "SH070"
    assert finished["gitlab"][1] == finished["gitlaz"][1]
    grants = db.sql("SELECT DISTINCT action, detail->'grant' FROM hush.audit_log WHERE db_role = 'wendy' "
                    "ORDER BY 1")
    grant = {"tenant": grant_tenant, "role": "wendy", "prefix": "github"}
    assert grants == [("oauth_refresh", grant), ("oauth_refresh_claim", grant)]
