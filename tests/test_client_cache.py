"""hush.CachedSecrets (Secrets.cached, issue 21): what a read-through cache may serve, tested
through its injectable clock, never by sleeping. Against the real server as non-superuser
roles: the cache reads as alice (or as a role granted one prefix), and alice changes values
over another connection. A value is served from the cache within ttl and read again after
it, whatever changes() says; with refresh_on_change, a change drops it once poll_interval
has passed. The last tests drive the cache's bookkeeping with a stand-in for Secrets, to
pin down a poll that lands while a read is on the wire."""
from __future__ import annotations

import asyncio
import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import hush
import hush.aio
from helpers import tenant_secrets
from hush import _cache
from hush._models import Secret, SecretChange

_roles = itertools.count()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


writer = tenant_secrets("alice")  # alice over a connection of her own: the application that changes values
reader = tenant_secrets("alice")  # alice over the connection the cache reads through


def reads(db: Any, name: str) -> int:
    """The audited reads of a name: how often a read reached the database."""
    return int(db.sql("SELECT count(*) FROM hush.audit_log WHERE secret_name = %s AND action = 'read'",
                      [name])[0][0])


def test_served_within_ttl_and_read_again_after_it(db: Any, clock: Clock, writer: hush.Secrets,
                                                   reader: hush.Secrets) -> None:
    writer.save("k", "one")
    cache = reader.cached(ttl=10, refresh_on_change=False, clock=clock)
    assert cache.get("k").value == "one" and reads(db, "k") == 1
    writer.save("k", "two")
    clock.advance(9.9)
    assert cache.get("k").value == "one"  # from the cache: no read, no audit row
    assert reads(db, "k") == 1
    clock.advance(0.1)  # ttl after the read began: not served any more
    assert cache.get("k").value == "two" and reads(db, "k") == 2


def test_a_change_drops_the_value_once_poll_interval_has_passed(db: Any, clock: Clock, writer: hush.Secrets,
                                                                reader: hush.Secrets) -> None:
    writer.save("k", "one")
    writer.save("other", "x")
    cache = reader.cached(ttl=300, poll_interval=1.0, clock=clock)
    assert cache.get("k").value == "one" and cache.get("other").value == "x"
    writer.save("k", "two")
    clock.advance(0.5)
    assert cache.get("k").value == "one"  # no poll due yet
    clock.advance(0.5)
    assert cache.get("k").value == "two"  # the poll saw the change
    assert cache.get("other").value == "x" and reads(db, "other") == 1  # an unchanged name stays cached
    writer.delete("k")
    clock.advance(1)
    with pytest.raises(hush.SecretNotFound):  # a delete is a change too
        cache.get("k")


def test_never_served_past_ttl_even_when_changes_say_nothing(db: Any, clock: Clock, writer: hush.Secrets,
                                                             reader: hush.Secrets) -> None:
    writer.save("k", "one")
    cache = reader.cached(ttl=5, poll_interval=1.0, clock=clock)
    assert cache.get("k").value == "one"
    with db.connect("rita", autocommit=False) as holder:
        # A transaction still running holds changes() back: the save after it stays out of the feed.
        holder.execute("SELECT pg_catalog.txid_current()")
        writer.save("k", "two")
        assert writer.changes(writer.changes()[-1].cursor) == []
        clock.advance(4.9)
        assert cache.get("k").value == "one"  # polled, nothing to see
        clock.advance(0.1)
        assert cache.get("k").value == "two"  # the ttl bound, whatever the feed says
        writer.save("k", "three")
        clock.advance(3)
        assert cache.get("k").value == "two"
        holder.rollback()
    clock.advance(1)  # 4 s after "two" was read: within ttl, so only the poll can drop it
    assert cache.get("k").value == "three"  # the horizon moved on: the poll sees both saves


def test_a_role_granted_one_prefix(db: Any, clock: Clock, writer: hush.Secrets) -> None:
    role = f"cache_{next(_roles)}_{db.name}"
    db.sql(f"CREATE ROLE {role} LOGIN IN ROLE hush_reader")
    try:
        db.sql("SELECT hush.grant(%s, 'acme', 'app/', ARRAY['read'])", [role], user="adam")
        writer.save("app/db", "one")
        writer.save("ops/root", "secret")
        with db.connect(role) as conn:
            cache = hush.Secrets(conn, "acme").cached(ttl=300, poll_interval=1, clock=clock)
            assert cache.get("app/db").value == "one"
            with pytest.raises(hush.SecretNotFound):  # outside the grant: as if it did not exist
                cache.get("ops/root")
            writer.save("ops/root", "secret2")
            writer.save("app/db", "two")
            clock.advance(1)
            assert cache.get("app/db").value == "two"
            assert [c.name for c in hush.Secrets(conn, "acme").changes()] == ["app/db", "app/db"]
    finally:
        db.sql(f"DROP ROLE {role}")


def test_get_many_stages_errors_and_expiry(db: Any, clock: Clock, writer: hush.Secrets,
                                           reader: hush.Secrets) -> None:
    writer.save("a", "a1")
    writer.save("b", "b1")
    writer.save("b", "b2", stage="pending")
    cache = reader.cached(ttl=60, refresh_on_change=False, clock=clock)
    assert cache.get("a").value == "a1"
    assert [s.value for s in cache.get_many(["b", "a", "b"])] == ["b1", "a1", "b1"]
    assert (reads(db, "a"), reads(db, "b")) == (1, 1)  # a from the cache, b read once
    assert cache.get("b", stage="pending").value == "b2"  # a stage is an entry of its own
    assert cache.get("b").value == "b1"
    with pytest.raises(hush.SecretNotFound):
        cache.get("c")
    writer.save("c", "c1")
    assert cache.get("c").value == "c1"  # errors are not cached
    soon = datetime.now(timezone.utc) + timedelta(seconds=30)
    writer.save("e", "e1", expires_at=soon)
    assert cache.get("e").value == "e1"
    clock.advance(29)
    assert cache.get("e").value == "e1" and reads(db, "e") == 1
    clock.advance(2)  # past expires_at by this machine's clock: not served from the cache
    cache.get("e")
    assert reads(db, "e") == 2
    cache.clear()
    cache.get("a")
    assert reads(db, "a") == 2


def test_the_first_poll_pages_to_the_end(db: Any, clock: Clock, writer: hush.Secrets, reader: hush.Secrets,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cache, "PAGE_ROWS", 2)
    for i in range(5):
        writer.save(f"s{i}", "v")
    cache = reader.cached(ttl=300, poll_interval=1, clock=clock)
    assert cache.get("s0").value == "v"
    writer.save("s0", "w")
    clock.advance(1)
    assert cache.get("s0").value == "w"


def test_over_the_pool_and_awaited(db: Any, clock: Clock, writer: hush.Secrets) -> None:
    writer.save("k", "one")
    with hush.connect(db.dsn("alice"), max_size=2) as client:
        cache = client.tenant("acme").cached(ttl=300, poll_interval=1, clock=clock)
        assert cache.get("k").value == "one"
        writer.save("k", "two")
        assert cache.get("k").value == "one"
        clock.advance(1)
        assert cache.get("k").value == "two"

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(db.dsn("alice"), autocommit=True) as conn:
            cache = hush.aio.AsyncSecrets(conn, "acme").cached(ttl=300, poll_interval=1, clock=clock)
            assert isinstance(cache, hush.aio.AsyncCachedSecrets)
            assert (await cache.get("k")).value == "two"
            writer.save("k", "three")
            assert (await cache.get("k")).value == "two"
            clock.advance(1)
            assert [s.value for s in await cache.get_many(["k"])] == ["three"]
    asyncio.run(run())


def test_behind_pgbouncer_from_threads(db: Any, pgbouncer: Any, clock: Clock, writer: hush.Secrets) -> None:
    """Transaction pooling: no LISTEN, each poll and read on whichever server connection."""
    for i in range(4):
        writer.save(f"k{i}", "one")
    with hush.connect(pgbouncer.dsn(db.name, "alice"), min_size=4, max_size=4) as client:
        cache = client.tenant("acme").cached(ttl=300, poll_interval=1, clock=clock)

        def read_all(expected: str) -> None:
            with ThreadPoolExecutor(4) as pool:
                got = list(pool.map(lambda i: cache.get(f"k{i % 4}").value, range(40)))
            assert got == [expected] * 40

        read_all("one")
        for i in range(4):
            writer.save(f"k{i}", "two")
        read_all("one")
        clock.advance(1)
        read_all("two")
    # 120 gets; reads only on the two rounds of misses, each name missed by at most all 4 threads at once.
    assert sum(reads(db, f"k{i}") for i in range(4)) <= 2 * 4 * 4


def test_bad_arguments(reader: hush.Secrets) -> None:
    for bad in ({"ttl": 0}, {"ttl": -1}, {"poll_interval": -1}):
        with pytest.raises(hush.InvalidArgument):
            reader.cached(**bad)


# -- the bookkeeping, with a stand-in for Secrets ---------------------------------------


class Stub:
    """Secrets as far as the cache uses it: values in a dict, changes in a list."""

    tenant = "acme"

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.feed: list[SecretChange] = []
        self.during_read: Any = None
        self.broken = False

    def change(self, name: str, value: str) -> None:
        self.values[name] = value
        self.feed.append(SecretChange(str(len(self.feed)), name, None, "new_version", datetime.now(timezone.utc)))

    def secret(self, name: str) -> Secret:
        now = datetime.now(timezone.utc)
        return Secret(uuid.UUID(int=0), "acme", name,
                      self.values[name], "generic", None, [], {}, 1, now, now, None, "current")

    def get(self, name: str, version: int | None = None, *, stage: str | None = None) -> Secret:
        found = self.secret(name)  # the value as the read's snapshot saw it
        if self.during_read is not None:
            hook, self.during_read = self.during_read, None
            hook()
        return found

    def get_many(self, names: list[str]) -> list[Secret]:
        return [self.get(n) for n in names]

    def changes_cursor(self) -> str:
        if self.broken:
            raise hush.DatabaseUnavailable("down")
        return str(len(self.feed) - 1)  # the present: after the last change

    def changes(self, since: str | None = None, *, max_rows: int = 1000) -> list[SecretChange]:
        if self.broken:
            raise hush.DatabaseUnavailable("down")
        start = 0 if since is None else int(since) + 1
        return self.feed[start:start + max_rows]


def test_a_poll_during_a_read_keeps_the_old_value_out(clock: Clock) -> None:
    stub = Stub()
    stub.change("a", "a1")
    stub.change("b", "b1")
    cache = _cache.CachedSecrets(stub, 300, poll_interval=1, clock=clock)  # type: ignore[arg-type]

    def meanwhile() -> None:
        # While a1 is on the wire: a changes, and another thread's get polls and sees it.
        stub.change("a", "a2")
        clock.advance(1)
        assert cache.get("b").value == "b1"

    stub.during_read = meanwhile
    assert cache.get("a").value == "a1"  # what the read saw, to its caller
    assert cache.get("a").value == "a2"  # but not kept: the poll had dropped the name


def test_a_failed_poll_serves_nothing_and_is_tried_again(clock: Clock) -> None:
    stub = Stub()
    stub.change("a", "a1")
    cache = _cache.CachedSecrets(stub, 300, poll_interval=1, clock=clock)  # type: ignore[arg-type]
    assert cache.get("a").value == "a1"
    stub.change("a", "a2")
    stub.broken = True
    clock.advance(1)
    with pytest.raises(hush.DatabaseUnavailable):
        cache.get("a")
    stub.broken = False
    assert cache.get("a").value == "a2"


def test_a_clear_during_a_read_keeps_what_it_read_out(clock: Clock) -> None:
    """clear() as an invalidation hook (on a NOTIFY, say): a read already on the wire brings
    a value from before it, which is returned to its caller but not kept."""
    stub = Stub()
    stub.change("a", "a1")
    cache = _cache.CachedSecrets(stub, 300, refresh_on_change=False, clock=clock)  # type: ignore[arg-type]

    def meanwhile() -> None:
        stub.change("a", "a2")
        cache.clear()

    stub.during_read = meanwhile
    assert cache.get("a").value == "a1"
    assert cache.get("a").value == "a2"
