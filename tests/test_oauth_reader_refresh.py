"""configure_tenant(reader_refresh => false) keeps a tenant's readers from writing
token material: hush.OAuth then asks the worker (oauth_request_refresh) and waits, for a
bounded time (SH078); a request holds no lock the worker waits for, and a connection is
refreshed at most once a minute on request. Against the loopback authorization server,
as the non-superuser roles of tests/conftest.py; the superuser only inspects. The lease
itself is test_oauth_lease.py's."""
from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
import pytest

import hush
from helpers import raises_sqlstate, rows
from oauth_helpers import fresh_server, register, stale_login, tenant_oauth
from oauth_lease_helpers import claim, connect_account, finish, release, stored


def reader_refresh(db: Any, on: bool, tenant: str = "acme") -> None:
    db.sql("SELECT hush.configure_tenant(%s, reader_refresh => %s)", [tenant, on], user="adam")


def backdate(db: Any, seconds: int = 120) -> None:
    """As if the connections' last refresh were `seconds` ago (their expiry unchanged)."""
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = now() - make_interval(secs => %s)", [seconds])


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
