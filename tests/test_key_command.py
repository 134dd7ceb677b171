"""hush.root_key_command: the keyring is what a command prints (run by the
server as its OS user, from the server configuration only); a failing, silent
or garbled command is SH030, its reason (naming the program, never its
arguments or output) for admins in hush.root_key_status()."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import get, raises_sqlstate, save

SAMPLE = Path(__file__).resolve().parent.parent / "tools" / "keys" / "keyring-from-file.sh"


def admin_reason(db: Any) -> str:
    """Why the keyring did not load, as an admin reads it (application roles are not told)."""
    warnings: list[str] = []
    with db.connect("adam") as adam:
        adam.add_notice_handler(lambda d: warnings.append(str(d.message_primary)))
        adam.execute("SELECT * FROM hush.root_key_status()").fetchall()
    return " ".join(warnings)


def set_command(db: Any, command: str | None) -> None:
    """ALTER SYSTEM needs the setting known to the session first (a placeholder)."""
    with db.connect() as su:
        su.execute("SET hush.root_key_command = ''")
        if command is None:
            su.execute("ALTER SYSTEM RESET hush.root_key_command")
        else:
            su.execute("ALTER SYSTEM SET hush.root_key_command = '%s'" % command.replace("'", "''"))


@pytest.fixture
def key_command(db: Any, cluster: Any) -> Iterator[Any]:
    """Set hush.root_key_command to a script written in the cluster's directory."""
    def use(body: str) -> Path:
        script = cluster.base / "keys" / "keyring-command.sh"
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
        cluster._chown(script)
        set_command(db, f"{script} --flag")
        return script
    yield use
    set_command(db, None)


def test_the_sample_script_feeds_the_keyring(db: Any, cluster: Any) -> None:
    sample = cluster.base / "keys" / "keyring-from-file.sh"  # where the server's OS user can run it
    sample.write_text(SAMPLE.read_text())
    sample.chmod(0o755)
    cluster._chown(sample)
    set_command(db, f"{sample} {cluster.keyfile}")
    db.sql("ALTER SYSTEM SET hush.root_key_file = '/nonexistent/root.keys'")  # only the command can help
    try:
        with db.connect("alice") as a:
            save(a, "acme", "k", "through-the-command")
            assert get(a, "acme", "k")["value"] == "through-the-command"
    finally:
        set_command(db, None)
        db.sql("ALTER SYSTEM RESET hush.root_key_file")
    with db.connect("alice") as a:  # the same keys through the file
        assert get(a, "acme", "k")["value"] == "through-the-command"


@pytest.mark.parametrize("body,message", [
    ("echo oops-secret-looking-output >&2\nexit 3\n", "exited with status 3"),
    ("exit 0\n", "holds no key"),
    ("echo not-a-key-but-secret-looking\n", "line 1: not a base64-encoded 32-byte key"),
    ("printf '\\377\\376'\n", "not ASCII"),
])
def test_command_failures_are_clear(db: Any, cluster: Any, key_command: Any, body: str, message: str) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "existing", "v")
    script = key_command(body)
    with db.connect("alice") as a:
        with raises_sqlstate("SH030") as ei:
            get(a, "acme", "existing")
        text = str(ei.value)
        assert "could not be loaded" in text and str(script) not in text  # the program: admins only
        with raises_sqlstate("SH030"):
            save(a, "acme", "new", "v")
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE name = 'new'") == [(0,)]
    text = admin_reason(db)
    assert message in text and str(script) in text
    assert "secret-looking" not in text and "--flag" not in text  # neither output nor arguments


def test_missing_command(db: Any, key_command: Any) -> None:
    script = key_command("")
    os.unlink(script)
    with db.connect("alice") as a, raises_sqlstate("SH030"):
        save(a, "acme", "k", "v")
    assert "cannot be run" in admin_reason(db)


def test_a_session_cannot_set_the_command(db: Any) -> None:
    with db.connect("alice") as a:
        a.execute("SET hush.root_key_command = '/bin/false'")
        save(a, "acme", "k", "v")  # ignored: only the server configuration counts
        assert get(a, "acme", "k")["value"] == "v"
