"""hush.due_for_rotation (issue 21): what falls due as of a given time. Rotations fall due
at rotated_at + rotate_every ('rotation_overdue' from then on, 'rotation_due' within the
window before), expiries at expires_at ('expired', 'expiring'). The window is `within`,
else the tenant's expiry_warning (14 days by default). Boundaries are tested through the
`at` argument alone: the function has no other clock. Non-superuser roles; the superuser
only reads the stored rotated_at.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import psycopg
import pytest

from helpers import imported, module_roles, owner_plan, raises_sqlstate, rows, save

US = timedelta(microseconds=1)
EXPIRY = datetime(2031, 1, 1, tzinfo=timezone.utc)
ROLES = {"due_app": "LOGIN IN ROLE hush_reader", "due_db": "LOGIN IN ROLE hush_reader",
         "due_auditor": "LOGIN IN ROLE hush_reader"}


people = module_roles(ROLES)


def connect(db: Any, user: str) -> psycopg.Connection:
    # Days in UTC are 24 hours: the boundaries below are computed in Python.
    return db.connect(user, options="-c TimeZone=UTC")


@pytest.fixture
def alice(db: Any) -> Iterator[psycopg.Connection]:
    with connect(db, "alice") as conn:
        yield conn


def due(conn: psycopg.Connection, at: Any, within: Any = None, tenant: str = "acme") -> list[dict]:
    return rows(conn, "SELECT * FROM hush.due_for_rotation(%s, within => %s::interval, at => %s)",
                [tenant, within, at])


def reasons(conn: psycopg.Connection, at: Any, within: Any = None, tenant: str = "acme") -> list[tuple]:
    return [(r["name"], r["reason"]) for r in due(conn, at, within, tenant)]


def rotated_at(db: Any, name: str) -> datetime:
    return db.sql("SELECT rotated_at FROM hush.secrets WHERE tenant_id = 'acme' AND name = %s", [name])[0][0]


def test_rotation_boundaries(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "app/db", "pw", rotate_every="30 days")
    due_at = rotated_at(db, "app/db") + timedelta(days=30)
    with connect(db, "rita") as rita:
        [row] = due(rita, due_at, "3 days")
        assert row == {"name": "app/db", "reason": "rotation_overdue", "due_at": due_at,
                       "rotate_every": timedelta(days=30), "rotated_at": rotated_at(db, "app/db"),
                       "expires_at": None, "version": 1, "pending_version": None}
        assert reasons(rita, due_at + timedelta(days=400), "3 days") == [("app/db", "rotation_overdue")]
        assert reasons(rita, due_at - US, "3 days") == [("app/db", "rotation_due")]
        assert reasons(rita, due_at - timedelta(days=3), "3 days") == [("app/db", "rotation_due")]
        assert reasons(rita, due_at - timedelta(days=3) - US, "3 days") == []
        # A window of nothing: only what is already due.
        assert reasons(rita, due_at - US, "0") == []
        assert reasons(rita, due_at, "0") == [("app/db", "rotation_overdue")]


def test_expiry_boundaries(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "app/cert", "pem", expires_at=EXPIRY)
    with connect(db, "rita") as rita:
        [row] = due(rita, EXPIRY, "1 day")
        assert (row["reason"], row["due_at"], row["expires_at"], row["rotate_every"]) == \
            ("expired", EXPIRY, EXPIRY, None)
        assert reasons(rita, EXPIRY - US, "1 day") == [("app/cert", "expiring")]
        assert reasons(rita, EXPIRY - timedelta(days=1), "1 day") == [("app/cert", "expiring")]
        assert reasons(rita, EXPIRY - timedelta(days=1) - US, "1 day") == []
        # The same arguments, the same answer: nothing but `at` tells the time.
        assert due(rita, EXPIRY - US, "1 day") == due(rita, EXPIRY - US, "1 day")


def test_rows_are_ordered_by_due_at_then_name(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "b", "x", expires_at=EXPIRY)
    save(alice, "acme", "a", "x", expires_at=EXPIRY)
    save(alice, "acme", "c", "x", expires_at=EXPIRY - timedelta(hours=1), rotate_every="1 hour")
    save(alice, "acme", "plain", "x")  # no schedule, no expiry: never due
    c_due = rotated_at(db, "c") + timedelta(hours=1)
    got = due(alice, EXPIRY - timedelta(hours=2), "3 hours")
    assert [(r["name"], r["reason"], r["due_at"]) for r in got] == [
        ("c", "rotation_overdue", c_due), ("c", "expiring", EXPIRY - timedelta(hours=1)),
        ("a", "expiring", EXPIRY), ("b", "expiring", EXPIRY)]


def test_within_defaults_to_the_tenant_expiry_warning(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "app/cert", "pem", expires_at=EXPIRY)
    with connect(db, "rita") as rita:
        # No setting: 14 days.
        assert reasons(rita, EXPIRY - timedelta(days=14)) == [("app/cert", "expiring")]
        assert reasons(rita, EXPIRY - timedelta(days=14) - US) == []
        with connect(db, "adam") as adam:
            adam.execute("SELECT hush.configure_tenant('acme', expiry_warning => '2 days')")
        assert reasons(rita, EXPIRY - timedelta(days=2)) == [("app/cert", "expiring")]
        assert reasons(rita, EXPIRY - timedelta(days=2) - US) == []
        # Omitted is NULL; an explicit window still wins.
        assert rows(rita, "SELECT name FROM hush.due_for_rotation('acme', at => %s)",
                    [EXPIRY - timedelta(days=2)]) == [{"name": "app/cert"}]
        assert reasons(rita, EXPIRY - timedelta(days=14), "14 days") == [("app/cert", "expiring")]


def test_bad_arguments(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "app/cert", "pem", expires_at=EXPIRY)
    for within in ("-1 second", "-1 day", "1 day -49 hours", "101 years"):
        with raises_sqlstate("SH004"):
            due(alice, EXPIRY, within)
    with raises_sqlstate("SH004"):
        alice.execute("SELECT * FROM hush.due_for_rotation('acme', '1 day', NULL)")
    # `at` defaults to now(): the expiry in 2031 is not within a day of it.
    assert rows(alice, "SELECT * FROM hush.due_for_rotation('acme', '1 day')") == []


def test_grants_decide_which_names_show(db: Any, alice: psycopg.Connection, people: None) -> None:
    for name in ("app/a", "app/b", "db/x", "appx"):
        save(alice, "acme", name, "v", expires_at=EXPIRY)
    for role, prefix, caps in (("due_app", "app/", ["list"]), ("due_db", "db/", ["read"]),
                               ("due_auditor", "", ["audit"])):
        db.sql("SELECT hush.grant(%s, 'acme', %s, %s::text[])", [role, prefix, caps], user="adam")
    at = EXPIRY - US
    assert [n for n, _ in reasons(alice, at, "1 day")] == ["app/a", "app/b", "appx", "db/x"]
    with connect(db, "due_app") as c:
        assert [n for n, _ in reasons(c, at, "1 day")] == ["app/a", "app/b"]
    with connect(db, "due_db") as c:
        assert [n for n, _ in reasons(c, at, "1 day")] == ["db/x"]
    with connect(db, "due_auditor") as c:  # may read the trail, may not list names
        assert reasons(c, at, "1 day") == []
    with connect(db, "otto") as c:  # no hush role
        with raises_sqlstate("42501"):
            due(c, at, "1 day")
    with connect(db, "mallory") as c:  # another tenant's writer
        with raises_sqlstate("SH020"):
            due(c, at, "1 day")
        save(c, "evil", "app/a", "v", expires_at=EXPIRY + timedelta(hours=1))
        assert [(r["name"], r["due_at"]) for r in due(c, at, "1 day", tenant="evil")] == \
            [("app/a", EXPIRY + timedelta(hours=1))]


def test_deleted_secrets_are_not_due(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "app/a", "v", expires_at=EXPIRY)
    save(alice, "acme", "app/b", "v", rotate_every="1 day")
    alice.execute("SELECT hush.delete_secret('acme', 'app/a')")
    alice.execute("SELECT hush.delete_secret('acme', 'app/b')")
    assert reasons(alice, EXPIRY, "1 day") == []
    alice.execute("SELECT hush.restore_secret('acme', 'app/a')")
    assert reasons(alice, EXPIRY, "1 day") == [("app/a", "expired")]


def test_promotion_and_rollback_restart_the_rotation_clock(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "app/db", "pw1", rotate_every="30 days")
    first_due = rotated_at(db, "app/db") + timedelta(days=30)
    # Staging a new value is not a rotation yet: due as before, the pending version shown.
    save(alice, "acme", "app/db", "pw2", stage="pending")
    [row] = due(alice, first_due, "1 day")
    assert (row["reason"], row["due_at"], row["version"], row["pending_version"]) == \
        ("rotation_overdue", first_due, 1, 2)
    alice.execute("SELECT hush.promote_secret('acme', 'app/db')")
    [row] = due(alice, first_due, "1 day")
    assert row["due_at"] > first_due and row["reason"] == "rotation_due"
    assert (row["version"], row["pending_version"]) == (2, None)
    second_due = row["due_at"]
    alice.execute("SELECT hush.rollback_secret('acme', 'app/db', 1)")
    [row] = due(alice, second_due, "1 day")
    assert row["due_at"] > second_due and (row["reason"], row["version"]) == ("rotation_due", 3)


def test_the_query_can_use_the_secrets_due_index(db: Any) -> None:
    """Its WHERE implies the index predicate (live secrets with a schedule or an expiry): a
    tenant's many plain secrets cost nothing, even in a generic plan."""
    due_sql = imported("hush_plpy.lifecycle").DUE_SQL
    plan = owner_plan(db, f"due(text, interval, timestamptz, text[]) AS {due_sql}", "due('acme', NULL, now(), NULL)")
    assert "secrets_due" in plan, plan
