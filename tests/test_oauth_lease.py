"""The refresh lease is a credential, and readers' token writes are a tenant's
decision (issue 18): finish and release need the random token a claim hands
out (a label, which audit rows show, is no claim to anything); a reader's
needs_reauth only records the failure until the worker or a writer confirms
it; a reader's lease is short; the documented roles per OAuth function are the
grants. A tenant that keeps readers from writing token material at all
(configure_tenant(reader_refresh => false)) is test_oauth_reader_refresh.py's.
Against the loopback authorization server, as the non-superuser roles of
tests/conftest.py; the superuser only inspects."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

import hush
from docs_text import documented_roles
from helpers import raises_sqlstate
from oauth_helpers import fresh_server, register, stale_login, tenant_oauth
from oauth_lease_helpers import claim, connect_account, finish, release, stored


# -- the lease is a credential --------------------------------------------------------------------

@pytest.mark.parametrize("holder", ["not-the-lease-holder", "app-1", "hush_lease_" + "A" * 43])
def test_a_reader_without_the_lease_token_cannot_finish_or_release(db: Any, holder: str) -> None:
    """The issue's attack: a reader stored tokens of its choosing with a made-up holder. Now
    neither a made-up holder, nor the lease's label (which the audit trail shows), nor a
    made-up token finishes or releases, while a lease is held or not."""
    connect_account(db)
    before = stored(db)
    with db.connect("rita") as rita:
        for held in (False, True):
            if held:
                with db.connect("alice") as alice:
                    assert claim(alice, "app-1")["outcome"] == "claimed"
            with raises_sqlstate("SH075") as ei:
                finish(rita, holder)
            assert holder not in str(ei.value)
            with raises_sqlstate("SH075"):
                release(rita, holder, error="invalid_grant: forged", needs_reauth=True)
    assert stored(db) == before == ("at-1", "rt-1", "active", 0)
    # The label is what the audit trail shows of the lease, and all it shows.
    [detail] = db.sql("SELECT detail FROM hush.audit_log WHERE action = 'oauth_refresh_claim'")
    assert detail[0]["holder"] == "app-1"


def test_a_label_is_no_claim_to_a_lease(db: Any) -> None:
    """Claiming again under the lease holder's label used to hand over the lease (and the
    refresh token): labels are public now, so it is 'leased' like any other claim."""
    connect_account(db)
    with db.connect("alice") as alice, db.connect("rita") as rita:
        first = claim(alice, "app-1")
        assert first["outcome"] == "claimed" and first["lease_token"].startswith("hush_lease_")
        again = claim(rita, "app-1")
        assert again["outcome"] == "leased" and again["refresh_token"] is None and again["lease_token"] is None
        # The holder's own token renews the lease, refresh token and all, with no new token.
        renewed = claim(alice, first["lease_token"])
        assert (renewed["outcome"], renewed["lease_token"], renewed["refresh_token"]) == (
            "claimed", first["lease_token"], "rt-1")
        assert finish(alice, first["lease_token"], tokens=json.dumps({"access_token": "at-2"})) == 2
    assert stored(db)[:2] == ("at-2", "rt-1")


def test_a_finish_after_lease_until_with_the_current_token_succeeds(db: Any) -> None:
    """A worker whose provider was slow holds freshly rotated tokens: its lease ran out, but
    nobody claimed since, so its token is still the lease's and the tokens are kept."""
    connect_account(db)
    with db.connect("alice") as alice:
        token = claim(alice, "slow-worker", lease_seconds=1)["lease_token"]
        db.sql("UPDATE hush.oauth_connections SET lease_until = now() - interval '5 minutes'")
        assert finish(alice, token, tokens=json.dumps({"access_token": "at-2", "refresh_token": "rt-2"})) == 2
    assert stored(db) == ("at-2", "rt-2", "active", 0)
    assert db.sql("SELECT lease_holder, lease_until, lease_token_hash FROM hush.oauth_connections") == [
        (None, None, None)]


def test_a_superseded_token_fails(db: Any) -> None:
    connect_account(db)
    with db.connect("alice") as alice, db.connect("rita") as rita:
        old = claim(alice, "first", lease_seconds=1)["lease_token"]
        db.sql("UPDATE hush.oauth_connections SET lease_until = now() - interval '1 second'")
        new = claim(rita, "second")["lease_token"]
        assert new != old
        for call in (lambda: finish(alice, old), lambda: release(alice, old, error="HTTP 503"),
                     lambda: claim(alice, old)):
            with raises_sqlstate("SH075"):
                call()
        assert finish(rita, new, tokens=json.dumps({"access_token": "at-2"})) == 2
        with raises_sqlstate("SH075"):  # a lease is used once
            finish(rita, new, generation=2)
    assert stored(db)[:2] == ("at-2", "rt-1")


def test_each_leased_row_has_a_token_of_its_own(db: Any) -> None:
    for account in ("user-1", "user-2"):
        connect_account(db, account=account, tokens={"access_token": "at", "refresh_token": "rt", "expires_in": 60})
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = refreshed_at - interval '1 hour'")  # due now
    with db.connect("wendy") as wendy:
        rows = wendy.execute("SELECT account, generation, lease_token FROM hush.oauth_worker_claim('w', 10)").fetchall()
        assert sorted(r[0] for r in rows) == ["user-1", "user-2"]
        tokens = {account: token for account, _, token in rows}
        assert len(set(tokens.values())) == 2 and all(t.startswith("hush_lease_") for t in tokens.values())
        with raises_sqlstate("SH075"):  # user-1's token does not finish user-2
            finish(wendy, tokens["user-1"], account="user-2")
        assert finish(wendy, tokens["user-2"], account="user-2", tokens=json.dumps({"access_token": "at-2"})) == 2
        assert release(wendy, tokens["user-1"], account="user-1")
    assert stored(db, account="user-2")[0] == "at-2" and stored(db, account="user-1")[0] == "at"


def test_the_worker_with_a_star_grant_cannot_finish_a_connection_it_did_not_lease(db: Any) -> None:
    db.sql("SELECT hush.grant_tenant('wendy', '*')")
    connect_account(db, tenant="globex", user="bob")
    before = stored(db, tenant="globex")
    with db.connect("bob") as bob, db.connect("wendy") as wendy:
        for held in (False, True):
            if held:
                claim(bob, "bob-app", tenant="globex")
            for holder in ("bob-app", "w", "hush_lease_" + "B" * 43):
                with raises_sqlstate("SH075"):
                    finish(wendy, holder, tenant="globex")
                with raises_sqlstate("SH075"):
                    release(wendy, holder, tenant="globex", error="invalid_grant", needs_reauth=True)
    assert stored(db, tenant="globex") == before


def test_the_lease_token_is_in_no_audit_row_event_log_or_query_text(db: Any, cluster: Any,
                                                                    oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    tokens: list[str] = []
    with tenant_oauth(db) as oa:
        register(oa, srv)
        minted = [srv.mint("app", f"user{i}", 60) for i in range(3)]
        for i, t in enumerate(minted):
            connect_account(db, account=f"user{i}", tokens=t)
    # user2 as if issued an hour before its last minute: due for the worker
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = refreshed_at - interval '1 hour' "
           "WHERE account = 'user2'")
    with db.connect("alice") as alice, db.connect("rita") as rita:
        # By hand: claim, fail, claim, finish (as a writer and as a reader).
        for conn, account in ((alice, "user0"), (rita, "user1")):
            first = claim(conn, "app-1", account=account)
            tokens.append(first["lease_token"])
            release(conn, first["lease_token"], account=account, error="HTTP 503", needs_reauth=False)
            second = claim(conn, "app-1", account=account)
            tokens.append(second["lease_token"])
            finish(conn, second["lease_token"], account=account, tokens=json.dumps({"access_token": "x"}))
            [query] = db.sql("SELECT query FROM pg_stat_activity WHERE pid = %s", [conn.info.backend_pid])
            assert "hush_lease_" not in query[0]
    # The worker's way: tokens made on the server, one per row, used by hush.OAuthWorker.
    w = hush.OAuthWorker(db.dsn("wendy"))
    batch = w.claim()
    assert [b["account"] for b in batch] == ["user2"]
    tokens.append(batch[0]["lease_token"])
    assert tokens[-1] not in repr(batch) and "LeaseToken(...)" in repr(batch)  # never in a repr
    assert w.refresh_one(batch[0]) == "refreshed"
    w.close()
    assert len(set(tokens)) == 5 and all(re.fullmatch(r"hush_lease_[\w-]{43}", t) for t in tokens)
    trail = "\n".join(r[0] for r in db.sql("SELECT t::text FROM hush.audit_log t"))
    assert "oauth_refresh_claim" in trail and "oauth_refresh_failed" in trail and "oauth_refresh" in trail
    events = "\n".join(r[0] for r in db.sql("SELECT e::text FROM hush.oauth_events e"))
    rows = "\n".join(r[0] for r in db.sql("SELECT c::text FROM hush.oauth_connections c"))
    db.sql("SELECT pg_sleep(0.2)")  # let the logger flush
    log = cluster.log.read_text(errors="replace")
    assert "hush.oauth_finish_refresh" in log  # statements were logged...
    for t in tokens:
        assert t not in trail and t not in events and t not in rows and t not in log  # ...never a lease token


# -- a reader's needs_reauth, and who confirms it ---------------------------------------------------

def test_a_readers_needs_reauth_only_records_the_failure_and_the_worker_tries_at_once(
        db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        connect_account(db, tokens=srv.mint("app", "user-1", 3600))  # an hour left: not due
        with db.connect("rita") as rita:
            lease = claim(rita, "rita-app")
            assert release(rita, lease["lease_token"], error="token endpoint: invalid_grant", needs_reauth=True)
        [conn] = oa.connections()
        assert (conn.status, conn.failures, conn.last_error) == ("active", 1, "token endpoint: invalid_grant")
        assert conn.next_attempt_at is not None and conn.next_attempt_at <= conn.updated_at
        [event] = oa.events()
        assert (event.event, event.detail) == ("refresh_failed", {"error": "token endpoint: invalid_grant",
                                                                  "reauth_reported": True})
        [(detail,)] = db.sql("SELECT detail FROM hush.audit_log WHERE action = 'oauth_refresh_failed'")
        assert detail["reauth_reported"] is True and "needs_reauth" not in detail
        # Due for the worker now, though the token has an hour left: it tries, and the
        # refresh token is good, so the reader's word was wrong and nothing is stranded.
        w = hush.OAuthWorker(db.dsn("wendy"))
        assert w.run_once() == {"refreshed": 1}
        w.close()
        assert [(c.status, c.failures) for c in oa.connections()] == [("active", 0)]
        assert [e.event for e in oa.events()] == ["refresh_failed", "recovered"]
        assert db.sql("SELECT count(*) FROM hush.oauth_refresh_requests") == [(0,)]  # answered


@pytest.mark.parametrize("user", ["alice", "wendy"])
def test_a_writer_or_the_worker_marks_needs_reauth_from_its_own_attempt(db: Any, user: str) -> None:
    connect_account(db)
    with db.connect(user) as conn:
        lease = claim(conn, f"{user}-app")
        assert release(conn, lease["lease_token"], error="token endpoint: invalid_grant", needs_reauth=True)
    assert stored(db)[2:] == ("needs_reauth", 1)
    assert db.sql("SELECT event FROM hush.oauth_events") == [("needs_reauth",)]


def test_a_reader_told_invalid_grant_leaves_the_verdict_to_a_writer(db: Any, oauth_server: Any) -> None:
    """Through hush.OAuth: a reader whose refresh gets invalid_grant is told so, but the
    connection waits for the worker's (or a writer's) own attempt."""
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        stale_login(oa, srv)
    srv.refresh[stored(db, account="sub-alice")[1]].revoked = True
    with tenant_oauth(db, user="rita") as rita, pytest.raises(hush.ReauthorizationRequired):
        rita.access_token("idp")
    with tenant_oauth(db) as oa:
        assert [(c.status, c.failures) for c in oa.connections()] == [("active", 1)]
        with pytest.raises(hush.ReauthorizationRequired):  # the writer's own attempt confirms it
            oa.access_token("idp")
        assert [c.status for c in oa.connections()] == ["needs_reauth"]


# -- a reader's lease and backoff (reader_refresh true) ----------------------------------------------

def test_a_readers_lease_is_short_and_its_retry_after_ignored(db: Any) -> None:
    """A role that is only a reader held the lease for an hour, renewed for ever, and pushed
    the worker off for a day with retry_after_seconds. Its leases now last 120 s at most
    (a claim or a renewal), and its retry_after is ignored: the default backoff applies."""
    connect_account(db)
    lease_for = "SELECT extract(epoch FROM lease_until - now()) FROM hush.oauth_connections"
    with db.connect("rita") as rita:
        lease = claim(rita, "rita-app", lease_seconds=3600)
        assert lease["outcome"] == "claimed" and db.sql(lease_for)[0][0] <= 120
        assert claim(rita, lease["lease_token"], lease_seconds=3600)["outcome"] == "claimed"  # renewed
        assert db.sql(lease_for)[0][0] <= 120
        rita.execute("SELECT hush.oauth_release_refresh('acme', 'idp', 'user-1', %s, 1, 'provider said no', false, "
                     "86400)", [lease["lease_token"]])
    [(backoff,)] = db.sql("SELECT extract(epoch FROM next_attempt_at - now()) FROM hush.oauth_connections")
    assert 20 < backoff <= 30  # the first failure's 30 s, not a day
    # Writers (and the worker) keep theirs: they are trusted with the connection.
    with db.connect("alice") as alice:
        lease = claim(alice, "alice-app", lease_seconds=3600)
        assert db.sql(lease_for)[0][0] > 3500
        alice.execute("SELECT hush.oauth_release_refresh('acme', 'idp', 'user-1', %s, 1, 'provider said no', false, "
                      "86400)", [lease["lease_token"]])
    [(backoff,)] = db.sql("SELECT extract(epoch FROM next_attempt_at - now()) FROM hush.oauth_connections")
    assert backoff > 86000


# -- roles per function ----------------------------------------------------------------------------


def test_the_readme_roles_per_oauth_function_are_the_grants(db: Any) -> None:
    """The functions table of the docs says who may call each OAuth function; EXECUTE agrees."""
    documented = documented_roles("oauth_", r"`(oauth_\w+)")
    granted: dict[str, set[str]] = {}
    for name, grantees in db.sql("""SELECT p.proname, array(SELECT (a).grantee::regrole::text
                                                         FROM (SELECT aclexplode(p.proacl) AS a) x)
                                      FROM pg_proc p
                                     WHERE p.pronamespace = 'hush'::regnamespace AND p.proname LIKE 'oauth\\_%'"""):
        granted.setdefault(name, set()).update(set(grantees) - {"hush_owner"})
    assert documented == granted
