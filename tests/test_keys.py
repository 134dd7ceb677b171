"""The root keyring: where it comes from, and clear failures when it is wrong.

These tests change the server's key setting with ALTER SYSTEM (the keyring
path is honoured only from the server configuration) and put it back after.
Each check runs on a new connection: a backend reads the keyring once."""
from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import get, raises_sqlstate, save

ROOT = Path(__file__).resolve().parent.parent


def key_id(line: str) -> str:
    return hashlib.blake2b(base64.b64decode(line), digest_size=16, person=b"hush-root-key").hexdigest()


@pytest.fixture
def keyfile_setting(db):
    """Point hush.root_key_file somewhere else for the duration of a test."""
    def point_to(path: Path) -> None:
        db.sql("ALTER SYSTEM SET hush.root_key_file = %s" % _literal(str(path)))
    yield point_to
    db.sql("ALTER SYSTEM RESET hush.root_key_file")


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def admin_reason(db) -> str:
    """Why the keyring did not load, as an admin reads it (application roles are not told)."""
    warnings: list[str] = []
    with db.connect("adam") as adam:
        adam.add_notice_handler(lambda d: warnings.append(str(d.message_primary)))
        adam.execute("SELECT * FROM hush.root_key_status()").fetchall()
    return " ".join(warnings)


def _counts(db):
    return db.sql("SELECT (SELECT count(*) FROM hush.secret_versions), (SELECT count(*) FROM hush.audit_log),"
                  " (SELECT count(*) FROM hush.root_keys)")[0]


def test_first_write_registers_first_key_and_ignores_the_rest(db, cluster):
    assert db.sql("SELECT count(*) FROM hush.root_keys") == [(0,)]
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    # The cluster's keyring holds two keys: only the first is registered, the other is ignored.
    assert db.sql("SELECT key_id, state FROM hush.root_keys") == [(key_id(cluster.key_lines[0]), "active")]
    assert db.sql("SELECT key_id FROM hush.secret_versions") == [(key_id(cluster.key_lines[0]),)]


def test_key_id_matches_keygen_tool():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "keygen.py")], capture_output=True, text=True, check=True)
    line = out.stdout.strip()
    assert len(base64.b64decode(line, validate=True)) == 32
    assert out.stderr.strip() == f"key id: {key_id(line)}"


def test_session_set_of_key_file_is_ignored(db, cluster):
    evil = cluster.write_keyfile([cluster.key_lines[1]], path=cluster.base / "keys" / "evil.keys")
    with db.connect("alice") as a:
        a.execute("SET hush.root_key_file = %s" % _literal(str(evil)))
        save(a, "acme", "k", "v")
        assert get(a, "acme", "k")["value"] == "v"
    assert db.sql("SELECT DISTINCT key_id FROM hush.secret_versions") == [(key_id(cluster.key_lines[0]),)]


@pytest.mark.parametrize("case", ["missing", "unreadable", "malformed", "short-key", "empty", "group-readable",
                                  "directory"])
def test_bad_keyring_is_a_clear_error_and_nothing_is_written(db, cluster, keyfile_setting, case):
    with db.connect("alice") as a:
        save(a, "acme", "existing", "old-value")
    path = cluster.base / "keys" / f"{case}.keys"
    if case == "malformed":
        cluster.write_keyfile([cluster.key_lines[0], "not base64 at all!"], path=path)
    elif case == "short-key":
        cluster.write_keyfile([base64.b64encode(b"x" * 16).decode()], path=path)
    elif case == "empty":
        cluster.write_keyfile([], path=path)
    elif case == "group-readable":
        cluster.write_keyfile(mode=0o640, path=path)
    elif case == "directory":
        path = cluster.base / "keys"
    elif case == "unreadable":  # in a directory the server's OS user may not enter
        path = cluster.write_keyfile(path=cluster.base / "locked" / "root.keys")
        path.parent.chmod(0o000)
    keyfile_setting(path)
    before = _counts(db)
    with db.connect("alice") as a:
        with raises_sqlstate("SH030") as ei:
            save(a, "acme", "new", "new-value")
        assert "could not be loaded" in str(ei.value) and str(path) not in str(ei.value)  # a path: admins only
        assert cluster.key_lines[0] not in str(ei.value)
        with raises_sqlstate("SH030"):
            get(a, "acme", "existing")
    assert _counts(db) == before
    reason = admin_reason(db)
    assert str(path) in reason and cluster.key_lines[0] not in reason
    if case == "malformed":
        assert "line 3" in reason  # line 1 is the comment written by write_keyfile
    if case == "unreadable":
        assert "cannot be read" in reason


def test_active_key_missing_from_keyring(db, cluster, keyfile_setting):
    with db.connect("alice") as a:
        save(a, "acme", "existing", "v")
    active = key_id(cluster.key_lines[0])
    keyfile_setting(cluster.write_keyfile([cluster.key_lines[1]], path=cluster.base / "keys" / "other.keys"))
    before = _counts(db)
    with db.connect("alice") as a:
        with raises_sqlstate("SH030") as ei:
            save(a, "acme", "new", "v")
        assert active in str(ei.value)
        with raises_sqlstate("SH030") as ei:
            get(a, "acme", "existing")
        assert active in str(ei.value)
    assert _counts(db) == before


def test_fixed_keyring_is_picked_up_without_reconnecting(db, cluster, keyfile_setting):
    keyfile_setting(cluster.base / "keys" / "not-yet.keys")
    with db.connect("alice") as a:
        with raises_sqlstate("SH030"):
            save(a, "acme", "k", "v")
        db.sql("ALTER SYSTEM RESET hush.root_key_file")
        assert save(a, "acme", "k", "v")["version"] == 1
