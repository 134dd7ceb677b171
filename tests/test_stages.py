"""Staged versions (issue 21): save_secret(..., stage => 'pending') stages the next value
beside the current one, get_secret(..., stage => ...) reads a stage, a direct save
supersedes a staged rotation. As alice (hush_writer on acme) and rita (hush_reader on acme);
the superuser only inspects."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb
import pytest

from helpers import get, last_audit_id, raises_sqlstate, rows, save


@pytest.fixture
def alice(db: Any) -> Any:
    with db.connect("alice") as conn:
        yield conn


def staged(conn: psycopg.Connection, name: str, stage: str, tenant: str = "acme") -> dict:
    """get_secret by stage: the value, version and stage it returns."""
    r = rows(conn, "SELECT value, version, stage FROM hush.get_secret(%s, %s, stage => %s)", [tenant, name, stage])
    return r[0]


def secret_row(db: Any, name: str) -> tuple:
    return db.sql("SELECT current_version, pending_version, previous_version, rotated_at FROM hush.secrets "
                  "WHERE tenant_id = 'acme' AND name = %s", [name])[0]


def everything(db: Any) -> list:
    """What a call could change, as the superuser sees it."""
    return [db.sql("SELECT name, current_version, pending_version, previous_version, updated_at, deleted_at "
                   "FROM hush.secrets ORDER BY name"),
            db.sql("SELECT secret_id, version FROM hush.secret_versions ORDER BY 1, 2"), last_audit_id(db)]


def test_a_pending_version_leaves_the_current_one_readable_and_unchanged(db: Any, alice: Any) -> None:
    save(alice, "acme", "db", "v1")
    save(alice, "acme", "db", "v2")
    before = secret_row(db, "db")
    assert before[:3] == (2, None, 1)
    pending = save(alice, "acme", "db", "v3", stage="pending")
    assert pending["version"] == 3
    # The current value, its version and its rotation time are as they were; readers see it.
    assert secret_row(db, "db") == (2, 3, 1, before[3])
    with db.connect("rita") as rita:
        assert (get(rita, "acme", "db")["value"], get(rita, "acme", "db")["version"]) == ("v2", 2)
        assert staged(rita, "db", "pending") == {"value": "v3", "version": 3, "stage": "pending"}
    assert staged(alice, "db", "current") == {"value": "v2", "version": 2, "stage": "current"}
    assert staged(alice, "db", "previous") == {"value": "v1", "version": 1, "stage": "previous"}
    # A plain read and a read by version say which stage they got.
    assert get(alice, "acme", "db")["stage"] == "current"
    assert [get(alice, "acme", "db", v)["stage"] for v in (1, 2, 3)] == ["previous", "current", "pending"]
    audit = db.sql("SELECT action, version, db_role FROM hush.audit_log WHERE secret_name = 'db' "
                   "AND action <> 'read' ORDER BY id")
    assert audit == [("create", 1, "alice"), ("new_version", 2, "alice"), ("pending_version", 3, "alice")]
    listed = rows(alice, "SELECT version, pending_version FROM hush.list_secrets('acme')")
    assert listed == [{"version": 2, "pending_version": 3}]


def test_stages_by_id_and_through_get_secrets(alice: Any) -> None:
    sid = save(alice, "acme", "k", "a")["id"]
    save(alice, "acme", "k", "b", stage="pending")
    r = alice.execute("SELECT value, version, stage FROM hush.get_secret_by_id(%s, %s, stage => 'pending')",
                      ["acme", sid]).fetchone()
    assert r == ("b", 2, "pending")
    r = alice.execute("SELECT value, stage FROM hush.get_secret_by_id(%s, %s, stage => 'current')", ["acme", sid])
    assert r.fetchone() == ("a", "current")
    assert alice.execute("SELECT value, version, stage FROM hush.get_secrets('acme', ARRAY['k'])").fetchall() == [
        ("a", 1, "current")]


def test_a_direct_save_supersedes_a_staged_rotation(db: Any, alice: Any) -> None:
    save(alice, "acme", "k", "v1")
    save(alice, "acme", "k", "v2", stage="pending")
    rotated = secret_row(db, "k")[3]
    # Numbered past the pending version; the old current becomes previous; nothing is pending.
    assert save(alice, "acme", "k", "v3")["version"] == 3
    current, pending, previous, rotated_at = secret_row(db, "k")
    assert (current, pending, previous) == (3, None, 1) and rotated_at > rotated
    with raises_sqlstate("SH011") as ei:
        staged(alice, "k", "pending")
    assert "has no pending version" in str(ei.value)
    # The superseded version stays, readable by its number, staged nowhere.
    assert (get(alice, "acme", "k", 2)["value"], get(alice, "acme", "k", 2)["stage"]) == ("v2", None)
    assert staged(alice, "k", "previous")["version"] == 1


def test_a_newer_pending_version_replaces_the_older_one(db: Any, alice: Any) -> None:
    save(alice, "acme", "k", "v1")
    assert save(alice, "acme", "k", "p1", stage="pending")["version"] == 2
    assert save(alice, "acme", "k", "p2", stage="pending")["version"] == 3
    assert secret_row(db, "k")[:3] == (1, 3, None)
    assert staged(alice, "k", "pending") == {"value": "p2", "version": 3, "stage": "pending"}
    assert get(alice, "acme", "k", 2)["stage"] is None


def test_update_secret_stages_too_and_check_and_set_compares_the_current_version(db: Any, alice: Any) -> None:
    sid = save(alice, "acme", "k", "v1")["id"]
    save(alice, "acme", "k", "v2")
    with raises_sqlstate("SH013"):  # the current version is 2; a pending version is no current one
        alice.execute("SELECT hush.update_secret('acme', 'k', 'p', expected_version => 3, stage => 'pending')")
    r = alice.execute("SELECT version FROM hush.update_secret('acme', 'k', 'p', expected_version => 2, "
                      "stage => 'pending')").fetchone()
    assert r == (3,)
    r = alice.execute("SELECT version FROM hush.update_secret_by_id('acme', %s, 'p2', stage => 'pending')", [sid])
    assert r.fetchone() == (4,)
    with raises_sqlstate("SH013"):
        save(alice, "acme", "k", "x", expected_version=4, stage="pending")
    assert save(alice, "acme", "k", "p3", expected_version=2, stage="pending")["version"] == 5
    assert secret_row(db, "k")[:3] == (2, 5, 1)
    # A check-and-set save makes the next current version past the pending one.
    assert save(alice, "acme", "k", "v6", expected_version=2)["version"] == 6
    assert secret_row(db, "k")[:3] == (6, None, 2)
    # Metadata only (no value) stages nothing.
    r = alice.execute("SELECT version FROM hush.update_secret('acme', 'k', description => 'd')").fetchone()
    assert r == (6,)


def test_a_pending_version_needs_a_live_secret_and_writes_nothing_otherwise(db: Any, alice: Any) -> None:
    before = everything(db)
    with raises_sqlstate("SH010") as ei:
        save(alice, "acme", "new", "v", stage="pending")
    assert "save a first value" in (ei.value.diag.message_hint or "")
    with raises_sqlstate("SH010"):
        alice.execute("SELECT hush.update_secret('acme', 'new', 'v', stage => 'pending')")
    assert everything(db) == before
    save(alice, "acme", "gone", "v")
    alice.execute("SELECT hush.delete_secret('acme', 'gone')")
    before = everything(db)
    with raises_sqlstate("SH014"):
        save(alice, "acme", "gone", "v2", stage="pending")
    assert everything(db) == before


def test_bad_stages_and_version_with_stage_are_refused(db: Any, alice: Any) -> None:
    save(alice, "acme", "k", "v1")
    save(alice, "acme", "k", "v2")
    before = everything(db)
    for stage in ("next", "PENDING", "", "previous"):
        with raises_sqlstate("SH004"):
            save(alice, "acme", "k", "x", stage=stage)
        with raises_sqlstate("SH004"):
            alice.execute("SELECT hush.update_secret('acme', 'k', 'x', stage => %s)", [stage])
    with raises_sqlstate("SH004"):  # a pending version needs a value
        alice.execute("SELECT hush.update_secret('acme', 'k', description => 'd', stage => 'pending')")
    assert everything(db) == before
    for stage in ("next", "Current", ""):
        with raises_sqlstate("SH004"):
            staged(alice, "k", stage)
    with raises_sqlstate("SH004"):
        alice.execute("SELECT * FROM hush.get_secret('acme', 'k', 1, 'previous')")
    with raises_sqlstate("SH004"):
        alice.execute("SELECT * FROM hush.get_secret_by_id('acme', gen_random_uuid(), 1, 'current')")
    # stage => 'current' on a save is a plain save.
    assert save(alice, "acme", "k", "v3", stage="current")["version"] == 3


def test_a_stage_with_no_version_is_sh011(alice: Any) -> None:
    save(alice, "acme", "k", "v1")
    for stage in ("pending", "previous"):
        with raises_sqlstate("SH011") as ei:
            staged(alice, "k", stage)
        assert f"secret 'k' of tenant acme has no {stage} version" in str(ei.value)
    with raises_sqlstate("SH010"):
        staged(alice, "nope", "pending")


def test_a_destroyed_pending_version_reads_as_destroyed(db: Any) -> None:
    with db.connect("alice") as alice:
        save(alice, "acme", "k", "v1")
        save(alice, "acme", "k", "v2", stage="pending")
    db.sql("SELECT hush.destroy_secret('acme', 'k', ARRAY[2])")  # as the superuser: alice may destroy too
    with db.connect("alice") as alice:
        with raises_sqlstate("SH015"):
            staged(alice, "k", "pending")
        assert staged(alice, "k", "current")["value"] == "v1"


def test_secret_versions_shows_each_versions_stage(alice: Any) -> None:
    for v in ("v1", "v2", "v3"):
        save(alice, "acme", "k", v)
    save(alice, "acme", "k", "p4", stage="pending")
    save(alice, "acme", "k", "p5", stage="pending")
    got = alice.execute("SELECT version, is_current, stage FROM hush.secret_versions('acme', 'k')").fetchall()
    assert got == [(1, False, None), (2, False, "previous"), (3, True, "current"), (4, False, None),
                   (5, False, "pending")]


def test_a_pending_version_carries_a_value_only(db: Any, alice: Any) -> None:
    """Metadata or settings given with stage => 'pending' would change the live secret (its
    current value's expiry, description, retention) before any promotion: SH004, nothing
    written."""
    sid = save(alice, "acme", "k", "v1", description="live")["id"]
    before = everything(db), db.sql("SELECT * FROM hush.secrets WHERE name = 'k'")
    given = {"description": "for the new value", "tags": ["next"], "metadata": Jsonb({"next": True}),
             "kind": "api_key", "expires_at": "2000-01-01T00:00:00Z", "max_versions": 1,
             "destroy_versions_after": "1 day", "rotate_every": "30 days"}
    for arg, val in given.items():
        with raises_sqlstate("SH004") as ei:
            save(alice, "acme", "k", "p", stage="pending", **{arg: val})
        assert f"a pending version carries a value only: change {arg} with update_secret" in str(ei.value)
        with raises_sqlstate("SH004"):
            alice.execute(f"SELECT hush.update_secret('acme', 'k', 'p', {arg} => %s, stage => 'pending')", [val])
        with raises_sqlstate("SH004"):
            alice.execute(f"SELECT hush.update_secret_by_id('acme', %s, 'p', {arg} => %s, stage => 'pending')",
                          [sid, val])
    assert (everything(db), db.sql("SELECT * FROM hush.secrets WHERE name = 'k'")) == before
    # The current value stays readable (an expires_at in the past would have expired it).
    with db.connect("rita") as rita:
        got = get(rita, "acme", "k")
    assert (got["value"], got["description"], got["expires_at"]) == ("v1", "live", None)
    # Given after promotion, they apply.
    save(alice, "acme", "k", "p", stage="pending")
    alice.execute("SELECT hush.promote_secret('acme', 'k')")
    alice.execute("SELECT hush.update_secret('acme', 'k', description => 'for the new value')")
    assert (get(alice, "acme", "k")["value"], get(alice, "acme", "k")["description"]) == ("p", "for the new value")
