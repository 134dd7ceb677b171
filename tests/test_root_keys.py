"""Root key rotation without re-encrypting: status, add, activate, retire, as
hush_admin (adam); other roles cannot call them; SQL never shows key material."""
from __future__ import annotations

import base64
from typing import Any

import psycopg
import pytest

from helpers import get, raises_sqlstate, rows, save
from test_keys import key_id, keyfile_setting  # noqa: F401 (keyfile_setting is a fixture)


def kid(cluster: Any, n: int) -> str:
    return key_id(cluster.key_lines[n])


def status(db: Any) -> dict[str, dict]:
    with db.connect("adam") as adam:
        return {r["key_id"]: r for r in rows(adam, "SELECT * FROM hush.root_key_status()")}


def version_keys(db: Any, name: str) -> list[str]:
    return [r[0] for r in db.sql("""SELECT v.key_id FROM hush.secret_versions v JOIN hush.secrets s
                                      ON s.tenant_id = v.tenant_id AND s.id = v.secret_id
                                     WHERE s.name = %s ORDER BY v.version""", [name])]


def test_rotation_end_to_end(db: Any, cluster: Any) -> None:
    first, second = kid(cluster, 0), kid(cluster, 1)
    with db.connect("alice") as alice, db.connect("bob") as bob:
        save(alice, "acme", "a", "acme-v1")
        save(bob, "globex", "g", "globex-v1")
    st = status(db)
    assert (st[first]["state"], st[first]["loaded"], st[first]["data_keys"]) == ("active", True, 2)
    assert (st[second]["state"], st[second]["loaded"], st[second]["data_keys"]) == ("unregistered", True, 0)
    with db.connect("adam") as adam:
        assert adam.execute("SELECT hush.add_root_key(%s)", [second]).fetchone() == ("decrypt_only",)
        assert adam.execute("SELECT hush.activate_root_key(%s)", [second]).fetchone() == ("active",)
    st = status(db)
    assert st[first]["state"] == "decrypt_only" and st[second]["state"] == "active"
    with db.connect("alice") as alice:
        save(alice, "acme", "a", "acme-v2")  # sealed under the new key at once...
        save(alice, "acme", "b", "acme-b")
        assert get(alice, "acme", "a", 1)["value"] == "acme-v1"  # ...and the old key still opens the old
        assert get(alice, "acme", "a")["value"] == "acme-v2"
    assert version_keys(db, "a") == [first, second] and version_keys(db, "b") == [second]
    with db.connect("adam") as adam:
        with raises_sqlstate("SH032") as ei:  # data keys still need it
            adam.execute("SELECT hush.retire_root_key(%s)", [first])
        assert "2 data key" in str(ei.value)
        with raises_sqlstate("SH032"):  # the active key
            adam.execute("SELECT hush.retire_root_key(%s)", [second])
    with db.connect("alice") as alice, db.connect("bob") as bob:
        alice.execute("SELECT hush.destroy_secret('acme', 'a', ARRAY[1])")
        bob.execute("SELECT hush.destroy_secret('globex', 'g')")
    with db.connect("adam") as adam:
        assert adam.execute("SELECT hush.retire_root_key(%s)", [first]).fetchone() == ("retired",)
        with raises_sqlstate("SH033"):
            adam.execute("SELECT hush.activate_root_key(%s)", [first])
        assert adam.execute("SELECT hush.add_root_key(%s)", [first]).fetchone() == ("decrypt_only",)
    assert status(db)[first]["data_keys"] == 0
    audited = db.sql("SELECT action, detail->>'key_id', db_role FROM hush.audit_log WHERE tenant_id = '*' "
                     "AND action LIKE '%root_key' ORDER BY id")
    assert audited == [("add_root_key", second, "adam"), ("activate_root_key", second, "adam"),
                       ("retire_root_key", first, "adam"), ("add_root_key", first, "adam")]


def test_bad_key_ids(db: Any) -> None:
    with db.connect("adam") as adam:
        for bad in ("", "XYZ", "0" * 31, "A" * 32):
            with raises_sqlstate("SH004"):
                adam.execute("SELECT hush.add_root_key(%s)", [bad])
        with raises_sqlstate("SH030"):  # well-formed, but no such key in the keyring
            adam.execute("SELECT hush.add_root_key(%s)", ["f" * 32])
        with raises_sqlstate("SH033"):
            adam.execute("SELECT hush.activate_root_key(%s)", ["f" * 32])
        with raises_sqlstate("SH033"):
            adam.execute("SELECT hush.retire_root_key(%s)", ["f" * 32])
    assert db.sql("SELECT count(*) FROM hush.root_keys") == [(0,)]


@pytest.mark.parametrize("role", ["alice", "rita", "audrey", "otto", "bob"])
@pytest.mark.parametrize("call", ["hush.root_key_status()", "hush.add_root_key(%s)", "hush.activate_root_key(%s)",
                                  "hush.retire_root_key(%s)"])
def test_only_admins_manage_keys(db: Any, cluster: Any, role: str, call: str) -> None:
    with db.connect(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM {call}", [kid(cluster, 1)] if "%s" in call else None)


def test_no_key_material_through_sql(db: Any, cluster: Any) -> None:
    with db.connect("alice") as alice:
        save(alice, "acme", "a", "v")
    with db.connect("adam") as adam:
        text = str(rows(adam, "SELECT * FROM hush.root_key_status()")) + str(
            rows(adam, "SELECT * FROM hush.root_keys"))
        for role in ("adam", "alice"):
            with db.connect(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT wrapped_dek FROM hush.secret_versions")
    for line in cluster.key_lines:
        assert line not in text and base64.b64decode(line).hex() not in text


def test_a_key_appended_to_the_keyring_is_used_without_reconnecting(db: Any, cluster: Any,
                                                                    keyfile_setting: Any) -> None:
    path = cluster.base / "keys" / "growing.keys"
    keyfile_setting(cluster.write_keyfile([cluster.key_lines[0]], path=path))
    with db.connect("alice") as alice:
        save(alice, "acme", "a", "v1")  # this backend now holds a keyring of one key
        cluster.write_keyfile(cluster.key_lines, path=path)  # the operator appends the second
        with db.connect("adam") as adam:
            adam.execute("SELECT hush.add_root_key(%s)", [kid(cluster, 1)])
            adam.execute("SELECT hush.activate_root_key(%s)", [kid(cluster, 1)])
        save(alice, "acme", "a", "v2")  # same session: the missing key makes it read the file again
        assert get(alice, "acme", "a")["value"] == "v2" and get(alice, "acme", "a", 1)["value"] == "v1"
    assert version_keys(db, "a") == [kid(cluster, 0), kid(cluster, 1)]


# -- the first write of a fresh database ---------------------------------------------------------

@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_first_writes_of_other_tenants_do_not_wait_for_an_open_transaction(db: Any, cluster: Any,
                                                                           ending: str) -> None:
    """Before any key is registered, the first write registers the keyring's first key: committed
    on its own, so the open transaction of the writer that got there first holds up no one."""
    assert db.sql("SELECT count(*) FROM hush.root_keys") == [(0,)]
    with db.connect("alice", autocommit=False) as a, db.connect("bob") as b:
        save(a, "acme", "first", "alice-value")  # its transaction stays open
        b.execute("SET lock_timeout = '3s'")  # waiting for alice's transaction would fail with 55P03
        save(b, "globex", "second", "bob-value")
        assert get(b, "globex", "second")["value"] == "bob-value"
        getattr(a, ending)()
    assert db.sql("SELECT key_id, state FROM hush.root_keys") == [(kid(cluster, 0), "active")]
    with db.connect("alice") as a:
        if ending == "commit":
            assert get(a, "acme", "first")["value"] == "alice-value"
        save(a, "acme", "third", "v")
    assert set(version_keys(db, "third") + version_keys(db, "second")) == {kid(cluster, 0)}


def test_first_write_in_an_older_snapshot_is_retried(db: Any, cluster: Any) -> None:
    """REPEATABLE READ: a key registered apart after the transaction's snapshot cannot be used in it
    (its data key would reference a row the snapshot does not see): 40001, and the retry works."""
    with db.connect("alice", autocommit=False) as a:
        a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        a.execute("SELECT 1")  # the snapshot
        with raises_sqlstate("40001") as ei:
            save(a, "acme", "k", "v")
        assert "retry" in str(ei.value)
        a.rollback()
        a.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        save(a, "acme", "k", "v")
        a.commit()
    assert db.sql("SELECT key_id, state FROM hush.root_keys") == [(kid(cluster, 0), "active")]


def test_first_write_without_a_recorder_registers_in_its_own_transaction(db: Any, cluster: Any) -> None:
    """Where the primary cannot be reached apart, the first write still works (as before: inside its
    transaction), and the server log says why, for an admin."""
    from read_record_helpers import recorder_settings
    log_before = cluster.log.stat().st_size
    with recorder_settings(db, conninfo="host=127.0.0.1 port=1"), db.connect("alice", autocommit=False) as a:
        save(a, "acme", "k", "v")
        a.rollback()  # the registration goes with it
        assert db.sql("SELECT count(*) FROM hush.root_keys") == [(0,)]
        save(a, "acme", "k", "v")
        a.commit()
    assert db.sql("SELECT key_id, state FROM hush.root_keys") == [(kid(cluster, 0), "active")]
    with open(cluster.log, errors="replace") as f:
        f.seek(log_before)
        assert "could not be registered apart from the first writer's transaction" in f.read()
