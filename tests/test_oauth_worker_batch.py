"""The OAuth worker's batched calls (issue 18, throughput): hush.oauth_worker_lease opens
each lease it takes in the same statement, hush.oauth_worker_finish stores many refreshes
in one, and hush.OAuthWorker stores its refreshes by the batch (_oauth_batch.py). Each
connection is checked as the per-connection functions check it: the current lease token
and generation, the caller's grant, one audit row per refresh, no token in any audit row,
event, log line or query text. As the non-superuser roles of tests/conftest.py; the
superuser only inspects (and tampers)."""
from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg

import hush
from hush import _oauth_calls as q
from hush._calls import Call
from hush._errors import DatabaseUnavailable, OAuthLeaseLost
from hush._oauth_batch import StoreQueue
from helpers import raises_sqlstate
from oauth_helpers import fresh_server, register, tenant_oauth

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plpython"))
from hush_plpy import oauth_batch as plpy_batch, oauth_tokens as plpy_tokens  # noqa: E402

PROVIDER = json.dumps({"client_id": "app", "token_endpoint": "https://idp.example/token"})
FORGED = "hush_lease_" + "F" * 43


def due(db: Any, n: int, tenant: str = "acme", user: str = "alice") -> None:
    """n connections user0.. at provider idp (stand-in tokens), due for the worker now."""
    with db.connect(user) as conn, conn.transaction():
        conn.execute("SELECT hush.oauth_save_provider(%s, 'idp', %s, %s)", [tenant, PROVIDER, "app-secret"])
        for i in range(n):
            conn.execute("SELECT hush.oauth_store_tokens(%s, 'idp', %s, 'authorization_code', %s)",
                         [tenant, f"user{i}", json.dumps({"access_token": f"at-{tenant}-{i}-old",
                                                          "refresh_token": f"rt-{tenant}-{i}-old",
                                                          "expires_in": 60})])
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = refreshed_at - interval '1 hour' WHERE tenant_id = %s",
           [tenant])


def rows(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    return [dict(zip([c.name for c in cur.description], r)) for r in cur.fetchall()]


def lease(conn: psycopg.Connection[Any], n: int = 100) -> list[dict[str, Any]]:
    return rows(conn.execute("SELECT * FROM hush.oauth_worker_lease('w', %s)", [n]))


def new_tokens(i: int, tenant: str = "acme") -> str:
    return json.dumps({"access_token": f"at-{tenant}-{i}-new", "refresh_token": f"rt-{tenant}-{i}-new",
                       "expires_in": 3600, "token_type": "Bearer"})


def finish(conn: psycopg.Connection[Any], leased: list[dict[str, Any]], lease_tokens: list[str] | None = None,
           tokens: list[str] | None = None) -> list[dict[str, Any]]:
    return rows(conn.execute(
        "SELECT * FROM hush.oauth_worker_finish(%s, %s, %s, %s, %s, %s::jsonb[])",
        [[r["tenant_id"] for r in leased], [r["provider"] for r in leased], [r["account"] for r in leased],
         lease_tokens or [r["lease_token"] for r in leased], [r["generation"] for r in leased],
         tokens or [new_tokens(int(r["account"][4:]), r["tenant_id"]) for r in leased]]))


def stored(db: Any, account: str, tenant: str = "acme", user: str = "alice") -> tuple[Any, ...]:
    with db.connect(user) as conn:
        return tuple(conn.execute("SELECT access_token, refresh_token FROM hush.oauth_connection_tokens(%s, 'idp', %s)",
                                  [tenant, account]).fetchone())


def test_a_lease_opens_each_connection_and_a_finish_stores_each_with_an_audit_row(db: Any) -> None:
    due(db, 3)
    with db.connect("wendy") as wendy:
        leased = lease(wendy)
        assert sorted(r["account"] for r in leased) == ["user0", "user1", "user2"]
        for r in leased:  # what oauth_claim_refresh returns for a lease
            i = int(r["account"][4:])
            assert (r["refresh_token"], r["client_secret"], r["grant_type"], r["sqlstate"]) == (
                f"rt-acme-{i}-old", "app-secret", "authorization_code", None)
            assert r["config"]["token_endpoint"] == "https://idp.example/token"
            assert r["lease_token"].startswith("hush_lease_") and r["generation"] == 1
        assert len({r["lease_token"] for r in leased}) == 3
        done = finish(wendy, leased)
    assert [d["item"] for d in done] == [1, 2, 3]
    assert all(d["sqlstate"] is None and d["generation"] == 2 for d in done)
    for i in range(3):
        assert stored(db, f"user{i}") == (f"at-acme-{i}-new", f"rt-acme-{i}-new")
    assert db.sql("SELECT count(*) FROM hush.oauth_connections WHERE lease_until IS NOT NULL "
                  "OR lease_token_hash IS NOT NULL OR generation <> 2") == [(0,)]
    audit = db.sql("SELECT detail->>'account', detail->>'holder', db_role, version FROM hush.audit_log "
                   "WHERE action = 'oauth_refresh' ORDER BY detail->>'account'")
    assert audit == [(f"user{i}", "w", "wendy", 2) for i in range(3)]


def test_a_wrong_lease_token_refuses_that_refresh_and_the_others_are_stored(db: Any) -> None:
    due(db, 4)
    with db.connect("wendy") as wendy:
        leased = sorted(lease(wendy), key=lambda r: r["account"])
        tokens = [r["lease_token"] for r in leased]
        # user1: a made-up token; user2: user3's token; user3 twice (the second finds it gone).
        batch = leased + [leased[3]]
        done = finish(wendy, batch, [tokens[0], FORGED, tokens[3], tokens[3], tokens[3]],
                      [new_tokens(0), new_tokens(1), new_tokens(2), new_tokens(3),
                       json.dumps({"access_token": "at-acme-3-again", "expires_in": 60})])
    assert [(d["account"], d["sqlstate"]) for d in done] == [
        ("user0", None), ("user1", "SH075"), ("user2", "SH075"), ("user3", None), ("user3", "SH075")]
    for d in done:
        if d["sqlstate"]:
            assert "hush_lease_" not in d["message"] and d["generation"] is None
    assert [stored(db, f"user{i}") for i in range(4)] == [
        ("at-acme-0-new", "rt-acme-0-new"), ("at-acme-1-old", "rt-acme-1-old"), ("at-acme-2-old", "rt-acme-2-old"),
        ("at-acme-3-new", "rt-acme-3-new")]
    # The refused keep their lease (it runs out, or its holder finishes with the right token).
    assert db.sql("SELECT account FROM hush.oauth_connections WHERE lease_token_hash IS NOT NULL ORDER BY 1") == [
        ("user1",), ("user2",)]
    assert db.sql("SELECT detail->>'account' FROM hush.audit_log WHERE action = 'oauth_refresh' ORDER BY 1") == [
        ("user0",), ("user3",)]
    with db.connect("wendy") as wendy:  # the right token still stores user1's refresh
        assert finish(wendy, [leased[1]])[0]["sqlstate"] is None
    assert stored(db, "user1") == ("at-acme-1-new", "rt-acme-1-new")


def test_readers_writers_and_other_tenants_workers_are_refused(db: Any) -> None:
    due(db, 2)
    for user in ("rita", "alice", "otto"):
        with db.connect(user) as conn:
            with raises_sqlstate("42501"):
                lease(conn)
            with raises_sqlstate("42501"):
                finish(conn, [{"tenant_id": "acme", "provider": "idp", "account": "user0", "lease_token": FORGED,
                               "generation": 1}])
    with db.connect("wendy") as wendy:
        leased = lease(wendy)
    # Wendy now serves globex, no longer acme: she leases nothing of acme's and stores nothing there.
    db.sql("SELECT hush.revoke_tenant('wendy', 'acme')", user="adam")
    db.sql("SELECT hush.grant_tenant('wendy', 'globex')", user="adam")
    db.sql("UPDATE hush.oauth_connections SET lease_until = now() - interval '1 second'")
    with db.connect("wendy") as wendy:
        assert lease(wendy) == []
        done = finish(wendy, leased)
    assert [d["sqlstate"] for d in done] == ["SH020", "SH020"]
    assert [stored(db, f"user{i}") for i in range(2)] == [("at-acme-0-old", "rt-acme-0-old"),
                                                        ("at-acme-1-old", "rt-acme-1-old")]
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'oauth_refresh'") == [(0,)]


def test_a_batch_over_its_limits_is_refused_whole(db: Any) -> None:
    with db.connect("wendy") as wendy:
        many = [{"tenant_id": "acme", "provider": "idp", "account": f"user{i}", "lease_token": FORGED,
                 "generation": 1} for i in range(1001)]
        with raises_sqlstate("SH004"):
            finish(wendy, many, tokens=["{}"] * 1001)
        with raises_sqlstate("SH004"):  # arrays of different lengths
            wendy.execute("SELECT * FROM hush.oauth_worker_finish('{acme}', '{idp}', '{user0}', %s, '{1,2}', "
                          "ARRAY['{}'::jsonb])", [[FORGED]])


def test_reads_are_recorded_per_connection_when_the_tenant_records_them(db: Any) -> None:
    """Opening a lease unseals a refresh token: one oauth_refresh_claim read record each, as
    oauth_claim_refresh writes, with the label and never the token. With audit_reads off there
    is none: the call's own leases (a write) do not count as a write of the caller's."""
    due(db, 2)
    with db.connect("wendy") as wendy:
        leased = lease(wendy)
    claims = db.sql("SELECT detail->>'account', detail->>'holder', detail::text FROM hush.audit_log "
                    "WHERE action = 'oauth_refresh_claim' ORDER BY 1")
    assert [c[:2] for c in claims] == [("user0", "w"), ("user1", "w")]
    assert not any(r["lease_token"] in c[2] for r in leased for c in claims)
    db.sql("SELECT hush.configure_tenant('acme', audit_reads => false)", user="adam")
    db.sql("UPDATE hush.oauth_connections SET lease_until = now() - interval '1 second'")
    with db.connect("wendy") as wendy:
        assert len(lease(wendy)) == 2
    assert len(db.sql("SELECT 1 FROM hush.audit_log WHERE action = 'oauth_refresh_claim'")) == 2


def test_no_token_reaches_an_audit_row_event_log_line_or_query_text(db: Any, cluster: Any) -> None:
    due(db, 3)
    with db.connect("wendy") as wendy:
        leased = lease(wendy)
        done = finish(wendy, leased, [leased[0]["lease_token"], FORGED, leased[2]["lease_token"]])
        [(query,)] = db.sql("SELECT query FROM pg_stat_activity WHERE pid = %s", [wendy.info.backend_pid])
    assert [d["sqlstate"] is None for d in done] == [True, False, True]
    secrets = {r["lease_token"] for r in leased} | {"app-secret"} | {
        f"{kind}-acme-{i}-{age}" for kind in ("at", "rt") for i in range(3) for age in ("old", "new")}
    trail = "\n".join(r[0] for r in db.sql("SELECT t::text FROM hush.audit_log t"))
    events = "\n".join(r[0] for r in db.sql("SELECT e::text FROM hush.oauth_events e"))
    conns = "\n".join(r[0] for r in db.sql("SELECT c::text FROM hush.oauth_connections c"))
    db.sql("SELECT pg_sleep(0.2)")  # let the logger flush
    log = cluster.log.read_text(errors="replace")
    assert "hush.oauth_worker_finish" in log and "hush-failure" in log  # logged, the refusal too...
    for s in secrets:
        assert s not in trail and s not in events and s not in conns and s not in log and s not in query


def test_the_worker_refreshes_the_others_when_one_connection_does_not_open(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
    minted = [srv.mint("app", f"user{i}", 60) for i in range(3)]
    with db.connect("alice") as alice:
        for i, t in enumerate(minted):
            alice.execute("SELECT hush.oauth_store_tokens('acme', 'idp', %s, 'authorization_code', %s)",
                          [f"user{i}", json.dumps(t)])
    db.sql("UPDATE hush.oauth_connections SET refreshed_at = refreshed_at - interval '1 hour'")
    # user1's sealed tokens are another row's: they do not open (SH031).
    db.sql("UPDATE hush.oauth_connections c SET ciphertext = o.ciphertext, wrapped_dek = o.wrapped_dek "
           "FROM hush.oauth_connections o WHERE c.account = 'user1' AND o.account = 'user0'")
    w = hush.OAuthWorker(db.dsn("wendy"))
    try:
        assert w.run_once() == {"refreshed": 2, "skipped": 1}
    finally:
        w.close()
    assert srv.token_count("refresh_token") == 2
    assert db.sql("SELECT account, generation FROM hush.oauth_connections ORDER BY 1") == [
        ("user0", 2), ("user1", 1), ("user2", 2)]
    assert len(db.sql("SELECT 1 FROM hush.audit_log WHERE action = 'oauth_refresh'")) == 2


# -- the worker's store queue, without a database ----------------------------------------------

def test_a_store_that_fails_as_a_whole_stores_each_refresh_on_its_own() -> None:
    """A statement that fails as a whole (here: the database restarting) must not cost the
    batch its tokens: each is stored on its own, and one refused is reported for itself."""
    calls: list[str] = []

    def run(call: Call[Any]) -> Any:
        calls.append("batch" if "oauth_worker_finish" in call.sql else "one")
        if "oauth_worker_finish" in call.sql:
            raise DatabaseUnavailable("the database is restarting", sqlstate="57P01")
        if call.params["account"] == "b":
            raise OAuthLeaseLost("taken over", sqlstate="SH075")
        return {"account": call.params["account"], "generation": 2, "expires_at": None, "scopes": [],
                "fields": {}, "secret_fields": {}}

    got: dict[str, Any] = {}
    ended = threading.Event()

    def done(account: str) -> Any:
        def record(stored: Any, error: Any) -> None:
            got[account] = error or stored
            if len(got) == 3:
                ended.set()
        return record

    stores = StoreQueue(run, linger=0.05)
    for account in ("a", "b", "c"):
        stores.put(("acme", "idp", account, q.LeaseToken(FORGED), 1, {"access_token": "x"}), done(account))
    assert stores.drain(10) == 0 and ended.wait(10)
    stores.close()
    assert calls == ["batch", "one", "one", "one"]
    assert got["a"]["generation"] == 2 and got["c"]["generation"] == 2 and isinstance(got["b"], OAuthLeaseLost)


def test_the_batch_update_sets_what_a_single_store_sets() -> None:
    """oauth_batch.UPDATE_SQL is oauth_tokens.CONN_UPDATE_SQL for many rows: the same columns."""
    def assigned(sql: str) -> set[str]:
        body = sql.split(" SET ", 1)[1]
        body = re.split(r"\n WHERE ", body, maxsplit=1)[0]
        names = set(re.findall(r"(?:^|,)\s*(\w+) = ", body))
        for group in re.findall(r"\(([\w,\s]+)\) =", body):  # SET (a, b) = (SELECT ...)
            names |= {n.strip() for n in group.split(",")}
        return names
    single, batch = assigned(plpy_tokens.CONN_UPDATE_SQL), assigned(plpy_batch.UPDATE_SQL)
    assert "lease_token_hash" in single and single == batch


def test_a_store_statement_holds_few_tenants() -> None:
    """Each tenant's part of a store is a step whose writes are subtransactions: one
    statement stores for a dozen tenants at most, however many are waiting."""
    batches: list[list[str]] = []

    def run(call: Call[Any]) -> Any:
        tenants = call.params["tenants"]
        batches.append(tenants)
        return [{"item": i + 1, "account": "a", "generation": 2, "expires_at": None, "scopes": [], "fields": {},
                 "secret_fields": {}, "sqlstate": None, "message": None} for i in range(len(tenants))]

    stored: list[str] = []
    stores = StoreQueue(run, linger=0.2)
    for t in range(40):
        stores.put((f"t{t}", "idp", "a", q.LeaseToken(FORGED), 1, {"access_token": "x"}),
                   lambda s, e, t=t: stored.append(f"t{t}"))
    assert stores.drain(10) == 0
    stores.close()
    assert sorted(stored) == sorted(f"t{t}" for t in range(40))
    assert len(batches) >= 4 and all(len(set(b)) <= 12 for b in batches)


def test_jobs_opened_with_their_claim_skip_the_open_and_keep_the_per_host_limit() -> None:
    """A lease opened by oauth_worker_lease goes straight to its host's queue (no open step,
    no database call), and the host's slots still bound what is in flight."""
    import time
    from collections import Counter
    from hush._oauth_dispatch import Dispatch, Job

    lock = threading.Lock()
    flight: Counter[str] = Counter()
    most: Counter[str] = Counter()
    sent: list[str] = []

    def open_(job: Job) -> str:
        raise AssertionError("opened with its claim: never opened again")

    def opened(job: Job) -> str | None:
        job.lease = {"opened": True}
        return str(job.row["provider"])

    def send(job: Job, answered: Any) -> None:
        with lock:
            flight[job.host or ""] += 1
            most[job.host or ""] = max(most[job.host or ""], flight[job.host or ""])
        time.sleep(0.002)
        with lock:
            flight[job.host or ""] -= 1
            sent.append(job.row["account"])
        answered()

    d = Dispatch(open_, send, lambda job: None, concurrency=8, per_host=2, per_tenant=8, lease_seconds=600,
                 request_seconds=30, stall_after=30, opened=opened)
    try:
        assert d.add([{"tenant_id": "acme", "provider": p, "account": f"{p}{i}"}
                      for i in range(20) for p in ("h1", "h2")]) == 40
        deadline = time.monotonic() + 20
        while not d.idle() and time.monotonic() < deadline:
            d.wait(0.1)
        assert d.idle() and sorted(sent) == sorted(f"{p}{i}" for i in range(20) for p in ("h1", "h2"))
        assert set(most) == {"h1", "h2"} and max(most.values()) <= 2
    finally:
        d.close()
