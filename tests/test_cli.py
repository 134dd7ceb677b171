"""The `hush` command against the real server: output, --json, stdin values,
exit codes, import/export, run, keygen, init, keys (`hush dev`:
tests/test_dev_cluster.py).

Most tests run the CLI in this process through click's CliRunner (an
interpreter start per call was half of the suite's time); those about the
process itself (the console script's exit code, `hush run` under `ps`, the
no-echo prompt on a terminal) run the console script.
"""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import pytest
from click.testing import CliRunner

from hush.cli import build

HUSH = str(Path(sys.executable).parent / "hush")
PLPYTHON = Path(__file__).resolve().parent.parent / "plpython"
CLI = build()


@dataclass
class Run:
    """What a shell would see of one `hush` invocation."""

    returncode: int
    stdout: str
    stderr: str


def _no_exec(*_: Any) -> None:
    raise AssertionError("hush run would replace the test process: run it through the console script")


def invoke(*args: str, input: str | bytes = "", env: dict[str, str | None] | None = None) -> Run:
    """`hush ARGS` in this process. An exception the CLI let escape is re-raised: from
    the console script, the user would have seen a traceback."""
    with mock.patch("os.execve", _no_exec):
        result = CliRunner().invoke(CLI, list(args), input=input, env=env, prog_name="hush")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        raise result.exception.with_traceback(result.exc_info[2])
    return Run(result.exit_code, result.stdout, result.stderr)


def hush(db: Any, *args: str, user: str = "alice", input: str | bytes | None = None,
         env: dict[str, str | None] | None = None) -> Run:
    """`hush ARGS` as USER of the test database, with INPUT piped to stdin."""
    return invoke(*args, input=input if input is not None else "", env={"HUSH_DSN": db.dsn(user), **(env or {})})


def ok(result: Run) -> Run:
    assert result.returncode == 0, result.stderr
    return result


def typed_at_prompts(db: Any, args: list[str], prompts: list[bytes], value: bytes) -> bytes:
    """The console script `hush ARGS` as alice on a terminal of its own (the prompt path),
    `value` typed at each of `prompts`; what the terminal showed. The process must exit 0."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:  # the child
        os.environ["HUSH_DSN"] = db.dsn("alice")
        os.execv(HUSH, [HUSH, *args])
    out = b""
    # Answer each prompt only once it is shown: getpass turns echo off (and flushes
    # pending input) before it prints the prompt, so a typed value is never echoed.
    for prompt in prompts:
        seen = len(out)
        while prompt not in out[seen:]:
            out += os.read(fd, 1024)
        os.write(fd, value + b"\n")
    try:
        while chunk := os.read(fd, 1024):
            out += chunk
    except OSError:  # the child closed the terminal
        pass
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out


def test_help_everywhere(db: Any) -> None:
    top = ok(hush(db, "--help"))
    commands = ["keygen", "init", "grant", "revoke", "put", "get", "ls", "search", "history", "rm", "restore",
                "destroy", "import", "export", "run", "keys", "audit", "oauth", "oauth-worker", "dev"]
    for name in commands:
        assert name in top.stdout
        assert "Usage: hush " + name in ok(hush(db, name, "--help")).stdout
    for sub in ("start", "stop", "status"):
        assert ok(hush(db, "dev", sub, "-h")).stdout.startswith("Usage: hush dev " + sub)
    assert "Exit codes" in top.stdout
    assert hush(db, "nosuch").returncode == 2


def test_put_from_stdin_and_file_get_and_json(db: Any, tmp_path: Path) -> None:
    r = ok(hush(db, "put", "acme", "db/pw", "--tag", "prod", "--kind", "password", "--description", "main db",
                input="s3cret\n"))
    assert "version 1" in r.stderr and "s3cret" not in r.stderr + r.stdout
    assert ok(hush(db, "get", "acme", "db/pw")).stdout == "s3cret\n"   # one trailing newline dropped on put
    assert ok(hush(db, "get", "acme", "db/pw", "-n")).stdout == "s3cret"
    f = tmp_path / "v"
    f.write_text("line1\nline2\n")
    ok(hush(db, "put", "acme", "db/pw", "--from-file", str(f), "--keep-newline"))
    data = json.loads(ok(hush(db, "get", "acme", "db/pw", "--json")).stdout)
    assert data["value"] == "line1\nline2\n" and data["version"] == 2 and data["kind"] == "password"
    assert data["tags"] == ["prod"] and data["tenant_id"] == "acme"
    assert ok(hush(db, "get", "acme", "db/pw", "--version", "1", "-n")).stdout == "s3cret"
    saved = json.loads(ok(hush(db, "put", "acme", "m", "--metadata", '{"team": "x"}', "--json", input="v")).stdout)
    assert saved["version"] == 1 and saved["name"] == "m"
    assert json.loads(ok(hush(db, "get", "acme", "m", "--json")).stdout)["metadata"] == {"team": "x"}


def test_ls_search_history_rm_restore_destroy(db: Any) -> None:
    for name in ("app/a", "app/b", "other"):
        ok(hush(db, "put", "acme", name, "--tag", "t1" if name != "other" else "t2", "--description",
                f"about {name}", input="v"))
    table = ok(hush(db, "ls", "acme")).stdout.splitlines()
    assert table[0].split() == ["NAME", "KIND", "VERSION", "STATE", "UPDATED", "TAGS", "DESCRIPTION"]
    assert [line.split()[0] for line in table[1:]] == ["app/a", "app/b", "other"]
    page = json.loads(ok(hush(db, "ls", "acme", "--prefix", "app/", "--per-page", "1", "--json")).stdout)
    assert [d["name"] for d in page["data"]] == ["app/a"] and page["total"] == 2 and page["total_pages"] == 2
    assert page["next_after"] == "app/a" and "value" not in page["data"][0]
    nxt = json.loads(ok(hush(db, "ls", "acme", "--after", "app/a", "--per-page", "1", "--json")).stdout)
    assert [d["name"] for d in nxt["data"]] == ["app/b"]
    assert [d["name"] for d in json.loads(ok(hush(db, "ls", "acme", "--tag", "t2", "--json")).stdout)["data"]] \
        == ["other"]
    assert [d["name"] for d in json.loads(ok(hush(db, "search", "acme", "ABOUT APP", "--json")).stdout)["data"]] \
        == ["app/a", "app/b"]
    ok(hush(db, "put", "acme", "other", input="v2"))
    hist = json.loads(ok(hush(db, "history", "acme", "other", "--json")).stdout)
    assert [(h["version"], h["is_current"]) for h in hist] == [(1, False), (2, True)]
    assert "current" in ok(hush(db, "history", "acme", "other")).stdout
    ok(hush(db, "rm", "acme", "other"))
    assert hush(db, "get", "acme", "other").returncode == 3
    assert ["other", "generic", "2", "deleted"] in [line.split()[:4] for line in
                                                    ok(hush(db, "ls", "acme", "--deleted")).stdout.splitlines()]
    assert json.loads(ok(hush(db, "restore", "acme", "other", "--json")).stdout)["version"] == 2
    refused = hush(db, "destroy", "acme", "other", "--version", "1")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert json.loads(ok(hush(db, "destroy", "acme", "other", "--version", "1", "--yes", "--json")).stdout)[
        "destroyed"] == 1
    assert hush(db, "get", "acme", "other", "--version", "1").returncode == 7


@pytest.mark.parametrize("args,user,code", [
    (["get", "acme", "missing"], "alice", 3),
    (["get", "globex", "x"], "alice", 4),
    (["get", "acme", "x"], "otto", 4),
    (["put", "acme", "k", "--expect-version", "5"], "alice", 5),
    (["put", "acme", ""], "alice", 6),
    (["put", "acme", "k", "--metadata", "{not json"], "alice", 6),
    (["ls", "acme", "--per-page", "0"], "alice", 6),
    (["get", "acme", "expired"], "alice", 7),
])
def test_exit_codes(db: Any, args: list[str], user: str, code: int) -> None:
    ok(hush(db, "put", "acme", "k", input="v"))
    # `hush put` refuses a past --expires-at; the library does not.
    db.sql("SELECT hush.save_secret(%s, %s, %s, expires_at => %s)", ["acme", "expired", "v", "2001-01-01"],
           user="alice")
    r = hush(db, *args, user=user, input="value-never-shown")
    assert r.returncode == code, r.stderr
    assert r.stderr.startswith("Error: ") and "value-never-shown" not in r.stderr


def test_cannot_connect(db: Any) -> None:
    r = subprocess.run([HUSH, "--dsn", "host=/nonexistent port=1", "ls", "acme"], capture_output=True, text=True)
    assert r.returncode == 9 and "cannot connect" in r.stderr


def test_prompt_does_not_echo(db: Any) -> None:
    out = typed_at_prompts(db, ["put", "acme", "prompted"], [b"Value: ", b"Repeat for confirmation: "],
                           b"typed-secret")
    assert b"typed-secret" not in out  # never echoed
    assert ok(hush(db, "get", "acme", "prompted", "-n")).stdout == "typed-secret"


def test_import_10000_line_env_file_all_or_nothing(db: Any, tmp_path: Path) -> None:
    env = tmp_path / "big.env"
    env.write_text("# generated\n" + "".join(f"KEY_{i}=value-{i}\n" for i in range(10_000)))
    r = ok(hush(db, "import", "acme", str(env), "--json"))
    assert json.loads(r.stdout) == {"tenant": "acme", "imported": 10_000, "created": 10_000}
    assert "importing into acme" in r.stderr
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE tenant_id = 'acme'") == [(10_000,)]
    assert ok(hush(db, "get", "acme", "KEY_9999", "-n")).stdout == "value-9999"
    # A bad name on the last line: nothing of the file is saved.
    bad = tmp_path / "bad.env"
    bad.write_text("".join(f"NEW_{i}=v\n" for i in range(9_999)) + "bad\x01name=v\n")
    r = hush(db, "import", "acme", str(bad))
    assert r.returncode == 6, r.stderr
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE tenant_id = 'acme'") == [(10_000,)]


def test_import_reports_bad_lines_without_values(db: Any, tmp_path: Path) -> None:
    for text, line in (("A=1\nB=\"never closed secret-ish\n", 2), ("A=1\nnot a pair\n", 2), ("A=1\nA=2\n", 2)):
        f = tmp_path / "x.env"
        f.write_text(text)
        r = hush(db, "import", "acme", str(f))
        assert r.returncode == 6 and f"line {line}" in r.stderr and "secret-ish" not in r.stderr
    f = tmp_path / "x.json"
    f.write_text('{"a": 1}')
    assert hush(db, "import", "acme", str(f)).returncode == 6
    assert db.sql("SELECT count(*) FROM hush.secrets") == [(0,)]


def test_export_then_import_round_trips(db: Any, tmp_path: Path) -> None:
    values = {"PLAIN": "abc", "SPACES": "  padded  ", "QUOTES": "it's \"quoted\"", "MULTI": "a\nb\r\n\tc",
              "DOLLAR": "$HOME ${X}", "HASH": "a #b", "EMPTY": "", "UNICODE": "clé ✓", "BACKSLASH": "a\\nb"}
    src = tmp_path / "in.json"
    src.write_text(json.dumps(values))
    ok(hush(db, "import", "acme", str(src)))
    out = tmp_path / "out.env"
    ok(hush(db, "export", "acme", "-o", str(out)))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    ok(hush(db, "import", "globex", str(out), user="postgres"))
    back = json.loads(ok(hush(db, "export", "globex", "--format", "json", user="postgres")).stdout)
    assert {name: item["value"] for name, item in back.items()} == values
    assert ok(hush(db, "export", "acme", "--format", "json", "--prefix", "MU")).stdout.count("MULTI") == 1


def test_env_names_that_are_not_variables_are_skipped_on_export(db: Any) -> None:
    ok(hush(db, "put", "acme", "app/good_one", input="1"))
    ok(hush(db, "put", "acme", "app/bad-one", input="2"))
    r = ok(hush(db, "export", "acme", "--prefix", "app/"))
    assert r.stdout == "good_one=1\n" and "bad-one" in r.stderr


def test_run_injects_variables_never_in_argv(db: Any, tmp_path: Path) -> None:
    canary = f"run-canary-{uuid.uuid4()}"
    ok(hush(db, "put", "acme", "prod/API_KEY", input=canary))
    ok(hush(db, "put", "acme", "prod/not-a-var", input="x"))
    out = tmp_path / "child.out"
    child = subprocess.Popen(
        [HUSH, "run", "acme", "--prefix", "prod/", "--", "sh", "-c", f'printf %s "$API_KEY" > {out}; sleep 3; exit 42'],
        env={**os.environ, "HUSH_DSN": db.dsn("alice")}, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (out.exists() and out.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    ps = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True).stdout
    assert "sleep 3" in ps  # the child is running while we look...
    assert canary not in ps  # ...and the value is in no process's arguments
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 42  # the command's exit code is hush run's
    assert out.read_text() == canary
    assert "not-a-var" in stderr and canary not in stderr
    r = hush(db, "run", "acme", "--prefix", "prod/", "--", "no-such-command-here")
    assert r.returncode == 127 and "command not found" in r.stderr


def test_keygen_writes_a_0600_keyring_and_prints_the_key_id(db: Any, tmp_path: Path) -> None:
    sys.path.insert(0, str(PLPYTHON))
    from hush_plpy.keyring import key_id, parse  # the extension's own derivation
    path = tmp_path / "root.keys"
    kid = ok(hush(db, "keygen", str(path))).stdout.strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = parse(path.read_text(), str(path))
    assert list(keys) == [kid] and key_id(next(iter(keys.values()))) == kid
    assert base64.b64encode(keys[kid]).decode() not in ok(hush(db, "keygen", str(tmp_path / "b"))).stdout
    assert hush(db, "keygen", str(path)).returncode == 6  # never overwrites a keyring
    kid2 = json.loads(ok(hush(db, "keygen", str(path), "--append", "--json")).stdout)["key_id"]
    assert list(parse(path.read_text(), str(path))) == [kid, kid2]
    path.chmod(0o640)
    assert hush(db, "keygen", str(path), "--append").returncode == 6


def test_init_grant_revoke(cluster: Any, tmp_path: Path) -> None:
    name = f"init_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        su.execute(f"CREATE DATABASE {name}")
    try:
        env: dict[str, str | None] = {"HUSH_DSN": cluster.dsn(name)}
        info = json.loads(ok(invoke("init", "--json", env=env)).stdout)
        sys.path.insert(0, str(PLPYTHON))
        from hush_plpy.keyring import key_id
        assert info["active_key_id"] == key_id(base64.b64decode(cluster.key_lines[0]))
        assert info["database"] == name and info["version"]
        assert "hush grant" in ok(invoke("init", env=env)).stdout  # again: idempotent
        with psycopg.connect(cluster.dsn(name), autocommit=True) as su:
            su.execute("CREATE ROLE init_app LOGIN IN ROLE hush_writer")
            ok(invoke("grant", "init_app", "t1", env=env))
            assert su.execute("SELECT role_name::text, tenant_id FROM hush.tenant_grants").fetchall() == \
                [("init_app", "t1")]
            ok(invoke("revoke", "init_app", "t1", env=env))
            assert su.execute("SELECT count(*) FROM hush.tenant_grants").fetchone() == (0,)
    finally:
        with psycopg.connect(cluster.dsn(), autocommit=True) as su:
            su.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            su.execute("DROP ROLE IF EXISTS init_app")


def test_keys_status_add_activate_retire(db: Any, cluster: Any) -> None:
    from test_keys import key_id
    first, second = key_id(cluster.key_lines[0]), key_id(cluster.key_lines[1])
    ok(hush(db, "put", "acme", "k", input="v"))
    st = {r["key_id"]: r for r in json.loads(ok(hush(db, "keys", "status", "--json", user="adam")).stdout)}
    assert (st[first]["state"], st[first]["data_keys"]) == ("active", 1) and st[second]["state"] == "unregistered"
    table = ok(hush(db, "keys", "status", user="adam")).stdout
    assert table.split("\n")[0].split()[:3] == ["KEY", "ID", "STATE"] and second in table
    assert json.loads(ok(hush(db, "keys", "add", second, "--json", user="adam")).stdout)["state"] == "decrypt_only"
    ok(hush(db, "keys", "activate", second, user="adam"))
    assert hush(db, "keys", "retire", first, user="adam").returncode == 5  # still seals a data key
    assert hush(db, "keys", "activate", "f" * 32, user="adam").returncode == 3
    assert hush(db, "keys", "status", user="alice").returncode == 4  # not an admin
    ok(hush(db, "put", "acme", "k", input="v2"))
    assert [h["key_id"] for h in json.loads(ok(hush(db, "history", "acme", "k", "--json")).stdout)] == [first, second]
    r = ok(hush(db, "keys", "rewrap", "--batch-size", "1", "--json", user="adam"))
    assert json.loads(r.stdout) == {"rewrapped": 1} and "re-sealing data keys" in r.stderr
    assert [h["key_id"] for h in json.loads(ok(hush(db, "history", "acme", "k", "--json")).stdout)] == [second, second]
    assert ok(hush(db, "get", "acme", "k", "--version", "1", "-n")).stdout == "v"
    ok(hush(db, "keys", "retire", first, user="adam"))
    assert hush(db, "keys", "rewrap", "--batch-size", "0", user="adam").returncode == 6


def test_ls_and_search_show_each_secrets_state(db: Any) -> None:
    ok(hush(db, "put", "acme", "good", input="v"))
    db.sql("SELECT hush.save_secret(%s, %s, %s, expires_at => %s)", ["acme", "old", "v", "2001-01-01"], user="alice")
    for value in ("v1", "v2"):
        ok(hush(db, "put", "acme", "gone", input=value))
        ok(hush(db, "put", "acme", "older-destroyed", input=value))
    ok(hush(db, "destroy", "acme", "gone", "--version", "2", "--yes"))             # the current version
    ok(hush(db, "destroy", "acme", "older-destroyed", "--version", "1", "--yes"))  # an old one: still readable
    ok(hush(db, "put", "acme", "removed", input="v"))
    ok(hush(db, "rm", "acme", "removed"))
    want = {"gone": "destroyed", "good": "active", "old": "expired", "older-destroyed": "active"}

    def table(*args: str, user: str = "alice") -> dict[str, str]:
        lines = ok(hush(db, *args, user=user)).stdout.splitlines()
        head = lines[0].split()
        assert head[:4] == ["NAME", "KIND", "VERSION", "STATE"]
        return {line.split()[0]: line.split()[3] for line in lines[1:]}

    assert table("ls", "acme") == want  # deleted secrets only with --deleted
    assert table("ls", "acme", "--deleted") == {**want, "removed": "deleted"}
    listed = json.loads(ok(hush(db, "ls", "acme", "--deleted", "--json")).stdout)["data"]
    assert {d["name"]: d["state"] for d in listed} == {**want, "removed": "deleted"}
    assert {d["name"]: d["state"] for d in json.loads(ok(hush(db, "search", "acme", "o", "--json")).stdout)["data"]} \
        == want
    assert table("search", "acme", "gone") == {"gone": "destroyed"}
    # A hush_reader sees the same; and finding the states read no value.
    assert table("ls", "acme", user="rita") == want
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'read'") == [(0,)]
