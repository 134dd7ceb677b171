"""The OAuth worker never waits on a tenant's row lock (_oauth_db.py, the SKIP LOCKED of
oauth_worker_finish), and a refresh whose store fails is neither lost at the first failure
nor left silent (the worker's StoreQueue, hush.OAuth's on-demand refresh).

Any role that may use the lease functions in a tenant (a writer; a reader where
reader_refresh is on) can hold a connection row's lock in a transaction left open: a store
of tokens, a finish with a wrong lease token. The worker's store waited for it without
limit, and with it every other tenant's refreshes. Asserted by the order of events (what
is stored while the lock is held, and after), not by elapsed time."""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import psycopg
import pytest

import hush
from hush import _oauth_calls as q
from hush._exec import PoolExecutor, PsycopgExecutor
from hush._oauth_batch import NotStored, StoreQueue
from hush._oauth_db import GuardedExecutor, transient
from hush._oauth_dispatch import Job
from oauth_helpers import fresh_server, register, tenant_oauth
from test_oauth_worker_fairness import count, serve, store_due, until


def two_tenants(db: Any, srv: Any, n: int = 5) -> dict[str, list[dict[str, Any]]]:
    """acme (alice) and globex (bob) at the loopback server, n due connections each (user0..);
    wendy, the worker's role, serves both."""
    db.sql("SELECT hush.grant_tenant('wendy', 'globex')")
    minted = {}
    for tenant, user in (("acme", "alice"), ("globex", "bob")):
        with tenant_oauth(db, user=user, tenant=tenant) as oa:
            register(oa, srv)
        minted[tenant] = [srv.mint("app", f"{tenant}{i}", 30) for i in range(n)]
        store_due(db, tenant, user, "idp", minted[tenant])
    return minted


def hold_rows(db: Any, user: str, tenant: str, accounts: list[str]) -> psycopg.Connection[Any]:
    """A writer's transaction, left open, that stored tokens over these connections: it holds
    their rows locked until it ends (rolled back: the tokens stay as they were)."""
    conn = db.connect(user, autocommit=False)
    for account in accounts:
        conn.execute("SELECT hush.oauth_store_tokens(%s, 'idp', %s, 'authorization_code', %s)",
                     [tenant, account, json.dumps({"access_token": "held", "expires_in": 3600})])
    return conn


def open_txn(conn: psycopg.Connection[Any]) -> bool:
    return conn.info.transaction_status in (psycopg.pq.TransactionStatus.INTRANS,
                                            psycopg.pq.TransactionStatus.INERROR)


def test_a_writer_holding_leased_rows_locked_delays_no_other_tenant(db: Any, oauth_server: Any,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """While the worker's requests are in flight, a writer of acme stores tokens over acme's
    leased connections and leaves its transaction open. globex's refreshes are stored all
    the same (acme's rows are skipped, not waited for); once the writer rolls back, acme's
    are stored too, from the answers the worker kept: every refresh token presented once."""
    srv = fresh_server(oauth_server)
    minted = two_tenants(db, srv)
    srv.control.token_gate = threading.Event()
    w = hush.OAuthWorker(db.dsn("wendy"))  # 4 per tenant in flight
    caplog.set_level(logging.INFO, logger="hush.oauth_worker")
    runner = serve(w)
    held = None
    try:
        assert until(lambda: srv.token_count("refresh_token") == 8)  # 4 of each tenant at the gate
        assert count(db, "lease_until IS NOT NULL") == 10
        held = hold_rows(db, "alice", "acme", [f"user{i}" for i in range(5)])
        srv.control.token_gate.set()
        assert until(lambda: count(db, "tenant_id = 'globex' AND generation = 2") == 5, 15)
        # Stored while acme's writer still holds its rows: nothing of acme's was.
        assert open_txn(held) and count(db, "tenant_id = 'acme' AND generation > 1") == 0
        assert until(lambda: srv.token_count("refresh_token") == 10)  # acme's fifth went too
        assert until(lambda: "not stored yet tenant=acme" in caplog.text)
        held.rollback()
        held.close()
        held = None
        assert until(lambda: count(db, "tenant_id = 'acme' AND generation = 2 AND lease_until IS NULL") == 5, 40)
    finally:
        srv.control.token_gate.set()
        if held is not None:
            held.rollback()
            held.close()
        w.stop()
        runner.join(timeout=60)
    assert not runner.is_alive()
    assert w.stats["refreshed"] == 10 and w.stats["failed"] == 0
    assert sorted(srv.control.refresh_uses) == sorted(t["refresh_token"] for ts in minted.values() for t in ts)
    assert set(srv.control.refresh_uses.values()) == {1}
    assert count(db, "failures > 0") == 0
    assert "held" not in caplog.text and not any(t["refresh_token"] in caplog.text for t in minted["acme"])


def test_due_rows_held_locked_are_passed_over_and_refreshed_once_free(db: Any, oauth_server: Any) -> None:
    """A writer of acme holds acme's due connections locked before the worker's round: the
    claim passes them over (SKIP LOCKED), globex's are refreshed, and the worker looks again
    once a second meanwhile, not in a loop (next_due says they are due now); once the writer
    rolls back, acme's are refreshed."""
    srv = fresh_server(oauth_server)
    two_tenants(db, srv, 3)
    held: psycopg.Connection[Any] | None = hold_rows(db, "alice", "acme", ["user0", "user1", "user2"])
    w = hush.OAuthWorker(db.dsn("wendy"))
    leases: list[int] = []
    lease = w.lease

    def counted(size: int | None = None) -> list[dict[str, Any]]:
        rows = lease(size)
        leases.append(len(rows))
        return rows
    w.lease = counted  # type: ignore[method-assign]
    runner = serve(w)
    try:
        assert until(lambda: count(db, "tenant_id = 'globex' AND generation = 2") == 3, 15)
        before = len(leases)
        time.sleep(2.0)
        assert held is not None and open_txn(held) and count(db, "tenant_id = 'acme' AND generation > 1") == 0
        assert len(leases) - before <= 4  # about one look a second (a round every 50 ms without the pause)
        held.rollback()
        held.close()
        held = None
        assert until(lambda: count(db, "tenant_id = 'acme' AND generation = 2") == 3, 15)
    finally:
        if held is not None:
            held.rollback()
            held.close()
        w.stop()
        runner.join(timeout=60)
    assert not runner.is_alive() and w.stats["refreshed"] == 6


def test_a_locked_row_stalls_neither_a_renewal_nor_a_give_back(db: Any, oauth_server: Any) -> None:
    """A writer of acme holds two rows the worker leased (claim(): leases not opened yet). The
    worker's renewal of one lease skips that connection at once, and giving back the other
    does not wait: both return while the writer holds its rows, and the globex connection of
    the same claim is refreshed meanwhile. Neither acme lease was given back: each runs out."""
    srv = fresh_server(oauth_server)
    two_tenants(db, srv, 2)
    w = hush.OAuthWorker(db.dsn("wendy"))
    held = None
    try:
        batch = {(r["tenant_id"], r["account"]): r for r in w.claim()}
        assert len(batch) == 4
        held = hold_rows(db, "alice", "acme", ["user0", "user1"])
        out: dict[str, Any] = {}
        jobs = [threading.Thread(target=lambda: out.update(renewed=w.refresh_one(batch["acme", "user0"])),
                                 daemon=True),
                threading.Thread(target=lambda: out.update(given=w._release(Job(batch["acme", "user1"], 0.0))),
                                 daemon=True),
                threading.Thread(target=lambda: out.update(other=w.refresh_one(batch["globex", "user0"])),
                                 daemon=True)]
        for t in jobs:
            t.start()
        # All end while the rows are held, well within the worker's statement timeout (30 s).
        assert until(lambda: not any(t.is_alive() for t in jobs), 10) and open_txn(held)
        assert out == {"renewed": "skipped", "given": None, "other": "refreshed"}
        held.rollback()
        held.close()
        held = None
        assert count(db, "tenant_id = 'acme' AND lease_until IS NOT NULL") == 2
        assert count(db, "tenant_id = 'acme' AND generation > 1") == 0
        assert count(db, "tenant_id = 'globex' AND generation = 2") == 1
    finally:
        if held is not None:
            held.rollback()
            held.close()
        w.close()


def test_a_batch_store_skips_a_locked_row_and_stores_the_others(db: Any, oauth_server: Any) -> None:
    """oauth_worker_finish over a row another transaction holds: that refresh comes back with
    55P03 without a wait (the caller's lock timeout does not come into it: the tenant's other
    refresh is stored, not refused with it) and the others are stored."""
    srv = fresh_server(oauth_server)
    two_tenants(db, srv, 2)
    with db.connect("wendy") as wendy:
        leased = [dict(zip([c.name for c in cur.description], r)) for cur in
                  [wendy.execute("SELECT tenant_id, account, generation, lease_token FROM "
                                 "hush.oauth_worker_claim('w', 10)")] for r in cur.fetchall()]
    held = hold_rows(db, "alice", "acme", ["user0"])
    try:
        refreshes = [(r["tenant_id"], "idp", r["account"], r["lease_token"], r["generation"],
                      {"access_token": f"new-{r['tenant_id']}-{r['account']}", "expires_in": 3600}) for r in leased]
        with db.connect("wendy") as wendy:
            wendy.execute("SET lock_timeout = '5s'")  # a wait would end in 55P03 for all of acme's
            rows = PsycopgExecutor(wendy).run([q.worker_finish(refreshes)])[0]
        got = {(r[0], r[2]): row["sqlstate"] for r, row in zip(refreshes, rows)}
        assert got == {("acme", "user0"): "55P03", ("acme", "user1"): None, ("globex", "user0"): None,
                       ("globex", "user1"): None}
        assert "locked by another transaction" in next(r["message"] for r in rows if r["sqlstate"])
        assert open_txn(held)
    finally:
        held.rollback()
        held.close()
    assert count(db, "generation = 2") == 3 and count(db, "tenant_id = 'acme' AND account = 'user0' AND "
                                                          "generation = 1 AND lease_until IS NOT NULL") == 1


# -- hush.OAuth's on-demand refresh: a store that fails is tried again, or recorded -----------

class _Failing(PoolExecutor):
    """The pool's executor, except that the calls whose SQL names `fn` fail with `error`
    (`times` times; None: always)."""

    def __init__(self, pool: Any, fn: str, error: BaseException, times: int | None = None) -> None:
        super().__init__(pool)
        self.fn, self.error, self.times, self.failed = fn, error, times, 0

    def run(self, calls: Any) -> list[Any]:
        if any(self.fn in c.sql for c in calls) and (self.times is None or self.failed < self.times):
            self.failed += 1
            raise self.error
        return super().run(calls)


def test_an_on_demand_refresh_stores_again_once_a_writers_lock_goes(db: Any, oauth_server: Any) -> None:
    """An application refreshes on demand over a pool whose statements wait 50 ms at most for
    a lock; a writer holds the row when the provider answers. The store fails with 55P03, is
    tried again after a pause (the writer rolls back during it), and succeeds: the rotated
    tokens are not lost."""
    srv = fresh_server(oauth_server)
    two_tenants(db, srv, 1)
    srv.control.token_gate = threading.Event()
    client = hush.connect(db.dsn("alice"))
    held: list[psycopg.Connection[Any]] = []
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if held:  # the writer's transaction ends during the first pause
            conn = held.pop()
            conn.rollback()
            conn.close()

    writer = GuardedExecutor(client.pool, lock_timeout=0.05)
    oa = hush.OAuth(client.pool, "acme", writer=writer, sleep=pause)
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.update(token=oa.refresh("idp", "user0")), daemon=True)
    try:
        t.start()
        assert until(lambda: srv.token_count("refresh_token") == 1)
        held.append(hold_rows(db, "alice", "acme", ["user0"]))
        srv.control.token_gate.set()
        t.join(30)
        assert not t.is_alive()
    finally:
        srv.control.token_gate.set()
        for h in held:
            h.rollback()
            h.close()
        client.close()
    assert pauses == [0.2] and out["token"].access_token
    assert count(db, "tenant_id = 'acme' AND generation = 2 AND lease_until IS NULL AND failures = 0") == 1


def test_an_on_demand_store_refused_is_recorded_not_left_silent(db: Any, oauth_server: Any) -> None:
    """The store of a refresh refused for a reason another attempt cannot pass (here the
    server's SH004): the lease goes back with the failure recorded (failures, last_error; no
    token), and the caller gets the refusal."""
    srv = fresh_server(oauth_server)
    minted = two_tenants(db, srv, 1)
    client = hush.connect(db.dsn("alice"))
    try:
        refusal = hush.InvalidArgument("tokens must hold an access_token", sqlstate="SH004")
        oa = hush.OAuth(client.pool, "acme", writer=_Failing(client.pool, "oauth_finish_refresh", refusal),
                        sleep=lambda s: None)
        with pytest.raises(hush.InvalidArgument):
            oa.refresh("idp", "user0")
    finally:
        client.close()
    row = db.sql("SELECT failures, lease_until IS NULL, last_error FROM hush.oauth_connections "
                 "WHERE tenant_id = 'acme'")[0]
    assert row[0] == 1 and row[1] and "could not be stored [SH004]" in row[2]
    assert minted["acme"][0]["refresh_token"] not in row[2]


def test_a_failed_refresh_whose_failure_cannot_be_recorded_raises_the_providers_error(
        db: Any, oauth_server: Any) -> None:
    """The provider fails (503) and recording it meets a locked row (55P03): the caller gets
    the provider's failure, not the database's; the lease runs out on its own."""
    srv = fresh_server(oauth_server)
    two_tenants(db, srv, 1)
    srv.control.fail_token_requests = 1
    client = hush.connect(db.dsn("alice"))
    try:
        locked = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
        assert transient(locked)
        oa = hush.OAuth(client.pool, "acme", writer=_Failing(client.pool, "oauth_release_refresh", locked),
                        retries=1, sleep=lambda s: None)
        with pytest.raises(hush.ProviderUnavailable):
            oa.refresh("idp", "user0")
    finally:
        client.close()
    assert count(db, "tenant_id = 'acme' AND lease_until IS NOT NULL AND failures = 0") == 1


def test_the_workers_timeouts_stay_inside_its_transactions_through_pgbouncer(db: Any, pgbouncer: Any,
                                                                               oauth_server: Any) -> None:
    """The timeouts are SET LOCAL in each call's transaction: the worker refreshes through a
    transaction pooler, and the server connections it used show no lock_timeout or
    statement_timeout of its to the next client (a session SET would stay on them)."""
    srv = fresh_server(oauth_server)
    two_tenants(db, srv, 2)
    w = hush.OAuthWorker(pgbouncer.dsn(db.name, "wendy"), db_connections=2)
    try:
        assert w.run_once()["refreshed"] == 4
    finally:
        w.close()
    with psycopg.connect(pgbouncer.dsn(db.name, "wendy"), autocommit=True) as conn:
        for _ in range(6):
            assert conn.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"
                                ).fetchone() == ("0", "0")


# -- the store queue alone (no database): attempts, and a tenant's lock costing the others none ----

def refresh(tenant: str, account: str) -> Any:
    return (tenant, "idp", account, "hush_lease_x", 1, {"access_token": "a", "expires_in": 60})


def test_a_store_that_keeps_failing_is_given_up_after_its_attempts() -> None:
    """Each attempt is the batch statement, then each refresh on its own; after the last
    delay's attempt, NotStored with the last failure's SQLSTATE (and no token)."""
    calls: list[str] = []

    def run(call: Any) -> Any:
        calls.append("batch" if "oauth_worker_finish" in call.sql else call.params["account"])
        raise psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")

    told = threading.Event()
    out: list[Any] = []
    stores = StoreQueue(run, delays=(0.01, 0.02))
    stores.put(refresh("acme", "u1"), lambda stored, error: (out.append((stored, error)), told.set()))
    assert told.wait(10)
    stored, error = out[0]
    assert stored is None and isinstance(error, NotStored) and error.attempts == 3 and error.code == "55P03"
    assert calls == ["batch", "u1"] * 3
    stores.close(1)


def test_a_tenants_locked_row_sends_its_others_to_the_next_attempt_and_stores_the_rest() -> None:
    """A statement that failed as a whole is stored one refresh at a time; the first of acme's
    that meets a lock sends acme's others to their next attempt untried (no second wait),
    globex's is stored; closing gives up what still waits for its attempt."""
    tried: list[tuple[str, str]] = []

    def run(call: Any) -> Any:
        if "oauth_worker_finish" in call.sql:
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
        tried.append((call.params["tenant"], call.params["account"]))
        if call.params["tenant"] == "acme":
            raise psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
        return {c: None for c in q.STORED_COLS}

    out: dict[str, Any] = {}
    stores = StoreQueue(run, run_one=run, delays=(30.0,))
    for tenant, account in (("acme", "u1"), ("acme", "u2"), ("globex", "u1")):
        stores.put(refresh(tenant, account), lambda s, e, k=f"{tenant}/{account}": out.__setitem__(k, (s, e)))
    assert until(lambda: "globex/u1" in out)
    assert tried == [("acme", "u1"), ("globex", "u1")] and out["globex/u1"][1] is None
    assert "acme/u1" not in out and "acme/u2" not in out  # waiting for their next attempt
    stores.close(0.1)
    assert all(isinstance(out[k][1], NotStored) and out[k][1].attempts == 1 for k in ("acme/u1", "acme/u2"))
