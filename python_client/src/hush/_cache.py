"""hush.CachedSecrets (and hush.aio.AsyncCachedSecrets): a read-through cache of a tenant's
values, with a hard staleness bound and change polling that works behind transaction poolers.

The bookkeeping is in _CacheState, free of I/O, so the sync and async caches cannot differ in
what they serve; they differ only in how they wait (a threading.Lock, an asyncio.Lock).
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Sequence

from ._errors import InvalidArgument
from ._models import Secret, SecretChange

if TYPE_CHECKING:
    from ._secrets import Secrets
    from .aio import AsyncSecrets

Clock = Callable[[], float]
Key = tuple[str, str | None]  # (name, stage)

# Rows per hush.changes() call while catching up: the server's default page.
PAGE_ROWS = 1000


@dataclass(frozen=True, slots=True)
class _Entry:
    secret: Secret
    deadline: float  # on the cache's clock: not served at or after this


def _deadline(secret: Secret, started: float, ttl: float) -> float:
    """ttl after the read began, or the secret's expiry (by this machine's clock) if sooner:
    the server refuses a read after expires_at, and so must the cache."""
    deadline = started + ttl
    if secret.expires_at is not None:
        left = (secret.expires_at - datetime.now(timezone.utc)).total_seconds()
        deadline = min(deadline, started + left)
    return deadline


class _CacheState:
    """What is cached, the change cursor, and which names changed under reads in flight.

    A read runs outside the lock, so a poll may drop a name while a read of its old value
    is on the wire; `dropped` remembers the poll that did, and end_read() then does not
    store what that read brought back. It is emptied whenever no read is in flight."""

    def __init__(self, ttl: float, refresh_on_change: bool, poll_interval: float, clock: Clock) -> None:
        if not ttl > 0:
            raise InvalidArgument("ttl must be a number of seconds above 0")
        if not poll_interval >= 0:
            raise InvalidArgument("poll_interval must be a number of seconds, 0 or more")
        self.ttl = float(ttl)
        self.refresh_on_change = refresh_on_change
        self.poll_interval = float(poll_interval)
        self.clock = clock
        self.entries: dict[Key, _Entry] = {}
        self.cursor: str | None = None
        self.polled_at: float | None = None
        self.polls = 0
        self.dropped: dict[str, int] = {}
        self.reads = 0
        self.clears = 0  # clear() calls: a read in flight across one stores nothing

    def poll_due(self, now: float) -> bool:
        return self.refresh_on_change and (self.polled_at is None or now - self.polled_at >= self.poll_interval)

    def apply(self, page: Sequence[SecretChange]) -> None:
        """One page of changes: drop their names, then move the cursor past them (a poll that
        fails half way leaves the cursor at what was applied)."""
        names = {c.name for c in page}
        for key in [k for k in self.entries if k[0] in names]:
            del self.entries[key]
        if self.reads:
            self.dropped.update(dict.fromkeys(names, self.polls + 1))
        if page:
            self.cursor = page[-1].cursor

    def polled(self, started: float) -> None:
        self.polls += 1
        self.polled_at = started  # the poll's start: the next one is due poll_interval after it

    def hit(self, key: Key, now: float) -> Secret | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if now < entry.deadline:
            return entry.secret
        del self.entries[key]
        return None

    def hits(self, names: Sequence[str], now: float) -> tuple[dict[str, Secret], list[str]]:
        """get_many's lookup: the current values of `names` the cache may serve, and the names
        left to read (each once, in the order named)."""
        found = {n: s for n in names if (s := self.hit((n, None), now)) is not None}
        return found, list(dict.fromkeys(n for n in names if n not in found))

    def clear(self) -> None:
        self.entries.clear()
        self.clears += 1

    def begin_read(self) -> tuple[int, int]:
        self.reads += 1
        return self.polls, self.clears

    def end_read(self, before: tuple[int, int], started: float, secrets: Sequence[tuple[Key, Secret]]) -> None:
        polls_before, clears_before = before
        if self.clears != clears_before:  # cleared while it was read: what it brought may be older
            return
        for key, secret in secrets:
            if self.dropped.get(key[0], -1) <= polls_before:  # no poll dropped it while it was read
                self.entries[key] = _Entry(secret, _deadline(secret, started, self.ttl))

    def read_done(self) -> None:
        self.reads -= 1
        if not self.reads:
            self.dropped.clear()


_DOC = """

    Staleness bound: a value is never served more than `ttl` seconds after the read that
    fetched it began (on `clock`, time.monotonic by default), whatever the change polling
    says, nor after its expires_at by this machine's clock. With refresh_on_change (the
    default), each get first polls hush.changes() when the last poll began `poll_interval`
    seconds ago or more, and drops every cached value whose name changed: a change is then
    seen within poll_interval plus however long the oldest transaction running in the
    database holds changes() back (it lists only changes of finished transactions, so none
    is skipped), and never later than ttl. It polls, never LISTENs, so it works behind a
    transaction pooler such as pgbouncer; the role needs `list` on the names it caches
    (read implies it). The first poll, before anything is cached, takes a cursor at the
    present (hush.changes_cursor) rather than reading the tenant's change history.

    Reads are audited only when they reach the database: a value served from the cache
    leaves no audit row of its own (the read that fetched it has one). Errors are not
    cached, and a poll that fails raises rather than serve values it could not check.
    Thread-safe: hits wait only for a poll that is due; a miss reads outside the lock (two
    threads missing one name may both read it). Use it over a pool or an autocommit
    connection: in one long transaction, REPEATABLE READ would show no new change. With a
    read replica (hush.connect(read_dsn=...)), reads and polls go there, and its lag comes
    on top of the bound."""


class CachedSecrets:
    __doc__ = ("A read-through cache of one tenant's values, from Secrets.cached(ttl=...): get() and "
               "get_many() serve a value read less than `ttl` seconds ago, else read it through Secrets."
               + _DOC)

    def __init__(self, secrets: Secrets, ttl: float, *, refresh_on_change: bool = True, poll_interval: float = 1.0,
                 clock: Clock = time.monotonic) -> None:
        self.secrets = secrets
        self._state = _CacheState(ttl, refresh_on_change, poll_interval, clock)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        s = self._state
        return f"CachedSecrets(tenant={self.secrets.tenant!r}, ttl={s.ttl}, cached={len(s.entries)})"

    def get(self, name: str, *, stage: str | None = None) -> Secret:
        """The current value (or the version of `stage`, as Secrets.get), from the cache when
        it is fresh enough, else read (and audited) through Secrets.get."""
        key: Key = (name, stage)
        with self._lock:
            now = self._fresh()
            found = self._state.hit(key, now)
            if found is not None:
                return found
            before = self._state.begin_read()
        try:
            secret = self.secrets.get(name, stage=stage)
            with self._lock:
                self._state.end_read(before, now, [(key, secret)])
            return secret
        finally:
            with self._lock:
                self._state.read_done()

    def get_many(self, names: Sequence[str]) -> list[Secret]:
        """Several current values in the order named, those not cached in one Secrets.get_many
        (all or nothing, as it is)."""
        with self._lock:
            now = self._fresh()
            found, missing = self._state.hits(names, now)
            if not missing:
                return [found[n] for n in names]
            before = self._state.begin_read()
        try:
            read = self.secrets.get_many(missing)
            with self._lock:
                self._state.end_read(before, now, [((s.name, None), s) for s in read])
        finally:
            with self._lock:
                self._state.read_done()
        found.update((s.name, s) for s in read)
        return [found[n] for n in names]

    def clear(self) -> None:
        """Forget every cached value (the change cursor stays)."""
        with self._lock:
            self._state.clear()

    def _fresh(self) -> float:
        """The clock now, after the poll that was due (under the lock)."""
        state = self._state
        now = state.clock()
        if state.poll_due(now):
            if state.cursor is None:  # nothing cached yet: what came before is of no interest
                state.cursor = self.secrets.changes_cursor()
            while True:
                page = self.secrets.changes(state.cursor, max_rows=PAGE_ROWS)
                state.apply(page)
                if len(page) < PAGE_ROWS:
                    break
            state.polled(now)
        return now


class AsyncCachedSecrets:
    __doc__ = ("hush.CachedSecrets, awaited, from AsyncSecrets.cached(ttl=...): the same bound and "
               "polling; an asyncio.Lock in place of the thread lock (one event loop)." + _DOC)

    def __init__(self, secrets: AsyncSecrets, ttl: float, *, refresh_on_change: bool = True,
                 poll_interval: float = 1.0, clock: Clock = time.monotonic) -> None:
        self.secrets = secrets
        self._state = _CacheState(ttl, refresh_on_change, poll_interval, clock)
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        s = self._state
        return f"AsyncCachedSecrets(tenant={self.secrets.tenant!r}, ttl={s.ttl}, cached={len(s.entries)})"

    async def get(self, name: str, *, stage: str | None = None) -> Secret:
        key: Key = (name, stage)
        async with self._lock:
            now = await self._fresh()
            found = self._state.hit(key, now)
            if found is not None:
                return found
            before = self._state.begin_read()
        try:
            secret = await self.secrets.get(name, stage=stage)
            self._state.end_read(before, now, [(key, secret)])
            return secret
        finally:
            self._state.read_done()

    async def get_many(self, names: Sequence[str]) -> list[Secret]:
        async with self._lock:
            now = await self._fresh()
            found, missing = self._state.hits(names, now)
            if not missing:
                return [found[n] for n in names]
            before = self._state.begin_read()
        try:
            read = await self.secrets.get_many(missing)
            self._state.end_read(before, now, [((s.name, None), s) for s in read])
        finally:
            self._state.read_done()
        found.update((s.name, s) for s in read)
        return [found[n] for n in names]

    def clear(self) -> None:
        """Forget every cached value (the change cursor stays)."""
        self._state.clear()

    async def _fresh(self) -> float:
        state = self._state
        now = state.clock()
        if state.poll_due(now):
            if state.cursor is None:  # nothing cached yet: what came before is of no interest
                state.cursor = await self.secrets.changes_cursor()
            while True:
                page = await self.secrets.changes(state.cursor, max_rows=PAGE_ROWS)
                state.apply(page)
                if len(page) < PAGE_ROWS:
                    break
            state.polled(now)
        return now
