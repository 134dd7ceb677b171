"""What settings and keyring errors tell application roles.

hush.root_key_file and hush.root_key_command are readable by every role (SHOW,
current_setting()), as every setting no loaded module defines is on PostgreSQL
15: they hold no credential (docs/keys.md, "The keyring from a command"). Why the keyring
could not be loaded names a path or a program: an application role is told only
that it could not be; an admin reads why in hush.root_key_status(), and the
server log has it. (The DROP guard's confirmation, which a setting used to
carry, is in tests/test_drop_guard.py.)"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from helpers import raises_sqlstate, save

MARK = "hush-settings-leak-marker"


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@pytest.fixture
def server_setting(db: Any) -> Iterator[Any]:
    """ALTER SYSTEM a hush setting for one test (known to the session first: a placeholder)."""
    changed: list[str] = []

    def set_to(name: str, value: str) -> None:
        with db.connect() as su:
            su.execute(f"SET {name} = ''")
            su.execute(f"ALTER SYSTEM SET {name} = {_literal(value)}")
            su.execute("SELECT pg_reload_conf()")
        changed.append(name)
    yield set_to
    with db.connect() as su:
        for name in changed:
            su.execute(f"SET {name} = ''")
            su.execute(f"ALTER SYSTEM RESET {name}")
        su.execute("SELECT pg_reload_conf()")


def test_any_role_reads_the_key_settings(db: Any, cluster: Any) -> None:
    """The limitation the docs state: the settings themselves are no secret."""
    assert db.sql("SELECT current_setting('hush.root_key_file', true)", user="otto") == [(str(cluster.keyfile),)]


@pytest.mark.parametrize("setting", ["hush.root_key_file", "hush.root_key_command"])
def test_keyring_failures_name_no_path_to_application_roles(db: Any, cluster: Any, server_setting: Any,
                                                            setting: str) -> None:
    where = str(cluster.base / "keys" / MARK)
    server_setting(setting, where + (" --token=" + MARK + "-argument" if setting.endswith("command") else ""))
    log_before = cluster.log.stat().st_size
    notices: list[str] = []
    with db.connect("alice") as alice:
        alice.add_notice_handler(lambda d: notices.append(str(d.message_primary)))
        alice.execute("SET client_min_messages = log")
        with raises_sqlstate("SH030") as ei:
            save(alice, "acme", "k", "v")
    told = " ".join(filter(None, [str(ei.value), ei.value.diag.message_hint, ei.value.diag.message_detail,
                                  *notices]))
    assert MARK not in told
    assert "could not be loaded" in str(ei.value)
    assert "hush.root_key_status()" in (ei.value.diag.message_hint or "")
    # The server log has why.
    with open(cluster.log, errors="replace") as f:
        f.seek(log_before)
        assert MARK in f.read()
    # An admin reads it in root_key_status (a warning), without the command's arguments.
    warnings: list[str] = []
    with db.connect("adam") as adam:
        adam.add_notice_handler(lambda d: warnings.append(str(d.message_primary)))
        adam.execute("SELECT * FROM hush.root_key_status()").fetchall()
    assert any(MARK in w for w in warnings), warnings
    assert not any(MARK + "-argument" in w for w in warnings)
    assert db.sql("SELECT count(*) FROM hush.secrets") == [(0,)]
