"""Ordinary mistakes and environment problems end in one line, the documented
exit code and nothing written: never a traceback (tests/test_cli.py's helper
re-raises anything the CLI lets escape, which a shell would show as one)."""
from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path
from typing import Any

import pytest

from hush import _errors as E
from hush.cli._common import failure
from test_cli import hush, invoke, ok


def one_line_error(r: Any, code: int) -> str:
    """The message of a failed run: exit code `code`, and a single line on stderr saying what went wrong."""
    assert r.returncode == code, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and "Traceback" not in r.stderr, r.stderr
    return last


def secret_count(db: Any) -> int:
    return int(db.sql("SELECT count(*) FROM hush.secrets")[0][0])


def test_missing_files_are_usage_errors(db: Any, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.env")
    assert "does not exist" in one_line_error(hush(db, "import", "acme", missing), 2)
    assert "does not exist" in one_line_error(hush(db, "put", "acme", "k", "--from-file", missing), 2)
    assert "does not exist" in one_line_error(
        hush(db, "oauth", "provider", "add", "acme", "idp", "--client-id", "app", "--token-endpoint",
             "http://127.0.0.1/token", "--client-secret-from-file", missing), 2)
    assert secret_count(db) == 0


def test_binary_stdin_is_refused_without_showing_it(db: Any, tmp_path: Path) -> None:
    line = one_line_error(hush(db, "put", "acme", "k", input=b"ok\n\xff\xfe-secret-bytes"), 6)
    assert "not UTF-8" in line and "line 2" in line and "secret-bytes" not in line and "xff" not in line
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"A=1\nB=\xff\n")
    assert "not UTF-8" in one_line_error(hush(db, "import", "acme", str(binary)), 6)
    assert "not UTF-8" in one_line_error(hush(db, "import", "acme", "-", input=b"A=\xc3\x28\n"), 6)
    assert secret_count(db) == 0


def test_an_empty_value_needs_allow_empty(db: Any, tmp_path: Path) -> None:
    for stdin in ("", "\n"):
        assert "--allow-empty" in one_line_error(hush(db, "put", "acme", "k", input=stdin), 6)
    empty = tmp_path / "empty"
    empty.write_text("")
    assert "is empty" in one_line_error(hush(db, "put", "acme", "k", "--from-file", str(empty)), 6)
    assert secret_count(db) == 0
    ok(hush(db, "put", "acme", "k", "--allow-empty", input=""))
    assert ok(hush(db, "get", "acme", "k")).stdout == "\n"
    # A client secret is no different; a public client has none to give.
    line = one_line_error(hush(db, "oauth", "provider", "add", "acme", "idp", "--client-id", "app",
                               "--token-endpoint", "http://127.0.0.1/token", input=""), 6)
    assert "--auth-method none" in line


def test_expires_at_in_the_past_is_a_usage_error(db: Any) -> None:
    r = hush(db, "put", "acme", "k", "--expires-at", "2001-01-01", input="v")
    assert "in the past" in one_line_error(r, 2)
    assert secret_count(db) == 0
    ok(hush(db, "put", "acme", "k", "--expires-at", "2999-01-01", input="v"))


def test_keygen_checks_everything_before_writing_a_key(tmp_path: Path) -> None:
    nodir = tmp_path / "nodir" / "root.keys"
    assert "install -d -m 700" in one_line_error(invoke("keygen", str(nodir)), 2)
    assert not nodir.parent.exists()
    path = tmp_path / "root.keys"
    assert "no OS user named" in one_line_error(invoke("keygen", str(path), "--owner", "no-such-user-x"), 2)
    assert not path.exists()  # the key file is written only once every check passed
    ok(invoke("keygen", str(path), "--owner", pwd.getpwuid(os.getuid()).pw_name))
    assert path.exists()


def test_a_dsn_typo_is_a_connect_failure(db: Any) -> None:
    line = one_line_error(invoke("--dsn", "hots=/tmp dbname=x", "ls", "acme"), 9)
    assert 'invalid connection option "hots"' in line and "HUSH_DSN" in line and "[None]" not in line


def test_permission_denied_says_which_grants_are_missing(db: Any) -> None:
    line = one_line_error(hush(db, "get", "acme", "x", user="otto"), 4)
    assert "permission denied" in line and "[42501]" in line
    assert "GRANT hush_reader TO otto" in line and "hush grant otto TENANT" in line
    line = one_line_error(hush(db, "audit", "export", user="alice"), 4)
    assert "hush_auditor" in line and "[42501]" in line


def test_an_error_without_a_sqlstate_shows_none_of_it(db: Any) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = hush(db, "oauth", "provider", "add", "acme", "idp", "--client-id", "app", "--issuer-url",
             f"http://127.0.0.1:{port}", input="app-secret\n")
    line = one_line_error(r, 11)
    assert "discovery" in line and "[None]" not in line and "app-secret" not in r.stderr


@pytest.mark.parametrize("err,expected", [
    (E.OAuthError("the provider said no", error="access_denied"), "Error: the provider said no"),
    (E.HushError("no code at all"), "Error: no code at all"),
    (E.SecretNotFound("secret 'x' not found", hint="check the name"),
     "Error: secret 'x' not found (hint: check the name) [SH010]"),
])
def test_failure_lines(err: E.HushError, expected: str) -> None:
    assert f"Error: {failure(err).format_message()}" == expected


def test_an_unwritable_output_is_one_line(db: Any, tmp_path: Path) -> None:
    ok(hush(db, "put", "acme", "k", input="v"))
    target = tmp_path / "no" / "such" / "dir.env"
    line = one_line_error(hush(db, "export", "acme", "-o", str(target)), 1)
    assert line == f"Error: {target}: No such file or directory"
    line = one_line_error(hush(db, "audit", "export", "-o", str(target), user="audrey"), 1)
    assert str(target) in line and "No such file or directory" in line


def test_a_database_error_no_command_mapped_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import click
    import psycopg

    from hush.cli import COMMANDS, _common

    @click.command()
    def unmapped() -> None:
        raise psycopg.errors.InsufficientPrivilege("permission denied for table audit_log")
    monkeypatch.setattr(_common, "unmapped", unmapped, raising=False)
    monkeypatch.setitem(COMMANDS, "unmapped", ("_common", "unmapped", "A command that maps no error."))
    line = one_line_error(invoke("unmapped"), 4)
    assert line.startswith("Error: permission denied for table audit_log (hint: ROLE needs a hush role")
