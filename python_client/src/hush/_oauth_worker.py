"""hush oauth-worker: refreshes OAuth tokens before they expire.

Each round leases a batch of due connections across the tenants the worker's
role is granted (hush.oauth_worker_claim: one committed UPDATE, SKIP LOCKED,
so several workers take different rows), then refreshes them one by one with
no transaction open during HTTP, through the same lease as on-demand callers
(hush.OAuth.access_token): a connection is never refreshed twice at once.
Failures back off per connection (the provider's Retry-After when it sends
one), invalid_grant marks it needs_reauth; the database records the events.

Between rounds the worker sleeps until the next connection it serves falls
due (hush.oauth_worker_next_due), or `interval` seconds if that is sooner, and
wakes when hush.oauth_store_tokens announces a new connection (NOTIFY
hush_oauth_wakeup, no payload), whose tokens may fall due before then: at once,
or a second after the previous round at the soonest, since any role may NOTIFY
on the channel (and hush sends one a half second at most). Behind a
transaction pooler (pgbouncer) notifications do not arrive: the worker finds out
at start (it notifies itself on a channel of its own), says so in its log, and
keeps to the due times; `listen_conninfo`, a direct DSN, brings them back. On stop()
(SIGTERM in the CLI) it finishes the refresh in flight, gives back the leases
it has not used, and returns. Log lines name tenant, provider and account,
never a token.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter
from typing import Any

import psycopg

from . import _oauth_calls as q
from ._errors import HushError, OAuthError, ProviderUnavailable, ReauthorizationRequired
from ._exec import PsycopgExecutor
from ._oauth import OAuth

log = logging.getLogger("hush.oauth_worker")
WAKEUP = "hush_oauth_wakeup"
# Any role may NOTIFY on any channel: however many wake-ups come, a round starts at most
# this many seconds after the one before (hush itself sends at most one a half second).
WAKEUP_GAP = 1.0


class OAuthWorker:
    """Keeps the tokens of every connection it serves fresh. `window`: refresh what expires
    within this many seconds; `keepalive`: also refresh connections idle this long (providers
    that revoke unused refresh tokens), None = never; `interval`: seconds between rounds."""

    def __init__(self, conninfo: str, *, window: int = 900, batch_size: int = 100, interval: float = 30.0,
                 lease_seconds: int = 60, keepalive: int | None = None, timeout: float = 10.0,
                 listen_conninfo: str | None = None) -> None:
        self.conninfo = conninfo
        self.listen_conninfo = listen_conninfo or conninfo
        self.window = window
        self.batch_size = batch_size
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.keepalive = keepalive
        self.timeout = timeout
        self.holder = f"worker:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stats: Counter[str] = Counter()
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None

    def stop(self) -> None:
        """Finish the refresh in flight, give back the other leases, return from run()."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True, application_name="hush-oauth-worker")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _oauth(self, tenant: str) -> OAuth:
        conn = self._connection()
        # One attempt per round: a failure backs off in the database, not in this loop.
        return OAuth(conn, tenant, writer=conn, lease_seconds=self.lease_seconds, timeout=self.timeout, retries=1)

    def claim(self) -> list[dict[str, Any]]:
        call = q.worker_claim(self.holder, self.batch_size, self.window, self.lease_seconds, self.keepalive)
        batch: list[dict[str, Any]] = PsycopgExecutor(self._connection()).run([call])[0]
        return batch

    def refresh_one(self, item: dict[str, Any]) -> str:
        """Refresh one leased connection; returns what happened (the log line's verb)."""
        where = f"tenant={item['tenant_id']} provider={item['provider']} account={item['account']}"
        oa = self._oauth(item["tenant_id"])
        try:
            tokens = oa.refresh_leased(item["provider"], item["account"], self.holder, item["generation"])
        except ReauthorizationRequired:
            outcome = "needs_reauth"
            log.warning("needs_reauth %s: the provider refused the refresh token", where)
        except ProviderUnavailable as e:
            outcome = "deferred"
            log.warning("deferred %s: %s%s", where, e.message,
                        f"; Retry-After {e.retry_after} s" if e.retry_after is not None else "")
        except OAuthError as e:
            outcome = "failed"
            log.warning("failed %s: %s", where, e.message)
        except HushError as e:  # e.g. the provider was removed meanwhile
            outcome = "skipped"
            log.warning("skipped %s: %s [%s]", where, e.message, e.code)
        else:
            if tokens is None:
                outcome = "skipped"
                log.info("skipped %s: refreshed by another caller meanwhile", where)
            else:
                outcome = "refreshed"
                log.info("refreshed %s expires_at=%s", where,
                         tokens.expires_at.isoformat() if tokens.expires_at else "never")
        self.stats[outcome] += 1
        return outcome

    def run_batch(self) -> int:
        """Claim one batch and work it; returns how many were claimed."""
        batch = self.claim()
        for i, item in enumerate(batch):
            if self.stopping:  # what is left goes back at once, not when its lease expires
                for rest in batch[i:]:
                    self._oauth(rest["tenant_id"]).release_lease(rest["provider"], rest["account"], self.holder,
                                                                 rest["generation"])
                    self.stats["released"] += 1
                log.info("stopping: gave back %d leases", len(batch) - i)
                break
            self.refresh_one(item)
        return len(batch)

    def run_once(self) -> Counter[str]:
        """Work batches until nothing is due (or stop()); returns the counts of this run."""
        before = Counter(self.stats)
        while not self.stopping and self.run_batch() == self.batch_size:
            pass
        done = self.stats - before
        if done:
            log.info("round: %s", ", ".join(f"{k} {v}" for k, v in sorted(done.items())))
        return done

    def next_due(self) -> float | None:
        """Seconds until a connection this worker serves falls due (0: now; None: never)."""
        call = q.worker_next_due(self.window, self.keepalive)
        seconds: float | None = PsycopgExecutor(self._connection()).run([call])[0]
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
            PsycopgExecutor(self._connection()).run([q.notify(probe)])
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
        a second for those, however many come)."""
        listener = self.listen()
        try:
            log.info("started as %s: window %d s, batch %d, interval %g s, keepalive %s, wake-ups %s", self.holder,
                     self.window, self.batch_size, self.interval, f"{self.keepalive} s" if self.keepalive else "off",
                     "on" if listener is not None else "off")
            while not self.stopping:
                began = time.monotonic()
                self.run_once()
                due = self.next_due()
                deadline = time.monotonic() + (self.interval if due is None else min(self.interval, due + 0.05))
                woken = False
                while not self.stopping and time.monotonic() < deadline:
                    # Short slices, so a stop() is seen within a second.
                    timeout = min(1.0, deadline - time.monotonic())
                    if listener is None or woken:
                        time.sleep(max(0.0, timeout))
                    elif list(listener.notifies(timeout=timeout, stop_after=1)):
                        woken, deadline = True, min(deadline, began + WAKEUP_GAP)
                if listener is not None and woken:
                    for _ in listener.notifies(timeout=0, stop_after=100000):  # those that came meanwhile
                        pass
        finally:
            if listener is not None:
                listener.close()
            self.close()
            log.info("stopped: %s", ", ".join(f"{k} {v}" for k, v in sorted(self.stats.items())) or "nothing done")
