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

This module holds the rounds; the worker's settings and database side are in
_oauth_worker_base.py, its work on one connection in _oauth_worker_jobs.py.
"""
from __future__ import annotations

import secrets
import time
from collections import Counter
from typing import Any

import psycopg

from . import _oauth_calls as q
from ._errors import HushError
from ._oauth_batch import RETRY_SECONDS
from ._oauth_db import code_of, transient
from ._oauth_dispatch import Dispatch
from ._oauth_worker_base import STORE_SECONDS, WorkerBase, log
from ._oauth_worker_jobs import Jobs, _origin as _origin

WAKEUP = "hush_oauth_wakeup"
# Any role may NOTIFY on any channel: however many wake-ups come, a round starts at most
# this many seconds after the one before (hush itself sends at most one a half second).
WAKEUP_GAP = 1.0


# A host (or tenant) whose slots are all taken, one by a request older than this (or half
# the read timeout, if less), is stalled: its surplus goes back rather than waiting on hand
# (_oauth_dispatch.py). Healthy providers answer a refresh well within it; one taken for
# stalled by mistake only has connections given back and claimed again.
STALL_AFTER = 2.0
# After a round whose every claimed connection went back (all of them wait on stalled hosts),
# the next claims at most this often: often enough that a connection of another tenant
# falling due meanwhile waits less than any request timeout.
PROBE_GAP = 1.0


class OAuthWorker(Jobs):
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

    # The public members, named here in the order the reference lists them: tools/pydoc_md.py
    # reads a class's own members.
    stop = WorkerBase.stop
    stopping = WorkerBase.stopping
    close = WorkerBase.close
    claim = WorkerBase.claim
    lease = WorkerBase.lease
    refresh_one = Jobs.refresh_one

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
