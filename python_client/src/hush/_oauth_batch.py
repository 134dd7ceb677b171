"""The OAuth worker's stores of refreshed tokens, by the batch (hush.oauth_worker_finish).

A refresh the provider has answered is handed to one storing thread, and the thread
that sent it goes on to the next request. The storing thread waits `linger` seconds
after the oldest response for others to come (or until it holds `most`), then stores
them in one statement, one commit (those of TENANTS tenants at most); responses that
arrive meanwhile go in the next. Measured on the loopback bench, a statement per
refresh cost the worker more than its request did; a batch costs about one statement.

The database checks each refresh as oauth_finish_refresh checks one (its lease token,
its generation) and writes its audit row: one refused (OAuthLeaseLost, SH075: its
lease was taken over once it ran out) is reported for itself, the others are stored.
Should a statement fail as a whole (the database restarting, a deadlock), each of its
refreshes is stored on its own (oauth_finish_refresh), so that none costs the others
their tokens: the provider may already have spent the refresh tokens presented.
Responses wait here `linger` seconds at most before their store begins; a process that
dies meanwhile loses them, as it would one whose store had not begun.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import psycopg

from . import _oauth_calls as q
from ._calls import Call
from ._errors import HushError, from_sqlstate

log = logging.getLogger("hush.oauth_worker")
# Refreshes one statement stores at most (the database takes up to 1,000), and how long the
# first of them waits for others.
MOST = 200
LINGER = 0.05
# Tenants one statement stores for at most: each tenant's part is a privileged step whose
# writes are subtransactions of their own, and PostgreSQL caches 64 subtransaction ids per
# backend before every other backend's snapshots get slower (DESIGN.md section 10).
TENANTS = 12
# Called on the storing thread once a refresh is stored (what was stored) or refused (why).
Done = Callable[[dict[str, Any] | None, BaseException | None], None]


class StoreQueue:
    """`run` executes one Call on hush's own connection (committed) and returns its result."""

    def __init__(self, run: Callable[[Call[Any]], Any], linger: float = LINGER, most: int = MOST) -> None:
        self._run = run
        self.linger = linger
        self.most = most
        self._cond = threading.Condition()
        self._queue: list[tuple[q.Refreshed, Done, float]] = []  # with when each came
        self._storing = 0      # refreshes being stored now
        self._urgent = 0       # callers of drain() waiting: no lingering meanwhile
        self._closing = False
        self._thread: threading.Thread | None = None

    def put(self, refresh: q.Refreshed, done: Done) -> None:
        """Store a refresh (tenant, provider, account, lease token, generation, response) soon;
        `done` is told how it went. Never blocks on the database."""
        with self._cond:
            if self._closing:
                raise RuntimeError("the worker's store queue is closed")
            self._queue.append((refresh, done, time.monotonic()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="hush-oauth-worker-store", daemon=True)
                self._thread.start()
            if len(self._queue) == 1 or len(self._queue) >= self.most:
                self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing queued, nothing being stored."""
        with self._cond:
            return not self._queue and not self._storing

    def drain(self, timeout: float) -> int:
        """Store what is queued now, waiting up to `timeout` seconds; returns how many refreshes
        are still queued or being stored then."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                while (self._queue or self._storing) and time.monotonic() < deadline:
                    self._cond.wait(min(0.25, max(0.0, deadline - time.monotonic())))
                return len(self._queue) + self._storing
            finally:
                self._urgent -= 1

    def close(self, timeout: float = 10.0) -> None:
        """Store what is queued, then let the storing thread end."""
        self.drain(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                while len(self._queue) < self.most and not self._closing and not self._urgent:
                    left = self._queue[0][2] + self.linger - time.monotonic()  # the oldest waits no longer
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._take()
                self._storing = len(batch)
            try:
                try:
                    results = self._store([refresh for refresh, _, _ in batch])
                except Exception as e:  # a bug, not the database: the thread goes on serving
                    log.exception("storing %d refreshes failed unexpectedly", len(batch))
                    results = [(None, e)] * len(batch)
                for (_, done, _), (stored, error) in zip(batch, results):
                    try:
                        done(stored, error)
                    except Exception:  # the worker's bookkeeping: a bug, not a refresh
                        log.exception("recording a stored refresh failed")
            finally:
                with self._cond:
                    self._storing = 0
                    self._cond.notify_all()

    def _take(self) -> list[tuple[q.Refreshed, Done, float]]:
        """The next statement's refreshes, oldest first: `most` at most, of TENANTS tenants at
        most (the others keep their place)."""
        batch: list[tuple[q.Refreshed, Done, float]] = []
        rest: list[tuple[q.Refreshed, Done, float]] = []
        tenants: set[str] = set()
        for item in self._queue:
            tenant = item[0][0]
            if len(batch) < self.most and (tenant in tenants or len(tenants) < TENANTS):
                tenants.add(tenant)
                batch.append(item)
            else:
                rest.append(item)
        self._queue = rest
        return batch

    def _store(self, batch: list[q.Refreshed]) -> list[tuple[dict[str, Any] | None, BaseException | None]]:
        out: list[tuple[dict[str, Any] | None, BaseException | None]] = [
            (None, HushError("the refresh's result was not stored"))] * len(batch)
        try:
            rows = self._run(q.worker_finish(batch))
        except (HushError, psycopg.Error) as e:
            log.warning("storing %d refreshes in one statement failed (%s); storing each on its own", len(batch),
                        getattr(e, "sqlstate", None) or type(e).__name__)
            for i, refresh in enumerate(batch):
                try:
                    out[i] = (self._run(q.finish(*refresh)), None)
                except (HushError, psycopg.Error) as one:
                    out[i] = (None, one)
            return out
        for row in rows:
            i = row["item"] - 1
            if 0 <= i < len(batch):
                out[i] = ({c: row[c] for c in q.STORED_COLS}, None) if row["sqlstate"] is None else (
                    None, from_sqlstate(row["sqlstate"], row["message"]))
        return out
