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

A refresh whose store failed for a reason another attempt may get past (its connection
row locked by another transaction: 55P03, which oauth_worker_finish returns for that row
rather than wait; the database restarting: _oauth_db.transient) waits here, holding no
thread and no database connection, and is stored again RETRY_DELAYS later, a few times:
the provider may already have rotated the refresh token it was sent. After the last
attempt it is given up (NotStored, logged without a token) and its lease runs out.
Done on its own, a refresh's store waits for no lock either (`run_one`), and one of a
tenant that could not take its lock sends the rest of that tenant's to their next
attempt unstored: a tenant holding many rows locked costs the others no wait.
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
from ._oauth_db import code_of, transient

log = logging.getLogger("hush.oauth_worker")
# Refreshes one statement stores at most (the database takes up to 1,000), and how long the
# first of them waits for others.
MOST = 200
LINGER = 0.05
# Tenants one statement stores for at most: each tenant's part is a privileged step whose
# writes are subtransactions of their own, and PostgreSQL caches 64 subtransaction ids per
# backend before every other backend's snapshots get slower.
TENANTS = 12
# Called on the storing thread once a refresh is stored (what was stored) or refused (why).
Done = Callable[[dict[str, Any] | None, BaseException | None], None]
# Seconds before each further attempt at a store that failed for a passing reason: 31 s in
# all, inside the default 60-s lease (whose token counts past lease_until all the same,
# until another claim takes the connection).
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
RETRY_SECONDS = sum(RETRY_DELAYS)


class NotStored(Exception):
    """A refresh whose result the database did not take after every attempt: its last
    failure (`error`, its SQLSTATE as `code`), never a token."""

    def __init__(self, error: BaseException, attempts: int) -> None:
        self.error = error
        self.attempts = attempts
        self.code = code_of(error)
        super().__init__(f"not stored after {attempts} attempts [{self.code}]")


class _Item:
    """A refresh on its way to the database: when it came, when it may be stored (later for
    another attempt), how many attempts failed, and the last failure."""

    __slots__ = ("refresh", "done", "came", "due", "tries", "error")

    def __init__(self, refresh: q.Refreshed, done: Done, came: float) -> None:
        self.refresh, self.done, self.came, self.due = refresh, done, came, came
        self.tries = 0
        self.error: BaseException | None = None

    def where(self) -> str:
        return f"tenant={self.refresh[0]} provider={self.refresh[1]} account={self.refresh[2]}"


class StoreQueue:
    """`run` executes one Call on hush's own connection (committed) and returns its result;
    `run_one`, the same for a refresh stored on its own (default: `run`)."""

    def __init__(self, run: Callable[[Call[Any]], Any], linger: float = LINGER, most: int = MOST,
                 run_one: Callable[[Call[Any]], Any] | None = None,
                 delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self._run = run
        self._run_one = run_one or run
        self.linger = linger
        self.most = most
        self.delays = delays
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._retrying = 0     # queued refreshes waiting for another attempt
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
            self._queue.append(_Item(refresh, done, time.monotonic()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="hush-oauth-worker-store", daemon=True)
                self._thread.start()
            # The storing thread may be asleep until a retry falls due: the first fresh one wakes it.
            if len(self._queue) - self._retrying == 1 or len(self._queue) >= self.most:
                self._cond.notify_all()

    def idle(self) -> bool:
        """Nothing queued, nothing being stored."""
        with self._cond:
            return not self._queue and not self._storing

    def drain(self, timeout: float) -> int:
        """Store what is queued now, waiting up to `timeout` seconds; returns how many refreshes
        are still queued (waiting for another attempt included) or being stored then."""
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
        """Store what is queued, then let the storing thread end: what still waits for another
        attempt then is given up (NotStored), its lease left to run out."""
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
                batch = self._next()
                if batch is None:  # closing: what waits for another attempt is given up
                    left, self._queue, self._retrying = self._queue, [], 0
                else:
                    self._storing = len(batch)
            if batch is None:
                for item in left:
                    self._tell(item, None, NotStored(item.error or HushError("not stored"), item.tries))
                return
            again: list[_Item] = []
            try:
                try:
                    results = self._store([item.refresh for item in batch])
                except Exception as e:  # a bug, not the database: the thread goes on serving
                    log.exception("storing %d refreshes failed unexpectedly", len(batch))
                    results = [(None, e)] * len(batch)
                for item, (stored, error) in zip(batch, results):
                    if error is not None and transient(error):
                        item.tries += 1
                        item.error = error
                        code = code_of(error)
                        if item.tries <= len(self.delays):
                            delay = self.delays[item.tries - 1]
                            item.due = time.monotonic() + delay
                            again.append(item)
                            (log.warning if item.tries == 1 else log.info)(
                                "not stored yet %s [%s]: trying again in %g s", item.where(), code, delay)
                            continue
                        error = NotStored(error, item.tries)
                    self._tell(item, stored, error)
            finally:
                with self._cond:
                    self._queue.extend(again)
                    self._retrying += len(again)
                    self._storing = 0
                    self._cond.notify_all()

    @staticmethod
    def _tell(item: _Item, stored: dict[str, Any] | None, error: BaseException | None) -> None:
        try:
            item.done(stored, error)
        except Exception:  # the worker's bookkeeping: a bug, not a refresh
            log.exception("recording a stored refresh failed")

    def _next(self) -> list[_Item] | None:
        """Under the lock: the next statement's refreshes, once one may be stored (the first
        lingers for others); None once closing leaves none that may be stored now."""
        while True:
            now = time.monotonic()
            if any(item.due <= now for item in self._queue):
                break
            if self._closing:
                return None
            self._cond.wait(min(item.due for item in self._queue) - now if self._queue else None)
        while len(self._queue) < self.most and not self._closing and not self._urgent:
            now = time.monotonic()
            oldest = min(item.came for item in self._queue if item.due <= now)
            left = oldest + self.linger - now  # the oldest waits no longer
            if left <= 0:
                break
            self._cond.wait(left)
        return self._take()

    def _take(self) -> list[_Item]:
        """The next statement's refreshes, oldest first, of those that may be stored now:
        `most` at most, of TENANTS tenants at most (the others keep their place)."""
        now = time.monotonic()
        batch: list[_Item] = []
        rest: list[_Item] = []
        tenants: set[str] = set()
        for item in self._queue:
            tenant = item.refresh[0]
            if item.due <= now and len(batch) < self.most and (tenant in tenants or len(tenants) < TENANTS):
                tenants.add(tenant)
                batch.append(item)
                self._retrying -= item.tries > 0
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
                        code_of(e))
            busy: dict[str, BaseException] = {}  # tenant -> its passing failure: its others wait for the retry
            for i, refresh in enumerate(batch):
                if refresh[0] in busy:
                    out[i] = (None, busy[refresh[0]])
                    continue
                try:
                    out[i] = (self._run_one(q.finish(*refresh)), None)
                except (HushError, psycopg.Error) as one:
                    out[i] = (None, one)
                    if transient(one):
                        busy[refresh[0]] = one
            return out
        for row in rows:
            i = row["item"] - 1
            if 0 <= i < len(batch):
                out[i] = ({c: row[c] for c in q.STORED_COLS}, None) if row["sqlstate"] is None else (
                    None, from_sqlstate(row["sqlstate"], row["message"]))
        return out
