"""The refresh lease is a credential, and readers' token writes are a tenant's
decision (issue 18): finish and release need the random token a claim hands
out (a label, which audit rows show, is no claim to anything); a reader's
needs_reauth only records the failure until the worker or a writer confirms
it; configure_tenant(reader_refresh => false) keeps readers from writing token
material at all, and hush.OAuth then asks the worker (oauth_request_refresh)
and waits, with a bounded wait. Against the loopback authorization server, as
the non-superuser roles of tests/conftest.py; the superuser only inspects."""
from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import hush
from helpers import raises_sqlstate, rows
from oauth_helpers import fresh_server, register, stale_login, tenant_oauth

README = Path(__file__).resolve().parent.parent / "README.md"
PROVIDER = json.dumps({"client_id": "c", "token_endpoint": "https://idp.example/token"})
FORGED = json.dumps({"access_token": "attacker-token", "refresh_token": "attacker-refresh", "expires_in": 3600})


def claim(conn: psycopg.Connection, holder: str, generation: int = 1, account: str = "user-1",
          tenant: str = "acme", lease_seconds: int = 60) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM hush.oauth_claim_refresh(%s, 'idp', %s, %s, %s, %s)",
                       [tenant, account, holder, lease_seconds, generation])
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def finish(conn: psycopg.Connection, holder: str, generation: int = 1, account: str = "user-1",
           tenant: str = "acme", tokens: str = FORGED) -> Any:
    return conn.execute("SELECT generation FROM hush.oauth_finish_refresh(%s, 'idp', %s, %s, %s, %s)",
                        [tenant, account, holder, generation, tokens]).fetchone()[0]


def release(conn: psycopg.Connection, holder: str, generation: int = 1, error: str | None = None,
            needs_reauth: bool = False, account: str = "user-1", tenant: str = "acme") -> bool:
    return bool(conn.execute("SELECT hush.oauth_release_refresh(%s, 'idp', %s, %s, %s, %s, %s)",
                             [tenant, account, holder, generation, error, needs_reauth]).fetchone()[0])


def connect_account(db: Any, tenant: str = "acme", user: str = "alice", account: str = "user-1",
                    tokens: dict[str, Any] | None = None) -> None:
    """A provider (unless there) and a connection whose tokens are `tokens` (or stand-ins)."""
    with db.connect(user) as conn:
        if not conn.execute("SELECT 1 FROM hush.oauth_providers(%s) WHERE name = 'idp'", [tenant]).fetchall():
            conn.execute("SELECT hush.oauth_save_provider(%s, 'idp', %s)", [tenant, PROVIDER])
        conn.execute("SELECT hush.oauth_store_tokens(%s, 'idp', %s, 'authorization_code', %s)",
                     [tenant, account, json.dumps(tokens or {"access_token": "at-1", "refresh_token": "rt-1",
                                                             "expires_in": 3600})])


def stored(db: Any, tenant: str = "acme", account: str = "user-1") -> tuple[Any, ...]:
    """The connection's tokens and state, read as a writer of its tenant."""
    user = "alice" if tenant == "acme" else "bob"
    with db.connect(user) as conn:
        tokens = conn.execute("SELECT access_token, refresh_token FROM hush.oauth_connection_tokens(%s, 'idp', %s)",
                              [tenant, account]).fetchone()
        state = conn.execute("SELECT status, failures FROM hush.oauth_connections(%s, 'idp') WHERE account = %s",
                             [tenant, account]).fetchone()
    return (*tokens, *state)


def reader_refresh(db: Any, on: bool, tenant: str = "acme") -> None:
    db.sql("SELECT hush.configure_tenant(%s, reader_refresh => %s)", [tenant, on], user="adam")


def backdate(db: Any, seconds: int = 120) -> None:
    """As if the connections' last refresh were `seconds` ago (their expiry unchanged)."""
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = now() - make_interval(secs => %s)", [seconds])


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


# -- reader_refresh => false ---------------------------------------------------------------------------

def test_with_reader_refresh_off_a_reader_writes_no_token_material(db: Any) -> None:
    connect_account(db)
    backdate(db)  # a minute and more since the last refresh: a request is taken
    with db.connect("rita") as rita:
        token = claim(rita, "rita-app")["lease_token"]  # taken while readers still may
        with db.connect("adam") as adam:
            assert hush.Tenants(adam).configure("acme", reader_refresh=False).reader_refresh is False
        for call in (lambda: claim(rita, "rita-app"), lambda: claim(rita, token), lambda: finish(rita, token),
                     lambda: release(rita, token, error="invalid_grant", needs_reauth=True)):
            with raises_sqlstate("SH077") as ei:
                call()
            assert token not in str(ei.value)
        # Asking writes no token material, and is what a reader may do.
        with db.connect("otto") as listener:
            listener.execute("LISTEN hush_oauth_wakeup")
            assert rita.execute("SELECT generation FROM hush.oauth_request_refresh('acme', 'idp', 'user-1')").fetchone() == (1,)
            assert [n.payload for n in listener.notifies(timeout=2, stop_after=1)] == [""]
    assert stored(db) == ("at-1", "rt-1", "active", 0)
    assert db.sql("SELECT account FROM hush.oauth_refresh_requests") == [("user-1",)]
    # Writers and the worker are not readers only: they still refresh.
    with db.connect("alice") as alice:
        assert finish(alice, token, tokens=json.dumps({"access_token": "at-2"})) == 2
    assert db.sql("SELECT detail->>'reader_refresh' FROM hush.audit_log WHERE action = 'configure_tenant'") == [
        ("false",)]


def test_with_reader_refresh_off_a_reader_is_served_by_the_worker(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        old = stale_login(oa, srv)  # 30 s left: inside the client's 60 s skew
    backdate(db)  # as an hour-long token would be by then (a minute after a refresh, requests count)
    reader_refresh(db, False)
    # A worker with a 10 s window: the token is not due for it for another 20 s.
    w = hush.OAuthWorker(db.dsn("wendy"), window=10, interval=600)
    runner = threading.Thread(target=w.run)
    runner.start()
    try:
        listening = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%LISTEN hush_oauth_wakeup'"
        began = time.monotonic()
        while db.sql(listening) != [(1,)] and time.monotonic() - began < 10:
            time.sleep(0.05)
        assert db.sql(listening) == [(1,)]  # wake-ups reach it from now on
        with tenant_oauth(db, user="rita", refresh_wait=15.0) as rita:
            began = time.monotonic()
            new = rita.access_token("idp")
            took = time.monotonic() - began
    finally:
        w.stop()
        runner.join(timeout=10)
    assert not runner.is_alive()
    assert new != old.access_token and took < 10  # the request woke the worker
    assert srv.token_count("refresh_token") == 1 and w.stats["refreshed"] == 1
    roles = db.sql("SELECT db_role FROM hush.audit_log WHERE action = 'oauth_refresh' ORDER BY id")
    assert roles == [("wendy",)]


def test_with_reader_refresh_off_and_no_worker_the_wait_ends_in_sh078(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        old = stale_login(oa, srv)
    backdate(db)
    reader_refresh(db, False)
    with tenant_oauth(db, user="rita", refresh_wait=0.5) as rita:
        began = time.monotonic()
        with pytest.raises(hush.OAuthRefreshUnanswered) as ei:
            rita.access_token("idp")
        assert time.monotonic() - began < 5
    assert ei.value.code == "SH078" and "oauth-worker" in ei.value.message
    assert srv.token_count("refresh_token") == 0
    # Nothing changed, and the request stands for a worker to find.
    assert db.sql("SELECT access_token FROM hush.oauth_token('acme', 'idp')", user="alice") == [(old.access_token,)]
    assert db.sql("SELECT count(*) FROM hush.oauth_refresh_requests") == [(1,)]


def test_a_readers_refresh_within_a_minute_of_the_last_one_returns_the_stored_token(
        db: Any, oauth_server: Any) -> None:
    """The request is not recorded then (at most one a minute per connection): the client
    is told so and reads the token stored a moment ago, rather than wait for an answer that
    will not come and fail with SH078."""
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        stored_now = stale_login(oa, srv)  # stored just now: inside the minute
    reader_refresh(db, False)
    with tenant_oauth(db, user="rita", refresh_wait=30.0) as rita:
        assert rita.refresh("idp").access_token == stored_now.access_token
    assert srv.token_count("refresh_token") == 0
    assert db.sql("SELECT count(*) FROM hush.oauth_refresh_requests") == [(0,)]


def test_a_request_for_a_connection_nobody_can_refresh_fails_at_once(db: Any) -> None:
    connect_account(db, tokens={"access_token": "at-only", "expires_in": 60})  # no refresh token
    with db.connect("rita") as rita:
        with raises_sqlstate("SH074"):
            rita.execute("SELECT hush.oauth_request_refresh('acme', 'idp', 'user-1')")
        with raises_sqlstate("SH071"):
            rita.execute("SELECT hush.oauth_request_refresh('acme', 'idp', 'nobody')")
    with db.connect("bob") as bob, raises_sqlstate("SH020"):
        bob.execute("SELECT hush.oauth_request_refresh('acme', 'idp', 'user-1')")
    with db.connect("otto") as otto, raises_sqlstate("42501"):
        otto.execute("SELECT hush.oauth_request_refresh('acme', 'idp', 'user-1')")


# -- a request locks nothing the worker needs (hostile review of issue 18) -----------------------

def row_locked(db: Any) -> bool:
    """Whether some transaction holds a lock on a connection row (FOR KEY SHARE included)."""
    try:
        db.sql("SELECT 1 FROM hush.oauth_connections FOR UPDATE NOWAIT")
    except psycopg.errors.LockNotAvailable:
        return True
    return False


def test_a_reader_idling_after_a_request_holds_no_lock_the_worker_waits_for(db: Any) -> None:
    """A reader (reader_refresh off) asks and leaves its transaction open: the request used
    to be an UPDATE of the connection row, which the worker's claim then skipped and its
    renew, store and release waited for, and every tenant's refreshes with them. Now it
    locks no connection row, and the worker sees it once it commits."""
    connect_account(db)
    backdate(db)  # an hour left, last refreshed two minutes ago: due only if asked
    reader_refresh(db, False)
    rita = db.connect("rita", autocommit=False)
    try:
        assert rita.execute("SELECT generation FROM hush.oauth_request_refresh('acme', 'idp', 'user-1')").fetchone() == (1,)
        assert not row_locked(db)
        with db.connect("wendy") as wendy:
            wendy.execute("SET lock_timeout = '2s'")
            # Uncommitted, the request is not there for the worker; nothing is due.
            assert wendy.execute("SELECT count(*) FROM hush.oauth_worker_claim('w', 10)").fetchone() == (0,)
            rita.commit()
            [lease] = rows(wendy, "SELECT * FROM hush.oauth_worker_claim('w', 10)")
            # rita asks again, in a transaction she leaves open, while the worker refreshes.
            assert rita.execute("SELECT generation FROM hush.oauth_request_refresh('acme', 'idp', 'user-1')").fetchone() == (1,)
            assert not row_locked(db)
            assert claim(wendy, lease["lease_token"])["outcome"] == "claimed"  # renewed, not waiting
            assert finish(wendy, lease["lease_token"], tokens=json.dumps({"access_token": "at-2",
                                                                          "expires_in": 3600})) == 2
        rita.commit()
    finally:
        rita.close()
    # Asked again while one was pending, rita's second request was that one, which the store answered.
    assert db.sql("SELECT count(*) FROM hush.oauth_refresh_requests") == [(0,)]


@pytest.mark.parametrize("call", [
    "SELECT * FROM hush.oauth_token('acme', 'idp', 'user-1')",
    "SELECT hush.oauth_access_token('acme', 'idp', 'user-1', 0)",
    "SELECT * FROM hush.oauth_connections('acme')",
    "SELECT * FROM hush.oauth_providers('acme')",
    "SELECT * FROM hush.oauth_events('acme')",
    "SELECT hush.oauth_request_refresh('acme', 'idp', 'user-1')",
    "SELECT * FROM hush.oauth_claim_refresh('acme', 'idp', 'user-1', 'rita-app', 60, 1)",
    "SELECT * FROM hush.oauth_finish_refresh('acme', 'idp', 'user-1', 'hush_lease_x', 1, '{\"access_token\": \"x\"}')",
    "SELECT hush.oauth_release_refresh('acme', 'idp', 'user-1', 'hush_lease_x', 1, 'e', true)",
])
def test_no_call_of_a_reader_with_reader_refresh_off_locks_a_connection_row(db: Any, call: str) -> None:
    """Whatever a reader may call when its tenant keeps it from refreshing, in a transaction
    it leaves open (aborted, for the calls refused: their locks would stay until it ends)."""
    connect_account(db)
    backdate(db)
    reader_refresh(db, False)
    with db.connect("rita", autocommit=False) as rita:
        try:
            rita.execute(call).fetchall()
        except psycopg.Error as e:
            assert e.sqlstate == "SH077", e
        assert not row_locked(db)
        rita.rollback()


def test_a_store_a_disconnect_and_a_provider_removal_take_the_requests_along(db: Any) -> None:
    for account in ("user-1", "user-2", "user-3"):
        connect_account(db, account=account)
    backdate(db)
    with db.connect("rita") as rita:
        for account in ("user-1", "user-2", "user-3"):
            rita.execute("SELECT hush.oauth_request_refresh('acme', 'idp', %s)", [account])
    asked = "SELECT account FROM hush.oauth_refresh_requests ORDER BY account"
    assert db.sql(asked) == [("user-1",), ("user-2",), ("user-3",)]
    connect_account(db, account="user-1")  # a new authorization's tokens answer it too
    assert db.sql(asked) == [("user-2",), ("user-3",)]
    with db.connect("alice") as alice:
        alice.execute("SELECT hush.oauth_disconnect('acme', 'idp', 'user-2')")
        assert db.sql(asked) == [("user-3",)]
        alice.execute("SELECT hush.oauth_remove_provider('acme', 'idp')")
    assert db.sql(asked) == []


# -- at most one requested refresh per connection a minute ----------------------------------------

def test_a_request_within_a_minute_of_a_refresh_is_ignored(db: Any) -> None:
    """Asking again and again drove a refresh per connection per second (refresh-token
    churn, the client's quota at the provider). A request for a connection refreshed or
    stored within the last 60 s is ignored (the asker reads the token stored then): not
    recorded, no wake-up; it returns the generation all the same."""
    connect_account(db)  # stored just now
    reader_refresh(db, False)
    with db.connect("otto") as listener, db.connect("rita") as rita, db.connect("wendy") as wendy:
        listener.execute("LISTEN hush_oauth_wakeup")
        for _ in range(20):  # not recorded, and it says so: the client reads the token rather than wait
            assert rita.execute("SELECT generation, requested FROM hush.oauth_request_refresh('acme', 'idp', "
                                "'user-1')").fetchone() == (1, False)
        assert list(listener.notifies(timeout=0.5)) == []
        assert db.sql("SELECT count(*) FROM hush.oauth_refresh_requests") == [(0,)]
        assert wendy.execute("SELECT count(*) FROM hush.oauth_worker_claim('w', 10)").fetchone() == (0,)
        backdate(db, 61)
        assert rita.execute("SELECT generation, requested FROM hush.oauth_request_refresh('acme', 'idp', "
                            "'user-1')").fetchone() == (1, True)
        assert [n.payload for n in listener.notifies(timeout=2, stop_after=1)] == [""]
        [lease] = rows(wendy, "SELECT * FROM hush.oauth_worker_claim('w', 10)")
        assert lease["account"] == "user-1"


def test_the_worker_applies_the_interval_to_a_request_that_slipped_in(db: Any) -> None:
    """A request recorded all the same (asked in a transaction whose snapshot predates the
    last refresh, or committed after the store that answered the one before) falls due a
    minute after the last refresh; after a failed attempt, at once (the backoff paces it)."""
    connect_account(db)
    db.sql("INSERT INTO hush.oauth_refresh_requests (tenant_id, provider, account) VALUES ('acme', 'idp', 'user-1')")
    with db.connect("wendy") as wendy:
        assert wendy.execute("SELECT count(*) FROM hush.oauth_worker_claim('w', 10)").fetchone() == (0,)
        [(due_in,)] = wendy.execute("SELECT hush.oauth_worker_next_due()").fetchall()
        assert 50 < due_in <= 60
        db.sql("UPDATE hush.oauth_connections SET failures = 1")
        assert wendy.execute("SELECT count(*) FROM hush.oauth_worker_claim('w', 10)").fetchone() == (1,)


def test_a_reader_asking_in_a_loop_gets_one_refresh_per_connection(db: Any, oauth_server: Any) -> None:
    """The review's reproduction, with a worker serving: tokens good for an hour, last
    refreshed two minutes ago; a reader asks for each, over and over, for 4 s: one refresh
    each, then none (each was just refreshed)."""
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
    with db.connect("alice") as alice:
        for i in range(3):
            alice.execute("SELECT hush.oauth_store_tokens('acme', 'idp', %s, 'authorization_code', %s)",
                          [f"user{i}", json.dumps(srv.mint("app", f"user{i}", 3600))])
    backdate(db)
    reader_refresh(db, False)
    w = hush.OAuthWorker(db.dsn("wendy"))
    runner = threading.Thread(target=w.run, daemon=True)
    runner.start()
    try:
        stop = time.monotonic() + 4
        with db.connect("rita") as rita:
            while time.monotonic() < stop:
                for i in range(3):
                    rita.execute("SELECT hush.oauth_request_refresh('acme', 'idp', %s)", [f"user{i}"])
                time.sleep(0.02)
    finally:
        w.stop()
        runner.join(timeout=30)
    assert srv.token_count("refresh_token") == 3
    assert db.sql("SELECT generation FROM hush.oauth_connections ORDER BY account") == [(2,), (2,), (2,)]


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

ROLE_NAMES = {"reader": "hush_reader", "writer": "hush_writer", "oauth worker": "hush_oauth_worker",
              "admin": "hush_admin", "auditor": "hush_auditor"}


def test_the_readme_roles_per_oauth_function_are_the_grants(db: Any) -> None:
    """The README's function table says who may call each OAuth function; EXECUTE agrees."""
    text = README.read_text()
    table = text[text.index("## Functions"):text.index("## Limits")]
    documented: dict[str, set[str]] = {}
    for first, roles in re.findall(r"^\| (`oauth_.*?) \| (.*?) \|", table, re.M):
        for name in re.findall(r"`(oauth_\w+)", first):
            documented[name] = {ROLE_NAMES[r.strip()] for r in roles.split(",")}
    granted: dict[str, set[str]] = {}
    for name, grantees in db.sql("""SELECT p.proname, array(SELECT (a).grantee::regrole::text
                                                         FROM (SELECT aclexplode(p.proacl) AS a) x)
                                      FROM pg_proc p
                                     WHERE p.pronamespace = 'hush'::regnamespace AND p.proname LIKE 'oauth\\_%'"""):
        granted.setdefault(name, set()).update(set(grantees) - {"hush_owner"})
    assert documented == granted
