"""Staged rotation and rollback (issue 21): save a new value as pending, promote it to
current in one call, keep the one before readable as previous; roll back to an old
version's value as a new version. Real server, non-superuser roles (alice writes acme,
rita reads it, mallory writes another tenant); the superuser only inspects tables.
"""
from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest

from helpers import module_roles, raises_sqlstate, rows, save

ROLES = {"rot_readlist": "LOGIN IN ROLE hush_writer"}  # a writer granted only read and list in acme


people = module_roles(ROLES)


@pytest.fixture
def alice(db: Any) -> Iterator[psycopg.Connection]:
    with db.connect("alice") as conn:
        yield conn


def read(conn: psycopg.Connection, name: str, version: Any = None, stage: Any = None, tenant: str = "acme") -> tuple:
    """(value, version, stage) of a get_secret."""
    return conn.execute("SELECT value, version, stage FROM hush.get_secret(%s, %s, version => %s, stage => %s)",
                        [tenant, name, version, stage]).fetchone()


def promote(conn: psycopg.Connection, name: str, expected: Any = None, tenant: str = "acme") -> dict:
    return rows(conn, "SELECT * FROM hush.promote_secret(%s, %s, expected_version => %s)", [tenant, name, expected])[0]


def rollback(conn: psycopg.Connection, name: str, to: Any, expected: Any = None, tenant: str = "acme") -> dict:
    return rows(conn, "SELECT * FROM hush.rollback_secret(%s, %s, %s, expected_version => %s)",
                [tenant, name, to, expected])[0]


def stages(db: Any, name: str, tenant: str = "acme") -> tuple:
    """(current, pending, previous, rotated_at) of the secret, as stored."""
    return db.sql("SELECT current_version, pending_version, previous_version, rotated_at FROM hush.secrets "
                  "WHERE tenant_id = %s AND name = %s", [tenant, name])[0]


def audit(db: Any, name: str, *actions: str, tenant: str = "acme") -> list[dict]:
    with db.connect() as su:
        return rows(su, "SELECT action, version, db_role, detail FROM hush.audit_log WHERE tenant_id = %s "
                        "AND secret_name = %s AND action = ANY (%s) ORDER BY id", [tenant, name, list(actions)])


def version_count(db: Any, name: str) -> int:
    return db.sql("SELECT count(*) FROM hush.secret_versions v JOIN hush.secrets s ON s.id = v.secret_id "
                  "WHERE s.name = %s", [name])[0][0]


def grant(db: Any, role: str, prefix: str, caps: list[str], tenant: str = "acme") -> None:
    db.sql("SELECT hush.grant(%s, %s, %s, %s::text[])", [role, tenant, prefix, caps], user="adam")


# -- staged rotation ---------------------------------------------------------------------


def test_a_rotation_failing_before_promotion_leaves_current_untouched(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "db/password", "old-pw")
    staged = save(alice, "acme", "db/password", "new-pw", stage="pending")
    assert staged["version"] == 2
    # The rotation "fails" here: the new password never made it to the database server, say.
    with db.connect("rita") as rita:
        assert read(rita, "db/password") == ("old-pw", 1, "current")
        assert read(rita, "db/password", stage="current") == ("old-pw", 1, "current")
        assert read(rita, "db/password", stage="pending") == ("new-pw", 2, "pending")
    assert stages(db, "db/password")[:3] == (1, 2, None)
    # Retrying the rotation stages another value; the first pending one stays as a plain version.
    assert save(alice, "acme", "db/password", "newer-pw", stage="pending")["version"] == 3
    assert read(alice, "db/password") == ("old-pw", 1, "current")
    assert read(alice, "db/password", stage="pending") == ("newer-pw", 3, "pending")
    assert read(alice, "db/password", version=2) == ("new-pw", 2, None)


def test_promote_makes_pending_current_and_keeps_previous_until_the_next_rotation(db: Any,
                                                                                 alice: psycopg.Connection) -> None:
    save(alice, "acme", "api/key", "k1")
    save(alice, "acme", "api/key", "k2", stage="pending")
    before = stages(db, "api/key")[3]
    with raises_sqlstate("SH011"):
        read(alice, "api/key", stage="previous")
    done = promote(alice, "api/key", expected=2)
    assert (done["name"], done["version"], done["tenant_id"]) == ("api/key", 2, "acme")
    assert read(alice, "api/key") == ("k2", 2, "current")
    assert read(alice, "api/key", stage="previous") == ("k1", 1, "previous")
    with raises_sqlstate("SH011"):
        read(alice, "api/key", stage="pending")
    current, pending, previous, rotated_at = stages(db, "api/key")
    assert (current, pending, previous) == (2, None, 1) and rotated_at > before
    [row] = audit(db, "api/key", "promote")
    assert (row["version"], row["db_role"]) == (2, "alice")
    assert row["detail"]["previous"] == 1 and row["detail"]["grant"]["role"] == "alice"
    # The next rotation: k2 becomes previous, k1 is no longer staged (readable by number).
    save(alice, "acme", "api/key", "k3", stage="pending")
    assert read(alice, "api/key", stage="previous") == ("k1", 1, "previous")  # staging changes nothing yet
    assert promote(alice, "api/key")["version"] == 3
    assert read(alice, "api/key", stage="previous") == ("k2", 2, "previous")
    assert read(alice, "api/key", version=1) == ("k1", 1, None)


def test_promote_with_the_wrong_expected_version_changes_nothing(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "k", "v1")
    save(alice, "acme", "k", "v2", stage="pending")
    before = stages(db, "k")
    for wrong in (1, 3):
        with raises_sqlstate("SH013"):
            promote(alice, "k", expected=wrong)
    assert stages(db, "k") == before
    assert read(alice, "k") == ("v1", 1, "current")
    assert audit(db, "k", "promote") == []
    with raises_sqlstate("SH004"):
        promote(alice, "k", expected=-1)


def test_promote_needs_a_live_secret_with_an_intact_pending_version(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "k", "v1")
    with raises_sqlstate("SH011"):
        promote(alice, "k")
    with raises_sqlstate("SH010"):
        promote(alice, "missing")
    save(alice, "acme", "k", "v2", stage="pending")
    alice.execute("SELECT hush.destroy_secret('acme', 'k', ARRAY[2])")
    before = stages(db, "k")
    with raises_sqlstate("SH015"):
        promote(alice, "k")
    assert stages(db, "k") == before and read(alice, "k") == ("v1", 1, "current")
    save(alice, "acme", "k", "v3", stage="pending")
    alice.execute("SELECT hush.delete_secret('acme', 'k')")
    with raises_sqlstate("SH014"):
        promote(alice, "k")
    alice.execute("SELECT hush.restore_secret('acme', 'k')")
    assert promote(alice, "k", expected=3)["version"] == 3
    assert audit(db, "k", "promote")[0]["version"] == 3


def test_who_may_promote_and_roll_back(db: Any, alice: psycopg.Connection, people: None) -> None:
    save(alice, "acme", "k", "v1")
    save(alice, "acme", "k", "v2", stage="pending")
    before = stages(db, "k")
    # A reader cannot call them at all; a writer granted only read and list is refused.
    with db.connect("rita") as rita:
        for call in (lambda c: promote(c, "k"), lambda c: rollback(c, "k", 1)):
            with raises_sqlstate("42501"):
                call(rita)
    grant(db, "rot_readlist", "", ["read", "list"])
    with db.connect("rot_readlist") as rl:
        assert read(rl, "k") == ("v1", 1, "current")
        for call in (lambda c: promote(c, "k"), lambda c: rollback(c, "k", 1)):
            with raises_sqlstate("SH020"):
                call(rl)
    # Another tenant's writer neither reaches acme's secret nor finds it in its own tenant.
    with db.connect("mallory") as mallory:
        for call in (lambda c: promote(c, "k"), lambda c: rollback(c, "k", 1)):
            with raises_sqlstate("SH020"):
                call(mallory)
        for call in (lambda c: promote(c, "k", tenant="evil"), lambda c: rollback(c, "k", 1, tenant="evil")):
            with raises_sqlstate("SH010"):
                call(mallory)
    assert stages(db, "k") == before
    assert audit(db, "k", "promote", "rollback") == []


def test_a_writer_scoped_to_a_prefix_promotes_there_only(db: Any, alice: psycopg.Connection, people: None) -> None:
    for name in ("ci/token", "db/password"):
        save(alice, "acme", name, "v1")
        save(alice, "acme", name, "v2", stage="pending")
    grant(db, "rot_readlist", "ci/", ["write"])
    with db.connect("rot_readlist") as ci:
        assert promote(ci, "ci/token")["version"] == 2
        with raises_sqlstate("SH020"):
            promote(ci, "db/password")
        with raises_sqlstate("SH020"):  # refused from the name alone, whether or not it exists
            promote(ci, "db/nothing")
    [row] = audit(db, "ci/token", "promote")
    assert row["detail"]["grant"] == {"tenant": "acme", "role": "rot_readlist", "prefix": "ci/"}
    assert stages(db, "db/password")[:2] == (1, 2)


# -- rollback ------------------------------------------------------------------------------


def test_rollback_makes_a_new_version_with_the_old_value(db: Any, alice: psycopg.Connection) -> None:
    for v in ("good", "bad", "worse"):
        save(alice, "acme", "svc/token", v)
    done = rollback(alice, "svc/token", 1)
    assert (done["name"], done["version"]) == ("svc/token", 4)
    assert read(alice, "svc/token") == ("good", 4, "current")
    assert read(alice, "svc/token", stage="previous") == ("worse", 3, "previous")
    assert read(alice, "svc/token", version=1) == ("good", 1, None)  # the old version stays as it was
    assert stages(db, "svc/token")[:3] == (4, None, 3)
    [row] = audit(db, "svc/token", "rollback")
    assert (row["version"], row["db_role"], row["detail"]["from_version"]) == (4, "alice", 1)
    assert row["detail"]["grant"]["role"] == "alice"
    # Sealed again under a fresh data key (the associated data names version 4), by the active root key.
    v1, v4 = db.sql("SELECT v.wrapped_dek, v.ciphertext, v.key_id, v.created_by FROM hush.secret_versions v "
                    "JOIN hush.secrets s ON s.id = v.secret_id WHERE s.name = 'svc/token' AND v.version IN (1, 4) "
                    "ORDER BY v.version")
    assert v1[0] != v4[0] and v1[1] != v4[1] and v4[3] == "alice"
    assert v4[2] == db.sql("SELECT key_id FROM hush.root_keys WHERE state = 'active'")[0][0]
    # Not a read: the value never left the server (the read the test made above is the only one).
    reads = db.sql("SELECT version FROM hush.audit_log WHERE secret_name = 'svc/token' AND action = 'read' "
                   "ORDER BY id")
    assert reads == [(4,), (3,), (1,)]


def test_rollback_to_the_current_version_and_over_a_pending_one(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "k", "v1")
    save(alice, "acme", "k", "v2")
    assert rollback(alice, "k", 2)["version"] == 3  # allowed: the same value as a new version
    assert read(alice, "k") == ("v2", 3, "current")
    save(alice, "acme", "k", "v4", stage="pending")
    # The new number is past the pending one; the staged rotation is dropped (v4 stays unstaged).
    assert rollback(alice, "k", 1)["version"] == 5
    assert stages(db, "k")[:3] == (5, None, 3)
    assert read(alice, "k") == ("v1", 5, "current")
    with raises_sqlstate("SH011"):
        read(alice, "k", stage="pending")
    assert read(alice, "k", version=4) == ("v4", 4, None)


def test_rollback_check_and_set(db: Any, alice: psycopg.Connection) -> None:
    for v in ("v1", "v2", "v3"):
        save(alice, "acme", "k", v)
    save(alice, "acme", "k", "v4", stage="pending")
    before, count = stages(db, "k"), version_count(db, "k")
    for wrong in (2, 4):  # the pending version is not what it compares with
        with raises_sqlstate("SH013"):
            rollback(alice, "k", 1, expected=wrong)
    with raises_sqlstate("SH004"):
        rollback(alice, "k", 1, expected=0)
    assert stages(db, "k") == before and version_count(db, "k") == count
    assert audit(db, "k", "rollback") == []
    assert rollback(alice, "k", 1, expected=3)["version"] == 5
    with raises_sqlstate("SH013"):  # someone else's rollback came first
        rollback(alice, "k", 2, expected=3)
    assert read(alice, "k") == ("v1", 5, "current")


def test_rollback_to_a_missing_or_destroyed_version(db: Any, alice: psycopg.Connection) -> None:
    for v in ("v1", "v2", "v3"):
        save(alice, "acme", "k", v)
    alice.execute("SELECT hush.destroy_secret('acme', 'k', ARRAY[1])")
    before, count = stages(db, "k"), version_count(db, "k")
    with raises_sqlstate("SH015") as ei:
        rollback(alice, "k", 1)
    assert "v1" not in str(ei.value)
    with raises_sqlstate("SH011"):
        rollback(alice, "k", 9)
    for bad in (0, None):
        with raises_sqlstate("SH004"):
            rollback(alice, "k", bad)
    with raises_sqlstate("SH010"):
        rollback(alice, "nothing", 1)
    alice.execute("SELECT hush.delete_secret('acme', 'k')")
    with raises_sqlstate("SH014"):
        rollback(alice, "k", 2)
    assert stages(db, "k") == before and version_count(db, "k") == count
    assert audit(db, "k", "rollback") == []


# -- retention after a promotion or rollback -----------------------------------------------


def test_retention_applies_after_promote_and_rollback(db: Any, alice: psycopg.Connection) -> None:
    save(alice, "acme", "k", "v1", max_versions=1)
    save(alice, "acme", "k", "v2")
    save(alice, "acme", "k", "v3", stage="pending")
    # Staged current (2), previous (1) and pending (3): retention keeps all three.
    assert read(alice, "k", version=1) == ("v1", 1, "previous")
    promote(alice, "k")
    # v1 is no longer staged: retention (max_versions 1) destroys it, as alice, no destroy grant needed.
    with raises_sqlstate("SH015"):
        read(alice, "k", version=1)
    [row] = audit(db, "k", "destroy")
    assert (row["version"], row["db_role"], row["detail"]["retention"]) == (1, "alice", {"max_versions": 1})
    assert read(alice, "k", stage="previous") == ("v2", 2, "previous")
    assert rollback(alice, "k", 3)["version"] == 4
    # Now current 4, previous 3: version 2 goes.
    with raises_sqlstate("SH015"):
        read(alice, "k", version=2)
    assert [r["version"] for r in audit(db, "k", "destroy")] == [1, 2]
    assert read(alice, "k") == ("v3", 4, "current")


# -- a destroyed value stays destroyed ------------------------------------------------

def _blocked_until(db: Any, user: str) -> None:
    """Until `user`'s session waits on a lock (polled: no fixed sleep)."""
    import time
    for _ in range(500):
        if db.sql("SELECT 1 FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'", [user]):
            return
        time.sleep(0.01)
    raise AssertionError(f"{user} never waited on a lock")


def test_a_rollback_in_an_older_snapshot_cannot_revive_a_destroyed_value(db: Any, alice: Any) -> None:
    """Destroying a version erases its value for good: a REPEATABLE READ transaction whose
    snapshot still shows the ciphertext gets 40001 from a rollback to it, not the value back."""
    for v in ("leaked", "v2", "v3"):
        save(alice, "acme", "db", v)
    with db.connect("alice", autocommit=False) as old:
        old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        old.execute("SELECT 1")  # the snapshot, taken while version 1 has its value
        assert alice.execute("SELECT hush.destroy_secret('acme', 'db', ARRAY[1])").fetchone()[0] == 1
        with raises_sqlstate("40001"):
            old.execute("SELECT hush.rollback_secret('acme', 'db', 1)")
    assert read(alice, "db") == ("v3", 3, "current")
    with raises_sqlstate("SH015"):  # and a fresh transaction is told why
        rollback(alice, "db", 1)


def _queued_behind(db: Any, holder: psycopg.Connection, sql: str) -> dict:
    """Run `sql` as alice in a thread while `holder` (an open transaction) holds the secret's
    row; once it waits on that lock, commit `holder`. What the queued call got: its row or
    its SQLSTATE."""
    import threading
    got: dict = {}

    def run() -> None:
        with db.connect("alice") as c:
            try:
                got["row"] = c.execute(sql).fetchone()
            except psycopg.Error as e:
                got["sqlstate"] = e.sqlstate

    t = threading.Thread(target=run)
    t.start()
    try:
        _blocked_until(db, "alice")
    finally:
        holder.commit()
        holder.close()
        t.join(10)
    return got


def test_a_rollback_that_waited_for_a_destroy_sees_it(db: Any, alice: Any) -> None:
    """READ COMMITTED: a rollback queued behind a destroy of the version it asks for (which
    locks the secret's row) reads that version after the wait: SH015, nothing written."""
    for v in ("leaked", "v2", "v3"):
        save(alice, "acme", "db", v)
    holder = db.connect("alice", autocommit=False)
    assert holder.execute("SELECT hush.destroy_secret('acme', 'db', ARRAY[1])").fetchone()[0] == 1
    assert _queued_behind(db, holder, "SELECT version FROM hush.rollback_secret('acme', 'db', 1)") == {
        "sqlstate": "SH015"}
    assert read(alice, "db") == ("v3", 3, "current")


def test_promote_never_makes_a_destroyed_version_current(db: Any, alice: Any) -> None:
    save(alice, "acme", "db", "v1")
    save(alice, "acme", "db", "v2", stage="pending")
    with db.connect("alice", autocommit=False) as old:
        old.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        old.execute("SELECT 1")
        alice.execute("SELECT hush.destroy_secret('acme', 'db', ARRAY[2])")
        with raises_sqlstate("40001"):
            old.execute("SELECT hush.promote_secret('acme', 'db')")
    assert read(alice, "db") == ("v1", 1, "current")


def test_a_promote_that_waited_for_a_new_pending_version_sees_it(db: Any, alice: Any) -> None:
    """A promote queued behind another rotation's pending save checks the pending version
    that save staged: SH013 for the one it expected, the new one promotable."""
    save(alice, "acme", "db", "v1")
    save(alice, "acme", "db", "v2", stage="pending")
    holder = db.connect("alice", autocommit=False)
    save(holder, "acme", "db", "v3", stage="pending")
    assert _queued_behind(db, holder, "SELECT version FROM hush.promote_secret('acme', 'db', 2)") == {
        "sqlstate": "SH013"}
    assert promote(alice, "db", 3)["version"] == 3
