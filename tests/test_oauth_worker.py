"""The OAuth worker (hush oauth-worker) against the loopback authorization
server: exactly one refresh per connection with two workers and on-demand
callers racing, backoff through a 503 storm, events, SIGTERM mid-batch, the
worker role's reach, and hush.oauth_access_token / oauth_events from SQL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from typing import Any


import hush
from helpers import raises_sqlstate
from oauth_helpers import fresh_server, register, tenant_oauth
from test_cli import HUSH


def connections(db: Any, srv: Any, n: int, lifetime: int, tenant: str = "acme", user: str = "alice",
                issued_ago: int | None = 3600) -> list[dict]:
    """n connected accounts (user0..), tokens minted at the server, stored through hush. Stored as
    if issued `issued_ago` seconds before their remaining `lifetime` (a token of 3630 s, 30 s
    left): the worker refreshes tokens within half their lifetime at most, so fresh short ones
    would not be due yet."""
    minted = [srv.mint("app", f"user{i}", lifetime) for i in range(n)]
    with db.connect(user) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany("SELECT hush.oauth_store_tokens(%s, 'idp', %s, 'authorization_code', %s)",
                        [(tenant, f"user{i}", json.dumps(t)) for i, t in enumerate(minted)])
    if issued_ago is not None:
        db.sql("UPDATE hush.oauth_connections SET refreshed_at = refreshed_at - make_interval(secs => %s) "
               "WHERE tenant_id = %s", [issued_ago, tenant])
    return minted


def worker(db: Any, **kw: Any) -> hush.OAuthWorker:
    return hush.OAuthWorker(db.dsn("wendy"), **kw)


def stored_refresh_tokens(db: Any) -> dict[str, str]:
    """account -> its stored refresh token (read as alice, through hush)."""
    out = {}
    with db.connect("alice") as conn:
        for (account,) in conn.execute("SELECT account FROM hush.oauth_connections('acme', 'idp')").fetchall():
            out[account] = conn.execute("SELECT refresh_token FROM hush.oauth_connection_tokens('acme', 'idp', %s)",
                                        [account]).fetchone()[0]
    return out


def test_two_workers_and_on_demand_callers_refresh_each_connection_once(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        minted = connections(db, srv, 1000, lifetime=30)  # inside both the window and the client's skew
        env = {**os.environ, "HUSH_DSN": db.dsn("wendy")}
        workers = [subprocess.Popen([HUSH, "oauth-worker", "--once", "--batch", "50"], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        on_demand: list[str] = []

        def ask(accounts: range) -> None:
            for i in accounts:
                on_demand.append(oa.access_token("idp", f"user{i}"))
        callers = [threading.Thread(target=ask, args=(range(k, 1000, 50),)) for k in range(10)]
        for t in callers:
            t.start()
        for t in callers:
            t.join()
        logs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [e[-2000:] for _, e in logs]
    # Every original refresh token was presented exactly once, and nothing else was.
    assert srv.token_count("refresh_token") == 1000
    assert sorted(srv.control.refresh_uses) == sorted(t["refresh_token"] for t in minted)
    assert set(srv.control.refresh_uses.values()) == {1}
    generations = db.sql("SELECT generation, status, count(*) FROM hush.oauth_connections GROUP BY 1, 2")
    assert generations == [(2, "active", 1000)]
    by_worker = sum(int(line.split("refreshed ")[1].split(",")[0]) for _, err in logs for line in err.splitlines()
                    if "round: " in line and "refreshed " in line)
    assert len(on_demand) == 200 and 0 < by_worker <= 1000
    assert all(t["access_token"] not in err and t["refresh_token"] not in err for _, err in logs for t in minted)


def test_a_503_storm_backs_off_keeps_tokens_and_ends_with_recovered(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        minted = connections(db, srv, 5, lifetime=120)
        srv.control.fail_token_requests, srv.control.retry_after = 10_000, "2"
        w = worker(db)
        assert w.run_once() == {"deferred": 5}
        rows = db.sql("SELECT failures, next_attempt_at - now() > interval '1 second', last_error "
                      "FROM hush.oauth_connections")
        assert {(f, later) for f, later, _ in rows} == {(1, True)} and all("503" in e for _, _, e in rows)
        assert w.run_once() == {}  # backing off: nothing is claimed, nothing reaches the server
        assert srv.token_count("refresh_token") == 5
        # The old tokens are still there to use meanwhile.
        assert oa.token("idp", "user3").access_token == minted[3]["access_token"]
        assert [e.event for e in oa.events()] == ["refresh_failed"] * 5
        srv.control.fail_token_requests = 0
        time.sleep(2.2)
        assert w.run_once() == {"refreshed": 5}
        w.close()
        assert [e.event for e in oa.events()] == ["refresh_failed"] * 5 + ["recovered"] * 5
        assert db.sql("SELECT DISTINCT failures, next_attempt_at, last_error FROM hush.oauth_connections") == [
            (0, None, None)]


def test_invalid_grant_raises_a_needs_reauth_event_announced_without_payload(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        minted = connections(db, srv, 2, lifetime=60)
        srv.refresh[minted[1]["refresh_token"]].revoked = True
        with db.connect("otto") as listener:  # any role may LISTEN: the payload must say nothing
            listener.execute("LISTEN hush_oauth_events")
            w = worker(db)
            assert w.run_once() == {"refreshed": 1, "needs_reauth": 1}
            w.close()
            payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
        [event] = oa.events()
        assert (event.event, event.account) == ("needs_reauth", "user1") and "invalid_grant" in event.detail["error"]
        assert payloads == [""]  # not even the event's id: it would count every tenant's events
        assert {c.account: c.status for c in oa.connections()} == {"user0": "active", "user1": "needs_reauth"}
        w = worker(db)
        assert w.run_once() == {}  # a connection that needs re-authorization is left alone
        w.close()


def test_sigterm_mid_batch_leaves_no_lease_and_loses_no_token(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.token_delay = 0.4
    with tenant_oauth(db) as oa:
        register(oa, srv)
        connections(db, srv, 20, lifetime=60)
    env = {**os.environ, "HUSH_DSN": db.dsn("wendy")}
    proc = subprocess.Popen([HUSH, "oauth-worker", "--batch", "20", "--lease", "600"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while srv.token_count("refresh_token") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "gave back" in err and "stopped:" in err
    # No lease outlives the worker, though the lease was ten minutes long.
    assert db.sql("SELECT count(*) FROM hush.oauth_connections WHERE lease_until IS NOT NULL") == [(0,)]
    done = db.sql("SELECT count(*) FILTER (WHERE generation = 2), count(*) FILTER (WHERE generation = 1) "
                  "FROM hush.oauth_connections")[0]
    assert done[0] == srv.token_count("refresh_token") and 0 < done[0] < 20 and sum(done) == 20
    # Every stored refresh token is still good at the server: nothing was lost.
    for account, rt in stored_refresh_tokens(db).items():
        assert rt in srv.refresh and not srv.refresh[rt].revoked, account


def test_the_worker_role_reaches_only_refreshes_of_its_tenants(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    db.sql("SELECT hush.grant_tenant('bob', 'globex')")
    with tenant_oauth(db) as oa, tenant_oauth(db, user="bob", tenant="globex") as globex:
        register(oa, srv)
        register(globex, srv)
        connections(db, srv, 1, lifetime=60)
        connections(db, srv, 1, lifetime=60, tenant="globex", user="bob")
    with db.connect("alice") as alice:
        alice.execute("SELECT hush.save_secret('acme', 'plain', 'plain-value')")
    with db.connect("wendy") as wendy:
        for sql in ("SELECT hush.get_secret('acme', 'plain')", "SELECT hush.oauth_token('acme', 'idp')",
                    "SELECT hush.oauth_connection_tokens('acme', 'idp')", "SELECT * FROM hush.oauth_connections"):
            with raises_sqlstate("42501"):
                wendy.execute(sql)
        claimed = wendy.execute("SELECT tenant_id, account FROM hush.oauth_worker_claim('w', 10)").fetchall()
        assert claimed == [("acme", "user0")]  # globex is not wendy's
        with raises_sqlstate("SH020"):
            wendy.execute("SELECT hush.oauth_claim_refresh('globex', 'idp', 'user0', 'w', 60, 1)")


def test_short_lived_tokens_are_refreshed_at_half_life_not_every_round(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.token_lifetime = 120  # what refreshes hand out: far less than the 900 s window
    with tenant_oauth(db) as oa:
        register(oa, srv)
        connections(db, srv, 1, lifetime=100, issued_ago=None)  # 100 of 100 s left: not due yet
        w = worker(db)
        assert w.run_once() == {}
        db.sql("UPDATE hush.oauth_connections SET refreshed_at = refreshed_at - interval '150 seconds'")
        assert w.run_once() == {"refreshed": 1}  # 100 of 250 s left: past half its life
        assert w.run_once() == {}  # the new token (120 s) is not due again at once
        w.close()
        assert srv.token_count("refresh_token") == 1


def test_keepalive_refreshes_idle_connections(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        connections(db, srv, 2, lifetime=7 * 86400, issued_ago=None)
        db.sql("UPDATE hush.oauth_connections SET refreshed_at = now() - interval '2 days' WHERE account = 'user1'")
        w = worker(db)
        assert w.run_once() == {}  # nothing expires within the window
        w.keepalive = 86400
        assert w.run_once() == {"refreshed": 1}
        w.close()
        assert [(c.account, c.failures) for c in oa.connections() if c.refreshed_at and
                c.refreshed_at > c.created_at] == [("user1", 0)]


def test_sql_callers_read_valid_tokens_of_their_tenant_only(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        minted = connections(db, srv, 2, lifetime=3600)
        db.sql("UPDATE hush.oauth_connections SET expires_at = now() + interval '10 seconds' "
               "WHERE account = 'user1'")
    with db.connect("rita") as rita:
        assert rita.execute("SELECT hush.oauth_access_token('acme', 'idp', 'user0')").fetchone() == (
            minted[0]["access_token"],)
        with raises_sqlstate("SH076"):
            rita.execute("SELECT hush.oauth_access_token('acme', 'idp', 'user1')")
        with raises_sqlstate("SH072"):
            rita.execute("SELECT hush.oauth_access_token('acme', 'idp')")
    with db.connect("bob") as bob:
        with raises_sqlstate("SH020"):
            bob.execute("SELECT hush.oauth_access_token('acme', 'idp', 'user0')")
        with raises_sqlstate("SH020"):
            bob.execute("SELECT * FROM hush.oauth_events('acme')")
        assert bob.execute("SELECT * FROM hush.oauth_events('globex')").fetchall() == []
    # The successful read is audited; the refused one rolled back with its error (and left a hush-failure log line).
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'oauth_token_read'") == [(1,)]


def test_the_worker_sleeps_until_the_next_due_connection_and_wakes_for_new_ones(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        connections(db, srv, 1, lifetime=4500, issued_ago=None)  # due in an hour (900 s before it expires)
    w = worker(db, interval=600)
    assert 3500 < (w.next_due() or 0) < 3601
    runner = threading.Thread(target=w.run)
    runner.start()
    try:
        time.sleep(1.0)  # its first round found nothing due; it now sleeps for ten minutes
        # A new connection whose 4-second token falls due in 2 s: the NOTIFY of its store wakes
        # the worker, which then sleeps only until that one is due.
        db.sql("SELECT hush.oauth_store_tokens('acme', 'idp', 'late', 'authorization_code', %s)",
               [json.dumps(srv.mint("app", "late", 4))], user="alice")
        began = time.monotonic()
        while srv.token_count("refresh_token") < 1 and time.monotonic() - began < 10:
            time.sleep(0.05)
        assert srv.token_count("refresh_token") == 1 and 1.5 < time.monotonic() - began < 10
    finally:
        w.stop()
        runner.join(timeout=10)
    assert not runner.is_alive()
