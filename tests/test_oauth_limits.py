"""Size and form limits on every OAuth input, server side (docs/reference.md, "Limits"): each at its
edge is accepted and one past it refused with a stable SQLSTATE, nothing written. As a
non-superuser (alice, hush_writer of acme)."""
from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from helpers import raises_sqlstate, rows

MiB = 1 << 20
BEGIN = ("SELECT hush.oauth_begin('acme', 'idp', %(state)s, %(code_verifier)s, %(nonce)s, %(redirect_uri)s, "
         "'{}', %(account)s, %(ttl_seconds)s, %(binding)s)")


def _counts(db: Any) -> list[tuple]:
    return db.sql("SELECT (SELECT count(*) FROM hush.oauth_pending), (SELECT count(*) FROM hush.oauth_providers), "
                  "(SELECT count(*) FROM hush.oauth_connections), (SELECT count(*) FROM hush.audit_log), "
                  "(SELECT count(*) FROM hush.oauth_events)")


def _begin_args(**kw: Any) -> dict[str, Any]:
    args = {"state": secrets.token_urlsafe(32), "code_verifier": "v" * 43, "nonce": "nonce-1",
            "redirect_uri": "https://app.example/cb", "account": None, "ttl_seconds": 600, "binding": "b" * 43}
    args.update(kw)
    return args


@pytest.fixture
def alice(db: Any) -> Any:
    with db.connect("alice") as a:
        a.execute("SELECT hush.oauth_save_provider('acme', 'idp', %s)", ['{"client_id": "app"}'])
        yield a


def _refused(db: Any, conn: Any, code: str, sql: str, args: Any) -> Any:
    before = _counts(db)
    with raises_sqlstate(code) as ei:
        conn.execute(sql, args)
    assert _counts(db) == before
    return ei.value


# (argument, at the edge, one past it or of the wrong form, SQLSTATE)
BEGIN_EDGES = [
    ("state", "s" * 16, "s" * 15, "SH073"),
    ("state", "s" * 512, "s" * 513, "SH073"),
    ("code_verifier", "v" * 43, "v" * 42, "SH004"),
    ("code_verifier", "v" * 128, "v" * 129, "SH004"),
    ("code_verifier", "aZ09-._~" * 6, "aZ09-._+" * 6, "SH004"),  # RFC 7636: unreserved characters only
    ("nonce", "n" * 512, "n" * 513, "SH004"),
    ("nonce", "n", "n\n", "SH004"),
    ("redirect_uri", "https://app.example/" + "p" * 2028, "https://app.example/" + "p" * 2029, "SH004"),
    ("redirect_uri", "com.example.app:/oauth2redirect", "app.example/cb", "SH004"),  # RFC 8252 7.1; no scheme
    ("redirect_uri", "http://127.0.0.1:8080/cb?x=1", "https://app.example/cb#fragment", "SH004"),
    ("redirect_uri", "https://app.example/cb", "https:///cb", "SH004"),
    ("redirect_uri", "https://app.example/cb", "https://app.example/c b", "SH004"),
    ("binding", "b" * 43, "b" * 42, "SH004"),
    ("binding", "b" * 128, "b" * 129, "SH004"),
    ("binding", "aZ09-_" * 8, "aZ09+/" * 8, "SH004"),  # base64url only
    ("account", "a" * 255, "a" * 256, "SH001"),
    ("ttl_seconds", 86400, 86401, "SH004"),
]


@pytest.mark.parametrize("arg, edge, past, code", BEGIN_EDGES)
def test_oauth_begin_takes_each_input_up_to_its_limit(db: Any, alice: Any, arg: str, edge: Any, past: Any,
                                                      code: str) -> None:
    alice.execute(BEGIN, _begin_args(**{arg: edge}))
    err = _refused(db, alice, code, BEGIN, _begin_args(**{arg: past}))
    if isinstance(past, str) and len(past) > 10:
        assert past not in str(err)  # never echoed: they may be secrets
    assert db.sql("SELECT count(*) FROM hush.oauth_pending") == [(1,)]


def test_a_50_mb_code_verifier_is_refused_before_anything_is_written(db: Any, alice: Any) -> None:
    """PostgreSQL reads a text argument whole, and PL/Python copies it, before hush's code
    runs: the 1 MiB cap on every text argument refuses it there, the verifier's own limit
    (128 characters) anything between."""
    err = _refused(db, alice, "SH004", BEGIN, _begin_args(code_verifier="v" * (50 * MiB)))
    assert "code_verifier" in str(err) and "52428800" in str(err)
    err = _refused(db, alice, "SH004", BEGIN, _begin_args(code_verifier="v" * MiB))
    assert "RFC 7636" in str(err)


def test_nulls_where_an_authorization_may_go_without(db: Any, alice: Any) -> None:
    """No PKCE (use_pkce=False), no nonce (no openid), no redirect URI: each may be NULL; the
    binding may not."""
    alice.execute(BEGIN, _begin_args(code_verifier=None, nonce=None, redirect_uri=None))
    _refused(db, alice, "SH004", BEGIN, _begin_args(binding=None))


def _provider(**extra: Any) -> str:
    return json.dumps({"client_id": "app", **extra})


SAVE = "SELECT hush.oauth_save_provider('acme', 'p2', %s, %s)"


def _nested(depth: int) -> str:
    """A config `depth` levels deep: the object itself, then lists inside each other."""
    return '{"client_id": "app", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize("edge, past", [
    ((_provider(), "s" * 16384), (_provider(), "s" * 16385)),
    ((_provider(), "é" * 8192), (_provider(), "é" * 8192 + "s")),  # bytes of UTF-8, not characters
    ((json.dumps({"client_id": "c" * 1024}), None), (json.dumps({"client_id": "c" * 1025}), None)),
    ((_provider(redirect_uris=[f"https://app.example/{i}" for i in range(100)]), None),
     (_provider(redirect_uris=[f"https://app.example/{i}" for i in range(101)]), None)),
    ((_provider(redirect_uris=["https://app.example/cb"]), None), (_provider(redirect_uris=["not a uri"]), None)),
    ((_provider(redirect_uris=["https://app.example/cb"]), None), (_provider(redirect_uris="https://x/cb"), None)),
    ((_nested(16), None), (_nested(17), None)),
])
def test_a_provider_takes_each_input_up_to_its_limit(db: Any, alice: Any, edge: tuple, past: tuple) -> None:
    alice.execute(SAVE, list(edge))
    err = _refused(db, alice, "SH004", SAVE, list(past))
    if past[1] is not None:
        assert past[1] not in str(err)
    assert db.sql("SELECT count(*) FROM hush.oauth_providers") == [(2,)]


def _padded(db: Any, limit: int, base: dict[str, Any], pad: str = "pad") -> str:
    """A JSON object whose jsonb text (what PL/Python gets) is exactly `limit` characters,
    `pad` (a field of its own, or one of base's strings) made as long as that takes."""
    short = json.dumps({**base, pad: base.get(pad, "")})
    n = limit - int(db.sql("SELECT length(%s::jsonb::text)", [short])[0][0])
    text = json.dumps({**base, pad: base.get(pad, "") + "x" * n})
    assert db.sql("SELECT length(%s::jsonb::text)", [text]) == [(limit,)]
    return text


def test_a_provider_config_and_tokens_up_to_64_kib(db: Any, alice: Any) -> None:
    alice.execute(SAVE, [_padded(db, 65536, {"client_id": "app"}), None])
    _refused(db, alice, "SH004", SAVE, [_padded(db, 65537, {"client_id": "app"}), None])
    store = "SELECT * FROM hush.oauth_store_tokens('acme', 'idp', 'u', 'authorization_code', %s)"
    alice.execute(store, [_padded(db, 65536, {"access_token": "at-1"}, "access_token")])
    _refused(db, alice, "SH004", store, [_padded(db, 65537, {"access_token": "at-1"}, "access_token")])


def test_a_release_error_is_cut_to_200_characters(db: Any, alice: Any) -> None:
    alice.execute("SELECT * FROM hush.oauth_store_tokens('acme', 'idp', 'u', 'authorization_code', %s)",
                  ['{"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600}'])
    lease = rows(alice, "SELECT * FROM hush.oauth_claim_refresh('acme', 'idp', 'u', 'worker-1', 60, 1)")[0]
    assert lease["outcome"] == "claimed"
    holder = lease.get("lease_token") or "worker-1"  # the lease token, where the lease has one
    error = "provider said:\n" + "e" * (MiB - 100)
    alice.execute("SELECT hush.oauth_release_refresh('acme', 'idp', 'u', %s, 1, %s)", [holder, error])
    [(last_error,)] = db.sql("SELECT last_error FROM hush.oauth_connections")
    assert last_error == ("provider said: " + "e" * 200)[:200]
    details = [d for (d,) in db.sql("SELECT detail FROM hush.audit_log WHERE action = 'oauth_refresh_failed'")]
    assert [len(d["error"]) for d in details] == [200]


# -- a token response's clear members (hostile review of issue 18) ------------------------------

STORE = "SELECT * FROM hush.oauth_store_tokens('acme', 'idp', 'u', 'authorization_code', %s)"


@pytest.mark.parametrize("edge, past", [
    ({"token_type": "t" * 200}, {"token_type": "t" * 201}),
    ({"scope": " ".join(f"s{i}" for i in range(1000))}, {"scope": " ".join(f"s{i}" for i in range(1001))}),
    ({"scope": ["s"] * 1000}, {"scope": ["s"] * 1001}),
    ({"scope": "a " + "s" * 1000}, {"scope": "a " + "s" * 1001}),
])
def test_a_stored_token_response_has_a_short_type_and_at_most_1000_scopes(db: Any, alice: Any, edge: dict,
                                                                            past: dict) -> None:
    """A 60 KB token_type or 30,000 scopes went into clear columns that every listing
    returns. A store (a new grant) refuses them, nothing written."""
    alice.execute(STORE, [json.dumps({"access_token": "at-1", **edge})])
    err = _refused(db, alice, "SH004", STORE, [json.dumps({"access_token": "at-1", **past})])
    assert "s" * 50 not in str(err) and "t" * 50 not in str(err)


def test_scope_items_that_are_not_strings_are_dropped(db: Any, alice: Any) -> None:
    """They were stored as Python reprs ('None', "{'k': 'v'}")."""
    row = rows(alice, STORE, [json.dumps({"access_token": "at-1", "scope": ["read", None, 1, {"k": "v"}, "", "write"]})])
    assert row[0]["scopes"] == ["read", "write"]
    assert db.sql("SELECT scopes FROM hush.oauth_connections") == [(["read", "write"],)]


def _claimed(db: Any, alice: Any) -> dict:
    alice.execute(STORE, [json.dumps({"access_token": "at-1", "refresh_token": "rt-1", "token_type": "Bearer",
                                      "scope": "read write", "expires_in": 3600, "instance_url": "https://a.example"})])
    return rows(alice, "SELECT * FROM hush.oauth_claim_refresh('acme', 'idp', 'u', 'app', 60, 1)")[0]


# A refresh answer the provider has already issued (the refresh token rotated), with members
# over every limit but the whole one (64 KiB): a too-long token_type, 1,001 scopes, clear
# fields over 16 KiB.
OVER = {"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600, "token_type": "T" * 300,
        "scope": " ".join(f"x{i}" for i in range(1001)), "small": "kept", "blob": "B" * 17000}


def _kept_and_noted(db: Any, response: dict, left_out: list[str]) -> None:
    tokens = db.sql("SELECT access_token, refresh_token FROM hush.oauth_connection_tokens('acme', 'idp', 'u')",
                    user="alice")
    assert tokens == [("at-2", "rt-2")]  # the rotated refresh token is kept, never thrown away
    [(token_type, scopes, fields, generation)] = db.sql(
        "SELECT token_type, scopes, fields, generation FROM hush.oauth_connections")
    assert (token_type, scopes, generation) == ("Bearer", ["read", "write"], 2)  # the stored ones stand
    assert fields == {"instance_url": "https://a.example", "small": "kept"}  # all but what was over
    [(detail,)] = db.sql("SELECT detail FROM hush.audit_log WHERE action = 'oauth_refresh'")
    assert sorted(detail["left_out"]) == sorted(left_out)
    trail = json.dumps(db.sql("SELECT a::text FROM hush.audit_log a")) + json.dumps(db.sql(
        "SELECT c::text FROM hush.oauth_connections c"))
    assert "TTTT" not in trail and "BBBB" not in trail and "x1000" not in trail


def test_a_refresh_over_the_limits_is_stored_without_what_is_over(db: Any, alice: Any) -> None:
    """The stranding path: refused whole, a refresh threw away a rotated refresh token the
    provider had already issued. oauth_finish_refresh keeps the tokens and leaves out only
    the members over a limit, which the audit row names (never their values)."""
    lease = _claimed(db, alice)
    alice.execute("SELECT * FROM hush.oauth_finish_refresh('acme', 'idp', 'u', %s, 1, %s)",
                  [lease["lease_token"], json.dumps(OVER)])
    _kept_and_noted(db, OVER, ["token_type", "scope", "fields"])


def test_a_refresh_over_64_kib_keeps_its_tokens(db: Any, alice: Any) -> None:
    big = {**OVER, "token_type": "Bearer", "scope": None, "blob": "B" * 70000}
    del big["scope"]
    lease = _claimed(db, alice)
    alice.execute("SELECT * FROM hush.oauth_finish_refresh('acme', 'idp', 'u', %s, 1, %s)",
                  [lease["lease_token"], json.dumps(big)])
    tokens = db.sql("SELECT access_token, refresh_token FROM hush.oauth_connection_tokens('acme', 'idp', 'u')",
                    user="alice")
    assert tokens == [("at-2", "rt-2")]
    [(detail,)] = db.sql("SELECT detail FROM hush.audit_log WHERE action = 'oauth_refresh'")
    assert detail["left_out"] == ["fields"]


def test_the_workers_batched_store_keeps_such_a_refresh_too(db: Any, alice: Any) -> None:
    alice.execute(STORE, [json.dumps({"access_token": "at-1", "refresh_token": "rt-1", "token_type": "Bearer",
                                      "scope": "read write", "expires_in": 30, "instance_url": "https://a.example"})])
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = now() - interval '1 hour'")
    with db.connect("wendy") as wendy:
        [lease] = rows(wendy, "SELECT * FROM hush.oauth_worker_claim('w', 10)")
        [out] = rows(wendy, "SELECT * FROM hush.oauth_worker_finish(ARRAY['acme'], ARRAY['idp'], ARRAY['u'], "
                            "ARRAY[%s], ARRAY[1], ARRAY[%s::jsonb])", [lease["lease_token"], json.dumps(OVER)])
    assert out["sqlstate"] is None and out["generation"] == 2
    _kept_and_noted(db, OVER, ["token_type", "scope", "fields"])


def test_a_refresh_without_an_access_token_is_still_refused(db: Any, alice: Any) -> None:
    lease = _claimed(db, alice)
    _refused(db, alice, "SH004", "SELECT * FROM hush.oauth_finish_refresh('acme', 'idp', 'u', %s, 1, %s)",
             [lease["lease_token"], json.dumps({**OVER, "access_token": ""})])
    assert db.sql("SELECT generation FROM hush.oauth_connections") == [(1,)]
