"""The OAuth worker under a provider that never answers (tests/tarpit.py) and at
stop(): refreshes run concurrently, fair across tenants and hosts; a tarpit
holds its per-host share of threads for one timeout and nobody else waits; on
stop the leases whose request was not sent go back at once, those in flight
finish and store their result. Asserted by the order of events (what the tarpit
holds open, what the database shows meanwhile), never by elapsed time."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from typing import Any, Callable

import httpx2
import pytest

import hush
import hush._oauth_worker
from hush._oauth_dispatch import Dispatch, Job
from oauth_helpers import fresh_server, register, tenant_oauth
from tarpit import Tarpit
from test_cli import HUSH


def until(what: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll what() until it holds (True) or timeout seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def store_due(db: Any, tenant: str, user: str, provider: str, tokens: list[dict[str, Any]]) -> None:
    """Connections user0.. with these tokens, stored through hush and due for a refresh now
    (a 30-second token issued an hour ago: inside the window and past half its life)."""
    with db.connect(user) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany("SELECT hush.oauth_store_tokens(%s, %s, %s, 'authorization_code', %s)",
                        [(tenant, provider, f"user{i}", json.dumps(t)) for i, t in enumerate(tokens)])
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = refreshed_at - interval '1 hour' "
           "WHERE tenant_id = %s AND provider = %s", [tenant, provider])


def tarpit_tenant(db: Any, tarpit: Tarpit, n: int) -> None:
    """globex (bob) with a provider whose token endpoint is the tarpit (at 127.0.0.1, the
    healthy provider's host name, another port) and n due connections; wendy, the worker's
    role, serves globex too."""
    db.sql("SELECT hush.grant_tenant('wendy', 'globex')")
    with tenant_oauth(db, user="bob", tenant="globex") as gx:
        gx.register_provider("slow", client_id="app", client_secret="app-secret", token_endpoint=tarpit.url())
    store_due(db, "globex", "bob", "slow",
              [{"access_token": f"at-slow-{i}", "refresh_token": f"rt-slow-{i}", "expires_in": 30,
                "token_type": "Bearer"} for i in range(n)])


def healthy_tenant(db: Any, srv: Any, n: int) -> list[dict[str, Any]]:
    """acme (alice) at the loopback OAuth server, with n due connections."""
    with tenant_oauth(db) as oa:
        register(oa, srv)
    minted = [srv.mint("app", f"user{i}", 30) for i in range(n)]
    store_due(db, "acme", "alice", "idp", minted)
    return minted


def count(db: Any, where: str, params: object = None) -> int:
    return int(db.sql(f"SELECT count(*) FROM hush.oauth_connections WHERE {where}", params)[0][0])


def serve(w: hush.OAuthWorker) -> threading.Thread:
    runner = threading.Thread(target=w.run, daemon=True)
    runner.start()
    return runner


def test_the_claim_takes_every_tenants_first_connection_before_anyones_second(db: Any) -> None:
    """50 due connections of acme expiring first, 5 of globex: a batch of 10 holds all of
    globex's (by expiry alone, acme's 50 would fill it)."""
    db.sql("SELECT hush.grant_tenant('wendy', 'globex')")
    for tenant, user, n, lifetime in (("acme", "alice", 50, 30), ("globex", "bob", 5, 300)):
        with tenant_oauth(db, user=user, tenant=tenant) as oa:
            oa.register_provider("idp", client_id="app", client_secret="app-secret",
                                 token_endpoint="http://127.0.0.1:9/token")
        store_due(db, tenant, user, "idp", [{"access_token": f"at-{tenant}-{i}", "refresh_token": f"rt-{i}",
                                             "expires_in": lifetime} for i in range(n)])
    with db.connect("wendy") as wendy:
        got = Counter(t for (t,) in wendy.execute("SELECT tenant_id FROM hush.oauth_worker_claim('w', 10)"))
        assert got == {"globex": 5, "acme": 5}
        # Within a tenant, the most urgent first; the next batch takes the rest in turn.
        more = Counter(t for (t,) in wendy.execute("SELECT tenant_id FROM hush.oauth_worker_claim('w', 100)"))
        assert more == {"acme": 45}


def test_a_tarpit_tenant_does_not_stall_the_others(db: Any, oauth_server: Any) -> None:
    """100 due connections of globex at a provider that accepts and never answers, 10 of acme
    at a healthy one on the same host name (127.0.0.1, another port: slots are a tenant's
    own and by origin, not by host name): acme's are refreshed while the tarpit holds its
    requests open, and
    before any of them has timed out; the tarpit never holds more than per_host; what globex
    cannot send soon goes back instead of waiting on hand."""
    srv = fresh_server(oauth_server)
    tarpit = Tarpit().start()
    try:
        tarpit_tenant(db, tarpit, 100)
        minted = healthy_tenant(db, srv, 10)
        w = hush.OAuthWorker(db.dsn("wendy"), timeout=8.0, connect_timeout=2.0)  # 16 at once, 4 per host
        runner = serve(w)
        try:
            assert until(lambda: count(db, "tenant_id = 'acme' AND generation = 2") == 10)
            # Read after the 10 were seen stored: the tarpit still holds requests, none has
            # ended, and no globex connection has recorded a failure yet.
            assert tarpit.open > 0 and tarpit.accepted == tarpit.open
            assert count(db, "tenant_id = 'globex' AND (failures > 0 OR generation > 1)") == 0
            assert srv.token_count("refresh_token") == 10
            assert sorted(srv.control.refresh_uses) == sorted(t["refresh_token"] for t in minted)
            # The stalled host keeps per_host waiting beside per_host in flight; the rest of
            # globex's leases go back (still before any tarpit request has timed out).
            assert until(lambda: count(db, "tenant_id = 'globex' AND lease_until IS NOT NULL") <= 8, 15)
            assert tarpit.accepted == tarpit.open and tarpit.most_open <= 4
        finally:
            w.stop()
            runner.join(timeout=60)
        assert not runner.is_alive()
    finally:
        tarpit.stop()


def test_stop_gives_back_unsent_leases_at_once_and_lets_requests_in_flight_run_out(db: Any) -> None:
    """stop() while 4 requests hang in the tarpit: the connections not sent are given back
    while the tarpit still holds the 4 (which stay leased: never given back early); run()
    returns once those have run out their read timeout, recorded as failures."""
    tarpit = Tarpit().start()
    try:
        tarpit_tenant(db, tarpit, 20)
        w = hush.OAuthWorker(db.dsn("wendy"), timeout=6.0, connect_timeout=2.0, lease_seconds=600)
        runner = serve(w)
        try:
            assert tarpit.wait_open(4)
            assert count(db, "lease_until IS NOT NULL") > 4  # queued beside the 4 in flight
        finally:
            w.stop()
        assert until(lambda: count(db, "lease_until IS NOT NULL") == 4)
        assert tarpit.open == 4 and tarpit.accepted == 4 and runner.is_alive()  # still in flight
        runner.join(timeout=60)
        assert not runner.is_alive()
        assert tarpit.open == 0 and tarpit.accepted == 4  # ended by the worker's read timeout
        assert count(db, "lease_until IS NOT NULL") == 0
        assert db.sql("SELECT failures, count(*) FROM hush.oauth_connections GROUP BY 1 ORDER BY 1") == [
            (0, 16), (1, 4)]
        assert count(db, "generation > 1") == 0
    finally:
        tarpit.stop()


def test_a_refresh_in_flight_at_stop_is_stored(db: Any, oauth_server: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two refreshes in flight (a slow provider, per_host 2) and 8 queued when stop() comes:
    the 8 go back before the 2 have answered; the 2 answer and are stored."""
    monkeypatch.setattr(hush._oauth_worker, "STALL_AFTER", 30.0)  # slow, not stalled: nothing goes back early
    srv = fresh_server(oauth_server)
    srv.control.token_delay = 2.0
    minted = healthy_tenant(db, srv, 10)
    w = hush.OAuthWorker(db.dsn("wendy"), per_host=2, timeout=20.0)
    runner = serve(w)
    try:
        assert until(lambda: srv.token_count("refresh_token") == 2)
    finally:
        w.stop()
    assert until(lambda: count(db, "lease_until IS NOT NULL") == 2)
    assert count(db, "generation = 2") == 0  # the 2 have not answered yet
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert srv.token_count("refresh_token") == 2  # nothing else was sent
    assert db.sql("SELECT generation, lease_until IS NULL, failures, count(*) FROM hush.oauth_connections "
                  "GROUP BY 1, 2, 3 ORDER BY 1") == [(1, True, 0, 8), (2, True, 0, 2)]
    spent = set(srv.control.refresh_uses)
    assert spent <= {t["refresh_token"] for t in minted} and len(spent) == 2


def test_the_cli_takes_the_concurrency_flags(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    healthy_tenant(db, srv, 5)
    env = {**os.environ, "HUSH_DSN": db.dsn("wendy")}
    r = subprocess.run([HUSH, "oauth-worker", "--once", "--concurrency", "3", "--per-host", "2", "--per-tenant", "2",
                        "--connect-timeout", "1.5", "--timeout", "5", "--db-connections", "2"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "round: refreshed 5" in r.stderr
    assert count(db, "generation = 2") == 5
    bad = subprocess.run([HUSH, "oauth-worker", "--once", "--per-host", "0"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "--per-host" in bad.stderr


def test_requests_get_a_connect_and_a_read_timeout_apart(db: Any) -> None:
    w = hush.OAuthWorker(db.dsn("wendy"), connect_timeout=1.5, timeout=7.0)
    try:
        assert w._oauth("acme").timeout == httpx2.Timeout(7.0, connect=1.5)
    finally:
        w.close()
    with pytest.raises(hush.InvalidArgument):
        hush.OAuthWorker(db.dsn("wendy"), concurrency=0)


# -- the scheduler alone (no database, no HTTP): limits per tenant across hosts -------------

def test_a_tenant_stalled_on_many_hosts_holds_per_tenant_threads_at_most() -> None:
    """One tenant whose providers sit at four hosts that never answer (wildcard DNS defeats a
    per-host limit alone): it holds per_tenant threads, and another tenant's jobs all run
    meanwhile."""
    hang = threading.Event()
    in_flight: Counter[str] = Counter()
    most: Counter[str] = Counter()
    done: list[str] = []
    released: list[str] = []
    lock = threading.Lock()

    def open_(job: Job) -> str:
        job.lease = {}
        return str(job.row["provider"])  # the host: one per provider here

    def send(job: Job, answered: Callable[[], None]) -> None:
        with lock:
            in_flight[job.tenant] += 1
            most[job.tenant] = max(most[job.tenant], in_flight[job.tenant])
        if job.tenant == "evil":
            hang.wait(30)
        with lock:
            in_flight[job.tenant] -= 1
            done.append(job.tenant)
        answered()

    d = Dispatch(open_, send, lambda job: released.append(job.tenant), concurrency=8, per_host=4, per_tenant=4,
                 lease_seconds=600, request_seconds=30, stall_after=0.1)
    try:
        d.add([{"tenant_id": "evil", "provider": f"tarpit{i % 4}", "account": f"a{i}"} for i in range(40)])
        assert until(lambda: in_flight["evil"] == 4)
        d.add([{"tenant_id": "acme", "provider": "idp", "account": f"b{i}"} for i in range(20)])
        assert until(lambda: done.count("acme") == 20)
        assert in_flight["evil"] == 4 and most["evil"] == 4 and "evil" not in done
        # Stalled: evil keeps per_tenant queued, the rest went back unused.
        assert until(lambda: d.tick() >= 0 and released.count("evil") == 40 - 4 - 4)
        assert d.on_hand() == 0
        assert d.stop() == 4 and released.count("evil") == 36  # the queued 4 go back at stop
        hang.set()
        assert d.drain(10) == 0 and done.count("evil") == 4
    finally:
        hang.set()
        d.close()


def test_a_job_that_could_not_finish_inside_its_lease_goes_back_unused() -> None:
    """One host, one slot, a request that hangs: the two queued behind it wait while their
    request could still finish inside the lease (60 s, 20 s a request at most), and go back
    unused once it could not; the one in flight is not given back."""
    now = [0.0]
    hang = threading.Event()
    sent: list[str] = []
    released: list[str] = []

    def open_(job: Job) -> str:
        job.lease = {}
        return "slow.example"

    def send(job: Job, answered: Callable[[], None]) -> None:
        sent.append(job.row["account"])
        hang.wait(30)
        answered()

    d = Dispatch(open_, send, lambda job: released.append(job.row["account"]), concurrency=4, per_host=1,
                 per_tenant=4, lease_seconds=60, request_seconds=20, stall_after=1000, clock=lambda: now[0])
    try:
        d.add([{"tenant_id": "acme", "provider": "idp", "account": f"a{i}"} for i in range(3)])
        assert until(lambda: sent == ["a0"])
        now[0] = 39.0
        assert d.tick() == 0 and d.on_hand() == 2
        now[0] = 41.0
        assert d.tick() == 2 and sorted(released) == ["a1", "a2"] and d.on_hand() == 0
        hang.set()
        assert d.drain(10) == 0 and sent == ["a0"]
    finally:
        hang.set()
        d.close()


def test_slots_and_stalls_are_a_tenants_own_and_by_origin() -> None:
    """What the scheduler counts slots and stalls by: tenant, scheme, host and port of the
    token endpoint (the default port written or not), never the host name alone."""
    from hush._oauth_worker import _origin

    acme = _origin("acme", {"token_endpoint": "http://127.0.0.1:8080/token"})
    assert acme != _origin("acme", {"token_endpoint": "http://127.0.0.1:9090/token"})
    assert acme != _origin("globex", {"token_endpoint": "http://127.0.0.1:8080/token"})
    assert acme != _origin("acme", {"token_endpoint": "https://127.0.0.1:8080/token"})
    assert _origin("acme", {"token_endpoint": "https://IdP.example/t"}) == _origin(
        "acme", {"token_endpoint": "https://idp.example:443/x"})
