"""hush oauth-worker: refreshes OAuth tokens before they expire.

Each round leases due connections across the tenants the worker's role is
granted and opens their leases in the same statement (hush.oauth_worker_lease:
one committed UPDATE, SKIP LOCKED, so several workers take different rows;
every tenant's most urgent connection before any tenant's second), refreshes
them concurrently (_oauth_dispatch.py) and stores the results by the batch
(_oauth_batch.py: hush.oauth_worker_finish):
`concurrency` threads, at most `per_host` requests in flight to one origin
(a tenant's provider's token endpoint: tenant, scheme, host and port) and
`per_tenant` for one tenant, each request with a connect and a read timeout.
A provider that accepts connections and never answers holds a few threads for
one timeout; every other tenant's refreshes go by meanwhile. No
transaction is open during HTTP, and the lease is the one on-demand callers
use (hush.OAuth.access_token): a connection is never refreshed twice at once.
Failures back off per connection (the provider's Retry-After when it sends
one), invalid_grant marks it needs_reauth; the database records the events.
Database connections: a pool of at most `db_connections` serves the claims and
every thread's calls (a connection is lent for one call, never shared by two
threads at once), plus the one that LISTENs for wake-ups. Every call runs with a
lock timeout and a statement timeout of its own, and waits for no connection
row's lock (_oauth_db.py): a tenant's role that holds its rows locked in an open
transaction delays nobody else's refreshes.

Between rounds the worker sleeps until the next connection it serves falls
due (hush.oauth_worker_next_due), or `interval` seconds if that is sooner, and
wakes when hush.oauth_store_tokens announces a new connection (NOTIFY
hush_oauth_wakeup, no payload), whose tokens may fall due before then: at once,
or a second after the previous round at the soonest, since any role may NOTIFY
on the channel (and hush sends one a half second at most). Behind a
transaction pooler (pgbouncer) notifications do not arrive: the worker finds out
at start (it notifies itself on a channel of its own), says so in its log, and
keeps to the due times; `listen_conninfo`, a direct DSN, brings them back.

On stop() (SIGTERM in the CLI) nothing more starts: every lease whose request
has not been sent goes back at once; requests in flight finish (up to their
timeouts) and their results are stored, then run() returns. Those leases are
never given back early: the provider may already have rotated the refresh token
presented, and the next claimer would present the old one. Log lines name
tenant, provider and account, never a token.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx2 as httpx
import psycopg
from psycopg_pool import ConnectionPool

from . import _oauth_calls as q
from ._client import _pool, connect_kwargs
from ._errors import (HushError, InvalidArgument, OAuthError, OAuthLeaseLost, ProviderUnavailable,
                      ReauthorizationRequired)
from ._oauth import OAuth
from ._oauth_batch import RETRY_SECONDS, NotStored, StoreQueue
from ._oauth_db import LOCK_TIMEOUT, ROW_LOCK_TIMEOUT, STATEMENT_TIMEOUT, GuardedExecutor, code_of, transient
from ._oauth_dispatch import Dispatch, Job

log = logging.getLogger("hush.oauth_worker")
WAKEUP = "hush_oauth_wakeup"
# Any role may NOTIFY on any channel: however many wake-ups come, a round starts at most
# this many seconds after the one before (hush itself sends at most one a half second).
WAKEUP_GAP = 1.0


# A host (or tenant) whose slots are all taken, one by a request older than this (or half
# the read timeout, if less), is stalled: its surplus goes back rather than waiting on hand
# (_oauth_dispatch.py). Healthy providers answer a refresh well within it; one taken for
# stalled by mistake only has connections given back and claimed again.
STALL_AFTER = 2.0
# Beyond its HTTP timeouts, what a refresh may take to store its result.
STORE_SECONDS = 5.0
# After a round whose every claimed connection went back (all of them wait on stalled hosts),
# the next claims at most this often: often enough that a connection of another tenant
# falling due meanwhile waits less than any request timeout.
PROBE_GAP = 1.0


def _origin(tenant: str, config: dict[str, Any]) -> str:
    """What per-host slots and stalls count by: the tenant and its provider's token endpoint's
    origin (scheme, host, port). By the host name alone, a tenant that named another's
    provider host with a port of its own (a tarpit) shared that host's slots, and stalled them."""
    u = urlsplit(str(config.get("token_endpoint") or ""))
    scheme = u.scheme.lower()
    try:
        port = u.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:  # not a port: the request fails on its own
        port = None
    return f"{tenant} {scheme}://{(u.hostname or '').lower()}:{port}"


class OAuthWorker:
    """Keeps the tokens of every connection it serves fresh. `window`: refresh what expires
    within this many seconds; `keepalive`: also refresh connections idle this long (providers
    that revoke unused refresh tokens), None = never; `interval`: seconds between rounds.
    `concurrency` refreshes at once at most, `per_host` of them to one origin (a tenant's
    token endpoint's scheme, host and port) and `per_tenant` for one tenant (default:
    per_host, at most a quarter of concurrency, so that tenants whose providers never answer
    hold a quarter of the threads each at most); `connect_timeout` and `timeout` (the read
    timeout) bound each request; `db_connections`: the size of its pool of database
    connections (one more LISTENs); `db_lock_timeout` and `db_statement_timeout` (seconds)
    bound each of its statements' lock waits and run (the calls on one connection's row
    wait for no lock at all: _oauth_db.py)."""

    def __init__(self, conninfo: str, *, window: int = 900, batch_size: int = 100, interval: float = 30.0,
                 lease_seconds: int = 60, keepalive: int | None = None, timeout: float = 10.0,
                 connect_timeout: float = 5.0, concurrency: int = 16, per_host: int = 4,
                 per_tenant: int | None = None, db_connections: int = 4,
                 listen_conninfo: str | None = None, db_lock_timeout: float = LOCK_TIMEOUT,
                 db_statement_timeout: float = STATEMENT_TIMEOUT) -> None:
        per_tenant = max(1, min(per_host, concurrency // 4)) if per_tenant is None else per_tenant
        for name, n in (("concurrency", concurrency), ("per_host", per_host), ("per_tenant", per_tenant),
                        ("db_connections", db_connections)):
            if not 1 <= n <= 1000:
                raise InvalidArgument(f"{name} must be between 1 and 1000")
        for name, t in (("timeout", timeout), ("connect_timeout", connect_timeout),
                        ("db_lock_timeout", db_lock_timeout), ("db_statement_timeout", db_statement_timeout)):
            if not 0 < t <= 600:
                raise InvalidArgument(f"{name} must be more than 0 and at most 600 seconds")
        self.conninfo = conninfo
        self.listen_conninfo = listen_conninfo or conninfo
        self.window = window
        self.batch_size = batch_size
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.keepalive = keepalive
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.concurrency = concurrency
        self.per_host = per_host
        self.per_tenant = per_tenant
        self.db_connections = db_connections
        self.db_lock_timeout = db_lock_timeout
        self.db_statement_timeout = db_statement_timeout
        self.holder = f"worker:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stats: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._db: ConnectionPool[Any] | None = None
        self._calls: tuple[GuardedExecutor, GuardedExecutor] | None = None  # statements; row calls
        self._oauths: dict[str, OAuth] = {}
        self._dispatch: Dispatch | None = None
        self._stores: StoreQueue | None = None
        self._serving = False    # inside run(): a round leaves its work going when it ends
        self._fruitless = False  # the last round's claims all went back (stalled hosts)
        self._empty = False      # the last round claimed nothing at all

    def stop(self) -> None:
        """Start nothing more: give back every lease whose request was not sent, let the
        requests in flight finish and store their results, then return from run()."""
        self._stop.set()
        d = self._dispatch  # no lock: the CLI calls this from a signal handler
        if d is not None:
            d.halt()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._db is None:
                self._db = _pool(self.conninfo, "hush-oauth-worker", 1, self.db_connections, 30.0,
                                 connect_kwargs({"application_name": "hush-oauth-worker"}, None), 10.0, {})
            return self._db

    def _executors(self) -> tuple[GuardedExecutor, GuardedExecutor]:
        """Over the pool: the worker's statements (db_lock_timeout), and the calls on one
        connection's row, which wait for no lock (_oauth_db.py)."""
        pool = self._pool()
        with self._lock:
            if self._calls is None or self._calls[0].pool is not pool:
                self._calls = (GuardedExecutor(pool, lock_timeout=self.db_lock_timeout,
                                               statement_timeout=self.db_statement_timeout),
                               GuardedExecutor(pool, lock_timeout=min(ROW_LOCK_TIMEOUT, self.db_lock_timeout),
                                               statement_timeout=self.db_statement_timeout))
            return self._calls

    def _run(self, call: Any) -> Any:
        return self._executors()[0].run([call])[0]

    def _run_row(self, call: Any) -> Any:
        return self._executors()[1].run([call])[0]

    def close(self) -> None:
        """Let the worker's threads end and close its database pool (run() does it on return)."""
        with self._lock:
            d, self._dispatch = self._dispatch, None
            stores, self._stores = self._stores, None
        if d is not None:
            d.close()
        if stores is not None:  # before the pool goes: what it still stores needs it
            stores.close(STORE_SECONDS)
        with self._lock:
            db, self._db = self._db, None
            self._calls = None
        if db is not None:
            db.close()

    def _oauth(self, tenant: str) -> OAuth:
        rows = self._executors()[1]  # its calls are on one connection's row: a renewal, a release
        with self._lock:
            oa = self._oauths.get(tenant)
            if oa is None or oa._write is not rows:
                # One attempt per round: a failure backs off in the database, not in this loop.
                oa = self._oauths[tenant] = OAuth(
                    rows, tenant, writer=rows, lease_seconds=self.lease_seconds, retries=1,
                    timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout))
            return oa

    def _count(self, outcome: str, n: int = 1) -> None:
        with self._lock:
            self.stats[outcome] += n

    def _counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.stats)

    def claim(self, size: int | None = None) -> list[dict[str, Any]]:
        """Lease up to `size` (default: batch_size) due connections: rows with tenant_id,
        provider, account, generation, expires_at and the lease_token."""
        call = q.worker_claim(self.holder, size or self.batch_size, self.window, self.lease_seconds, self.keepalive)
        batch: list[dict[str, Any]] = self._run(call)
        return batch

    def lease(self, size: int | None = None) -> list[dict[str, Any]]:
        """claim(), each lease opened in the same statement (hush.oauth_worker_lease): its row
        also has `lease` (what the refresh needs; None, with `sqlstate` and `message`, when it
        could not be opened). What rounds take: a refresh then costs the database no call
        before its request."""
        call = q.worker_lease(self.holder, size or self.batch_size, self.window, self.lease_seconds, self.keepalive)
        batch: list[dict[str, Any]] = self._run(call)
        return batch

    def _store(self) -> StoreQueue:
        with self._lock:
            if self._stores is None:
                self._stores = StoreQueue(self._run, run_one=self._run_row)
            return self._stores

    # -- one connection: open its lease, send its refresh, or give it back ----------------

    @staticmethod
    def _where(job: Job) -> str:
        return f"tenant={job.row['tenant_id']} provider={job.row['provider']} account={job.row['account']}"

    @staticmethod
    def _opened(job: Job) -> str | None:
        """For a lease opened with its claim (lease()): its origin, the lease taken up."""
        lease = job.row.get("lease")
        if lease is None:
            return None
        job.lease = lease
        return _origin(job.tenant, lease["config"] or {})

    def _open(self, job: Job) -> str | None:
        """Take up the claimed lease (the refresh token, the provider's settings); its origin
        (_origin), or None when there is nothing to send (outcome counted)."""
        row = job.row
        if "lease" in row:  # opened with its claim (lease())
            if row["lease"] is None:
                log.warning("skipped %s: %s [%s]", self._where(job), row["message"], row["sqlstate"])
                self._count("skipped")
                return None
            job.lease = row["lease"]
            return _origin(job.tenant, row["lease"]["config"] or {})
        try:
            # OAuth.refresh_leased in two steps: the host is known only from the opened lease,
            # and the request waits for its host between them.
            lease = self._oauth(job.tenant)._w(q.claim(job.tenant, row["provider"], row["account"],
                                                       row["lease_token"], self.lease_seconds, row["generation"]))
        except OAuthLeaseLost:
            lease = None
        except HushError as e:  # e.g. the provider was removed meanwhile
            log.warning("skipped %s: %s [%s]", self._where(job), e.message, e.code)
            self._count("skipped")
            return None
        except psycopg.Error as e:  # its row locked (55P03), the database gone: the lease runs out on its own
            log.warning("skipped %s: %s [%s]", self._where(job), type(e).__name__, e.sqlstate)
            self._count("skipped")
            return None
        if lease is None or lease["outcome"] != "claimed":
            log.info("skipped %s: refreshed by another caller meanwhile", self._where(job))
            self._count("skipped")
            return None
        job.lease = lease
        return _origin(job.tenant, lease["config"] or {})

    def _attempt(self, job: Job, answered: Callable[[], None] | None = None,
                 finished: Callable[[str], None] | None = None) -> None:
        """The refresh request of an opened lease; its response goes to the store queue
        (_oauth_batch.py), its failure is recorded now. `answered`: called once the provider
        has answered, before any database work; `finished`: told what happened (the log
        line's verb) once the outcome is known, stored or not."""
        assert job.lease is not None
        row = job.row
        try:
            response, _, _ = self._oauth(job.tenant)._refresh_request(row["provider"], row["account"],
                                                                      row["lease_token"], job.lease, answered)
        except (HushError, psycopg.Error) as e:
            self._outcome(job, None, e, finished)
            return
        refresh = (job.tenant, row["provider"], row["account"], row["lease_token"], job.lease["generation"], response)
        self._store().put(refresh, lambda stored, error: self._outcome(job, stored, error, finished))

    def _outcome(self, job: Job, stored: dict[str, Any] | None, error: BaseException | None,
                 finished: Callable[[str], None] | None) -> None:
        """Count and log how a refresh ended."""
        where = self._where(job)
        if isinstance(error, ReauthorizationRequired):
            outcome = "needs_reauth"
            log.warning("needs_reauth %s: the provider refused the refresh token", where)
        elif isinstance(error, ProviderUnavailable):
            outcome = "deferred"
            log.warning("deferred %s: %s%s", where, error.message,
                        f"; Retry-After {error.retry_after} s" if error.retry_after is not None else "")
        elif isinstance(error, OAuthError):
            outcome = "failed"
            log.warning("failed %s: %s", where, error.message)
        elif isinstance(error, NotStored):  # the provider answered; the database never took it
            outcome = "failed"
            log.error("failed %s: the provider's answer could not be stored in %d attempts [%s]; its lease runs "
                      "out, and the refresh token it replaced may be spent", where, error.attempts, error.code)
        elif isinstance(error, OAuthLeaseLost):  # ran out and another caller stored first: theirs stands
            outcome = "skipped"
            log.info("skipped %s: refreshed by another caller meanwhile", where)
        elif isinstance(error, HushError):  # e.g. the provider was removed meanwhile
            outcome = "skipped"
            log.warning("skipped %s: %s [%s]", where, error.message, error.code)
        elif isinstance(error, psycopg.Error):  # the database went away: what the provider sent may be lost
            outcome = "failed"
            log.error("failed %s: %s [%s]", where, type(error).__name__, error.sqlstate)
        elif error is not None:
            outcome = "failed"
            log.error("failed %s: %s", where, type(error).__name__)
        else:
            assert stored is not None
            outcome = "refreshed"
            log.info("refreshed %s expires_at=%s", where,
                     stored["expires_at"].isoformat() if stored["expires_at"] else "never")
        self._count(outcome)
        if finished is not None:
            finished(outcome)

    def _release(self, job: Job) -> None:
        """Give back a lease whose request was never sent: nothing is recorded. Its row locked
        by another transaction, the lease runs out on its own: no wait (_oauth_db.py)."""
        row = job.row
        try:
            self._run_row(q.release(job.tenant, row["provider"], row["account"], row["lease_token"],
                                    row["generation"], None, False))
        except OAuthLeaseLost:  # it ran out and another call claimed it, or stored tokens
            pass
        except HushError as e:  # its lease runs out on its own
            log.warning("could not give back %s: %s [%s]", self._where(job), e.message, e.code)
        except psycopg.Error as e:
            log.warning("could not give back %s: %s [%s]", self._where(job), type(e).__name__, e.sqlstate)
        self._count("released")

    def refresh_one(self, item: dict[str, Any]) -> str:
        """Refresh one leased connection (a row of claim() or lease()) now; returns what
        happened (the log line's verb) once its result is stored."""
        job = Job(item, 0.0)
        if self._open(job) is None:
            return "skipped"
        outcome: list[str] = []
        ended = threading.Event()

        def finished(verb: str) -> None:
            outcome.append(verb)
            ended.set()
        self._attempt(job, None, finished)
        # Not drain(): that waits for every refresh queued, another thread's locked row's too.
        ended.wait(STORE_SECONDS + RETRY_SECONDS)
        return outcome[0] if outcome else "failed"

    # -- rounds ------------------------------------------------------------------------------

    def _dispatcher(self) -> Dispatch:
        with self._lock:
            if self._dispatch is None:
                self._dispatch = Dispatch(
                    self._open, self._attempt, self._release, concurrency=self.concurrency, per_host=self.per_host,
                    per_tenant=self.per_tenant, lease_seconds=self.lease_seconds,
                    request_seconds=self.connect_timeout + self.timeout + STORE_SECONDS,
                    stall_after=min(STALL_AFTER, self.timeout / 2), opened=self._opened)
                if self.stopping:  # stop() came while it was being made
                    self._dispatch.halt()
            return self._dispatch

    def run_once(self) -> Counter[str]:
        """One round: claim and refresh until nothing more is due now (or stop()); returns the
        counts of what ended meanwhile. On its own it returns once the work it started is
        done; inside run() that work goes on beside the wait for the next round."""
        before = self._counts()
        d = self._dispatcher()
        low = min(self.concurrency, self.batch_size)
        size = low if self._fruitless else self.batch_size  # after all went back: a small probe
        self._fruitless = False
        short = False  # the last claim came up short: nothing more was due then
        mark = before["released"]
        next_claim = 0.0
        self._empty = True
        while not self.stopping:
            gave_back = self._counts()["released"] > mark  # leases given back since: due again
            if short and not gave_back and d.idle():
                break
            on_hand = d.on_hand()
            if (not short or gave_back) and on_hand < low and time.monotonic() >= next_claim:
                # Room for more: claim before the threads run dry.
                want = min(size, self.batch_size - on_hand)
                try:
                    rows = self.lease(want)
                except (HushError, psycopg.Error) as e:
                    if not transient(e):
                        raise
                    # A lock it would not wait for (maintenance), the database restarting: later.
                    log.warning("could not lease connections [%s]; trying again in %g s", code_of(e), PROBE_GAP)
                    mark, short, self._fruitless = self._counts()["released"], True, True
                    next_claim = time.monotonic() + PROBE_GAP
                    if self._serving:
                        break
                    continue
                mark = self._counts()["released"]
                self._empty = self._empty and not rows
                kept = d.add(rows)
                short, size = len(rows) < want, self.batch_size
                if rows and not kept:  # every one waits on a stalled host: look again, not at once
                    self._fruitless = True
                    if self._serving:
                        break
                    next_claim, size = time.monotonic() + PROBE_GAP, low
                elif short and self._serving:
                    break
                continue
            d.wait(0.25)
            d.tick()
        if self.stopping and not self._serving:
            self._finish(d)
        elif not self._serving:  # the round's last responses, stored before it is over (retries too)
            self._store().drain(STORE_SECONDS + RETRY_SECONDS)
        done = self._counts() - before
        if done:
            log.info("round: %s", ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
        return done

    def _finish(self, d: Dispatch) -> None:
        """stop(): give back what was not sent, wait for what was (its result is stored)."""
        before = self._counts()["released"]
        d.stop()
        limit = self.connect_timeout + self.timeout + STORE_SECONDS
        left = d.drain(limit)
        unstored = self._store().drain(STORE_SECONDS)
        log.info("stopping: gave back %d leases", self._counts()["released"] - before)
        if left:
            log.warning("stopping: %d requests still in flight after %g s; their leases run out on their own",
                        left, limit)
        if unstored:
            log.error("stopping: %d refreshes' results not stored after %g s", unstored, STORE_SECONDS)

    def next_due(self) -> float | None:
        """Seconds until a connection this worker serves falls due (0: now; None: never)."""
        call = q.worker_next_due(self.window, self.keepalive)
        seconds: float | None = self._run(call)
        return seconds

    def listen(self) -> psycopg.Connection[Any] | None:
        """A connection LISTENing for wake-ups, once a notification of the worker's own has
        come back on it; None when none does (a transaction pooler hands the LISTEN's server
        connection to other clients, and its notifications go nowhere)."""
        listener = psycopg.connect(self.listen_conninfo, autocommit=True,
                                   application_name="hush-oauth-worker-listen")
        try:
            # The probe channel alone first: behind a pooler the LISTEN stays on a server
            # connection other clients then get, so the wake-up channel is added only once it works.
            probe = f"hush_oauth_probe_{secrets.token_hex(6)}"
            listener.execute(f"LISTEN {probe}")
            self._run(q.notify(probe))
            if any(n.channel == probe for n in listener.notifies(timeout=2.0, stop_after=1)):
                listener.execute(f"UNLISTEN {probe}; LISTEN {WAKEUP}")
                return listener
            listener.execute("UNLISTEN *")  # best effort: on whichever server connection it lands
        except BaseException:
            listener.close()
            raise
        listener.close()
        log.warning("wake-ups (NOTIFY %s) do not arrive over this connection (a transaction pooler such as "
                    "pgbouncer?): new connections are served at their due time or within %g s; give the worker a "
                    "direct DSN for LISTEN (--listen-dsn) to serve them at once", WAKEUP, self.interval)
        return None

    def run(self) -> None:
        """Rounds until stop(): when the next connection falls due (at most `interval` apart),
        and on NOTIFY hush_oauth_wakeup when notifications reach the worker (at most one round
        a second for those, however many come). Refreshes started in a round go on while the
        worker waits for the next."""
        listener = self.listen()
        self._serving = True
        try:
            log.info("started as %s: window %d s, batch %d, interval %g s, keepalive %s, wake-ups %s; %d at once "
                     "(%d per origin, %d per tenant), timeouts %g s to connect, %g s to read; %d database "
                     "connections%s, lock timeout %g s, statement timeout %g s", self.holder, self.window,
                     self.batch_size, self.interval, f"{self.keepalive} s" if self.keepalive else "off",
                     "on" if listener is not None else "off", self.concurrency, self.per_host, self.per_tenant,
                     self.connect_timeout, self.timeout, self.db_connections,
                     " + 1 listening" if listener is not None else "", self.db_lock_timeout,
                     self.db_statement_timeout)
            if 2 * self.per_tenant > self.concurrency:
                log.warning("per_tenant %d is more than half of concurrency %d: two tenants whose providers never "
                            "answer can hold every thread for a timeout", self.per_tenant, self.concurrency)
            while not self.stopping:
                began = time.monotonic()
                self.run_once()
                try:
                    due = self.next_due()
                except (HushError, psycopg.Error) as e:
                    if not transient(e):
                        raise
                    due = None  # the next round in `interval` at most, or at a wake-up
                # All that is due waits on stalled hosts, or is due and was not claimed (the claim
                # skips rows some transaction holds locked): look again, not at once.
                if self._fruitless or (self._empty and due == 0):
                    due = max(due or 0.0, PROBE_GAP)
                deadline = time.monotonic() + (self.interval if due is None else min(self.interval, due + 0.05))
                woken = False
                while not self.stopping and time.monotonic() < deadline:
                    # Short slices: a stop() is acted on within a quarter second, and leases that
                    # waited too long (or queue at a stalled host) go back meanwhile.
                    timeout = min(0.25, deadline - time.monotonic())
                    if listener is None or woken:
                        self._stop.wait(max(0.0, timeout))
                    elif list(listener.notifies(timeout=timeout, stop_after=1)):
                        woken, deadline = True, min(deadline, began + WAKEUP_GAP)
                    if self._dispatch is not None and self._dispatch.tick():  # given back: due again soon
                        deadline = min(deadline, time.monotonic() + PROBE_GAP)
                if listener is not None and woken:
                    for _ in listener.notifies(timeout=0, stop_after=100000):  # those that came meanwhile
                        pass
        finally:
            self._serving = False
            if listener is not None:
                listener.close()
            if self._dispatch is not None:
                self._finish(self._dispatch)
            self.close()
            log.info("stopped: %s", ", ".join(f"{k} {v}" for k, v in sorted(self._counts().items()))
                     or "nothing done")
