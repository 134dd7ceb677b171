"""The secret lifecycle from the Python client (issue 21), against the real server as
non-superuser roles: alice (hush_writer on acme) stages, promotes, rolls back and sets
retention and schedules; rita (hush_reader on acme) reads stages, what falls due, the
change feed and the reminders, and may not promote; adam (hush_admin) sets the tenant's
retention and expiry warning. Errors come back as hush's exception classes; the asyncio
twin runs the same calls."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import hush
import hush.aio
from helpers import tenant_secrets

alice = tenant_secrets("alice")
rita = tenant_secrets("rita")


def test_staged_rotation_promote_and_the_previous_stage(alice: hush.Secrets, rita: hush.Secrets) -> None:
    alice.save("db/pw", "one")
    staged = alice.save("db/pw", "two", stage="pending")
    assert staged.version == 2
    # Staging leaves the current value as it was, for every reader.
    assert (rita.get("db/pw").value, rita.get("db/pw").stage) == ("one", "current")
    pending = rita.get("db/pw", stage="pending")
    assert (pending.value, pending.version, pending.stage) == ("two", 2, "pending")
    assert rita.get_by_id(staged.id, stage="pending").value == "two"
    assert alice.list().data[0].pending_version == 2
    with pytest.raises(hush.VersionConflict):  # someone else's pending version: nothing changes
        alice.promote("db/pw", expected_version=1)
    assert rita.get("db/pw").value == "one"
    assert alice.promote("db/pw", expected_version=2).version == 2
    assert rita.get("db/pw").value == "two"
    previous = rita.get("db/pw", stage="previous")
    assert (previous.value, previous.version, previous.stage) == ("one", 1, "previous")
    assert [(v.version, v.stage, v.is_current) for v in rita.versions("db/pw")] == \
        [(1, "previous", False), (2, "current", True)]
    meta = rita.list().data[0]
    assert meta.pending_version is None and meta.rotated_at >= meta.created_at
    with pytest.raises(hush.VersionNotFound):  # nothing pending any more
        alice.promote("db/pw")
    with pytest.raises(hush.VersionNotFound):
        rita.get("db/pw", stage="pending")


def test_update_stages_too_and_a_direct_save_supersedes_the_pending_version(alice: hush.Secrets) -> None:
    alice.save("k", "one")
    assert alice.update("k", "two", stage="pending").version == 2
    assert alice.update_by_id(alice.get("k").id, "three", stage="pending").version == 3
    assert alice.save("k", "four").version == 4  # a direct save: current, and nothing pending
    assert alice.get("k").value == "four" and alice.get("k", stage="previous").value == "one"
    with pytest.raises(hush.VersionNotFound):
        alice.get("k", stage="pending")


def test_rollback_is_check_and_set_and_makes_a_new_version(alice: hush.Secrets, rita: hush.Secrets) -> None:
    alice.save("api", "good")
    alice.save("api", "bad")
    with pytest.raises(hush.VersionConflict):
        alice.rollback("api", 1, expected_version=1)
    assert rita.get("api").value == "bad"
    back = alice.rollback("api", 1, expected_version=2)
    assert back.version == 3
    assert (rita.get("api").value, rita.get("api", stage="previous").value) == ("good", "bad")
    with pytest.raises(hush.VersionNotFound):
        alice.rollback("api", 9)
    alice.destroy("api", [1])
    with pytest.raises(hush.VersionDestroyed):
        alice.rollback("api", 1)
    with pytest.raises(hush.PermissionDenied):  # a reader may not roll back, nor promote
        rita.rollback("api", 2)
    with pytest.raises(hush.PermissionDenied):
        rita.promote("api")
    assert rita.get("api").version == 3


def test_bad_lifecycle_arguments_fail_before_or_at_the_server_and_write_nothing(alice: hush.Secrets) -> None:
    alice.save("x", "v")
    with pytest.raises(hush.InvalidArgument, match="timedelta"):
        alice.save("y", "v", rotate_every="30d")  # type: ignore[arg-type]
    with pytest.raises(hush.InvalidArgument, match="max_versions"):
        alice.save("y", "v", max_versions="3")  # type: ignore[arg-type]
    with pytest.raises(hush.InvalidArgument):
        alice.save("y", "v", stage="later")
    with pytest.raises(hush.InvalidArgument):
        alice.save("y", "v", rotate_every=timedelta(days=-1))
    with pytest.raises(hush.InvalidArgument):
        alice.save("y", "v", max_versions=10_001)
    with pytest.raises(hush.InvalidArgument):
        alice.get("x", stage="next")
    with pytest.raises(hush.InvalidArgument):
        alice.get("x", 1, stage="current")
    with pytest.raises(hush.SecretNotFound):  # a pending value needs a secret to stage it on
        alice.save("y", "v", stage="pending")
    assert not alice.exists("y") and [v.version for v in alice.versions("x")] == [1]


def test_retention_and_schedule_on_the_secret(alice: hush.Secrets) -> None:
    alice.save("r", "v1", max_versions=2, rotate_every=timedelta(days=30),
               destroy_versions_after=timedelta(days=365))
    for value in ("v2", "v3", "v4"):
        alice.save("r", value)
    meta = alice.list().data[0]
    assert (meta.max_versions, meta.rotate_every, meta.destroy_versions_after) == \
        (2, timedelta(days=30), timedelta(days=365))
    # The newest two and the previous one stay; older ones are destroyed, metadata kept.
    assert [(v.version, v.destroyed) for v in alice.versions("r")] == \
        [(1, True), (2, True), (3, False), (4, False)]
    with pytest.raises(hush.VersionDestroyed):
        alice.get("r", 1)
    alice.update("r", max_versions=0, rotate_every=timedelta(0))  # back to the tenant's; no schedule
    meta = alice.list().data[0]
    assert (meta.max_versions, meta.rotate_every) == (None, None)


def test_due_through_its_at_argument(alice: hush.Secrets, rita: hush.Secrets) -> None:
    alice.save("rot", "v", rotate_every=timedelta(days=30))
    rotated = alice.list(prefix="rot").data[0].rotated_at
    expires = rotated + timedelta(days=10)
    alice.save("exp", "v", expires_at=expires)
    day = timedelta(days=1)
    assert rita.due(day, at=rotated) == []
    soon = rita.due(day, at=expires - timedelta(hours=12))
    assert [(d.name, d.reason, d.due_at, d.overdue) for d in soon] == [("exp", "expiring", expires, False)]
    late = rita.due(day, at=rotated + timedelta(days=30))
    assert [(d.name, d.reason, d.overdue) for d in late] == \
        [("exp", "expired", True), ("rot", "rotation_overdue", True)]
    rot = late[1]
    assert (rot.due_at, rot.rotate_every, rot.rotated_at, rot.version, rot.pending_version) == \
        (rotated + timedelta(days=30), timedelta(days=30), rotated, 1, None)
    assert [d.reason for d in rita.due(timedelta(days=2), at=rotated + timedelta(days=29))] == \
        ["expired", "rotation_due"]
    # Now, with the tenant's 14 days: the expiry 10 days off, not the rotation 30 days off.
    assert [(d.name, d.reason) for d in rita.due()] == [("exp", "expiring")]
    with pytest.raises(hush.InvalidArgument):
        rita.due("1 day")  # type: ignore[arg-type]


def test_tenant_settings_from_the_client(db: Any, alice: hush.Secrets) -> None:
    with db.connect("adam") as conn:
        tenants = hush.Tenants(conn)
        settings = tenants.configure("acme", max_versions=2, destroy_versions_after=timedelta(days=90),
                                     expiry_warning=timedelta(days=30))
        assert (settings.max_versions, settings.destroy_versions_after, settings.expiry_warning) == \
            (2, timedelta(days=90), timedelta(days=30))
        assert tenants.configure("acme").max_versions == 2  # None keeps
        with pytest.raises(hush.InvalidArgument):
            tenants.configure("acme", expiry_warning=timedelta(days=11 * 366))
    alice.save("t", "v", expires_at=datetime.now(timezone.utc) + timedelta(days=20))
    assert [d.reason for d in alice.due()] == ["expiring"]  # the tenant's 30 days
    for value in ("v2", "v3", "v4"):
        alice.save("t", value)
    assert [v.destroyed for v in alice.versions("t")] == [True, True, False, False]  # previous (3) kept
    with hush.connect(db.dsn("adam"), max_size=1) as client:
        assert client.configure_tenant("acme", max_versions=0).max_versions == 0


def test_changes_page_by_cursor_and_rita_sees_alices_changes(alice: hush.Secrets, rita: hush.Secrets) -> None:
    alice.save("a", "1")
    alice.save("b", "1")
    alice.save("a", "2", stage="pending")
    alice.promote("a")
    alice.delete("b")
    feed = rita.changes()
    assert [(c.name, c.version, c.change) for c in feed] == \
        [("a", 1, "create"), ("b", 1, "create"), ("a", 2, "pending_version"), ("a", 2, "promote"),
         ("b", 1, "delete")]
    first = rita.changes(max_rows=2)
    assert [c.name for c in first] == ["a", "b"]
    rest = rita.changes(first[-1].cursor)
    assert [c.change for c in rest] == [c.change for c in feed[2:]]
    assert rita.changes(feed[-1].cursor) == []
    with pytest.raises(hush.InvalidArgument):
        rita.changes("not a cursor")
    channel = rita.change_channel()
    assert channel.startswith("hush_changes_") and alice.change_channel() == channel


def test_reminders_the_maintenance_job_wrote(db: Any, alice: hush.Secrets, rita: hush.Secrets) -> None:
    alice.save("soon", "v", expires_at=datetime.now(timezone.utc) + timedelta(days=2))
    assert rita.events() == []
    db.sql("SELECT * FROM hush.maintain_secrets()", user="adam")
    events = rita.events()
    assert [(e.name, e.event) for e in events] == [("soon", "expiring")]
    assert isinstance(events[0], hush.SecretEvent) and events[0].due_at > events[0].at
    assert rita.events(events[0].at + timedelta(seconds=1)) == []
    assert len(rita.events(max_rows=1)) == 1


def test_the_async_twin(db: Any) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(db.dsn("alice"), autocommit=True) as conn:
            acme = hush.aio.AsyncSecrets(conn, "acme")
            await acme.save("k", "one", rotate_every=timedelta(days=7))
            assert (await acme.save("k", "two", stage="pending")).version == 2
            assert (await acme.get("k", stage="pending")).value == "two"
            assert (await acme.promote("k", expected_version=2)).version == 2
            assert (await acme.rollback("k", 1, expected_version=2)).version == 3
            assert (await acme.get("k")).value == "one"
            rotated = (await acme.list()).data[0].rotated_at
            assert [d.reason for d in await acme.due(timedelta(0), at=rotated + timedelta(days=7))] == \
                ["rotation_overdue"]
            assert [c.change for c in await acme.changes()][-1] == "rollback"
            assert (await acme.change_channel()).startswith("hush_changes_")
            assert await acme.events() == []
            cache = acme.cached(ttl=30)
            assert (await cache.get("k")).value == "one"
            assert [s.value for s in await cache.get_many(["k"])] == ["one"]
    asyncio.run(run())
