"""`hush due`, `hush rotate` and the lifecycle options of `put`, `get` and `history`
(issue 21), against the real server as alice (hush_writer on acme) and rita (hush_reader):
what they print, --json, the exit codes monitoring branches on, and values that come from
stdin, a file or a no-echo prompt, never from argv."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hush.cli._lifecycle import parse_interval
from test_cli import hush, ok, typed_at_prompts

FAR = "2999-01-01T00:00:00+0000"  # --at: far enough that every schedule is past due


def versions(db: Any, name: str) -> list[tuple[int, str | None]]:
    return [(v["version"], v["stage"]) for v in json.loads(ok(hush(db, "history", "acme", name, "--json")).stdout)]


def test_help_names_the_commands_exit_codes_and_interval_form(db: Any) -> None:
    top = ok(hush(db, "--help")).stdout
    assert "rotate" in top and "due" in top and "12 something" in top and "13 something" in top
    due = ok(hush(db, "due", "--help")).stdout
    assert due.startswith("Usage: hush due") and "12" in due and "13" in due and "1d12h" in due
    rotate = ok(hush(db, "rotate", "--help")).stdout
    assert rotate.startswith("Usage: hush rotate") and "--new-value" in rotate and "never from" in rotate


@pytest.mark.parametrize("text,expected", [
    ("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("90m", timedelta(minutes=90)),
    ("45s", timedelta(seconds=45)), ("2w", timedelta(weeks=2)), ("1d12h", timedelta(days=1, hours=12)),
    (" 7D ", timedelta(days=7)), ("0", timedelta(0)),
])
def test_interval_form(text: str, expected: timedelta) -> None:
    assert parse_interval(text) == expected


@pytest.mark.parametrize("text", ["", "30", "1y", "3 months", "d", "1.5h", "-1d", "1d 2h", "99999999999999d"])
def test_interval_form_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_interval(text)


def test_due_exit_codes_and_json(db: Any) -> None:
    r = ok(hush(db, "due", "acme"))
    assert r.stdout.split() == ["NAME", "REASON", "DUE", "VERSION", "PENDING"]
    ok(hush(db, "put", "acme", "rot", "--rotate-every", "30d", input="v"))
    assert hush(db, "due", "acme", "--within", "1d").returncode == 0
    soon = hush(db, "due", "acme", "--within", "31d", user="rita")  # a reader may ask
    assert soon.returncode == 12, soon.stderr
    assert [line.split()[:2] for line in soon.stdout.splitlines()[1:]] == [["rot", "rotation_due"]]
    rows = json.loads(hush(db, "due", "acme", "--within", "31d", "--json").stdout)
    assert [(d["name"], d["reason"], d["rotate_every"], d["version"], d["pending_version"]) for d in rows] == \
        [("rot", "rotation_due", 30 * 86400.0, 1, None)]
    assert "value" not in rows[0]
    ok(hush(db, "put", "acme", "exp", "--expires-at", "2998-06-01", input="v"))
    late = hush(db, "due", "acme", "--within", "0", "--at", FAR, "--json")
    assert late.returncode == 13, late.stderr
    assert [(d["name"], d["reason"]) for d in json.loads(late.stdout)] == \
        [("rot", "rotation_overdue"), ("exp", "expired")]
    # One overdue row among rows merely due still exits 13.
    mixed = hush(db, "due", "acme", "--within", "60d", "--at", "2998-05-01T00:00:00+0000")
    assert [line.split()[1] for line in mixed.stdout.splitlines()[1:]] == ["rotation_overdue", "expiring"]
    assert mixed.returncode == 13
    bad = hush(db, "due", "acme", "--within", "1y")
    assert bad.returncode == 2 and "not an interval" in bad.stderr
    assert hush(db, "due", "globex").returncode == 4  # alice has no grant there


def test_put_stage_and_rotate_promotes(db: Any) -> None:
    ok(hush(db, "put", "acme", "k", input="one"))
    staged = ok(hush(db, "put", "acme", "k", "--stage", "pending", input="two"))
    assert "version 2" in staged.stderr and "pending" in staged.stderr
    assert ok(hush(db, "get", "acme", "k", "-n")).stdout == "one"
    assert ok(hush(db, "get", "acme", "k", "--stage", "pending", "-n", user="rita")).stdout == "two"
    assert versions(db, "k") == [(1, "current"), (2, "pending")]
    conflict = hush(db, "rotate", "acme", "k", "--expect-version", "1")  # not the pending version
    assert conflict.returncode == 5, conflict.stderr
    assert ok(hush(db, "get", "acme", "k", "-n")).stdout == "one"
    assert hush(db, "rotate", "acme", "k", user="rita").returncode == 4
    done = ok(hush(db, "rotate", "acme", "k", "--expect-version", "2"))
    assert "version 2 is current" in done.stderr
    assert ok(hush(db, "get", "acme", "k", "-n")).stdout == "two"
    assert ok(hush(db, "get", "acme", "k", "--stage", "previous", "-n")).stdout == "one"
    table = ok(hush(db, "history", "acme", "k")).stdout.splitlines()
    assert [line.split()[0] + " " + line.split()[-1] for line in table[1:]] == ["1 previous", "2 current"]
    nothing = hush(db, "rotate", "acme", "k")
    assert nothing.returncode == 3 and "pending" in nothing.stderr


def test_rotate_with_a_new_value_from_stdin_or_a_file(db: Any, tmp_path: Path) -> None:
    ok(hush(db, "put", "acme", "k", input="one"))
    saved = json.loads(ok(hush(db, "rotate", "acme", "k", "--new-value", "--json", input="two\n")).stdout)
    assert (saved["name"], saved["version"]) == ("k", 2)
    assert ok(hush(db, "get", "acme", "k", "-n")).stdout == "two"
    f = tmp_path / "v"
    f.write_text("three\n")
    ok(hush(db, "rotate", "acme", "k", "--from-file", str(f)))
    assert ok(hush(db, "get", "acme", "k", "-n")).stdout == "three"
    assert versions(db, "k") == [(1, None), (2, "previous"), (3, "current")]
    # A stale check-and-set fails before anything is staged.
    stale = hush(db, "rotate", "acme", "k", "--new-value", "--expect-version", "2", input="four")
    assert stale.returncode == 5, stale.stderr
    assert versions(db, "k") == [(1, None), (2, "previous"), (3, "current")]
    empty = hush(db, "rotate", "acme", "k", "--new-value", input="")
    assert empty.returncode == 6 and "empty" in empty.stderr
    missing = hush(db, "rotate", "acme", "nope", "--new-value", input="x")
    assert missing.returncode == 3
    assert ok(hush(db, "ls", "acme")).stdout.count("nope") == 0


def test_a_value_is_never_taken_from_argv(db: Any) -> None:
    ok(hush(db, "put", "acme", "k", input="one"))
    r = hush(db, "rotate", "acme", "k", "s3cret-in-argv", "--new-value", input="two")
    assert r.returncode == 2, r.stderr  # an extra argument is a usage error, never a value
    assert versions(db, "k") == [(1, "current")]
    # A value piped without --new-value is refused, not dropped while an older staging goes live.
    ok(hush(db, "put", "acme", "k", "--stage", "pending", input="staged-long-ago"))
    piped = hush(db, "rotate", "acme", "k", input="meant-to-go-live")
    assert piped.returncode == 2 and "--new-value" in piped.stderr
    assert versions(db, "k") == [(1, "current"), (2, "pending")]
    assert "--value " not in ok(hush(db, "rotate", "--help")).stdout


def test_put_sets_retention_and_schedule(db: Any) -> None:
    ok(hush(db, "put", "acme", "k", "--rotate-every", "90d", "--max-versions", "2",
            "--destroy-versions-after", "52w", input="v1"))
    meta = json.loads(ok(hush(db, "ls", "acme", "--json")).stdout)["data"][0]
    assert (meta["rotate_every"], meta["max_versions"], meta["destroy_versions_after"]) == \
        (90 * 86400.0, 2, 52 * 7 * 86400.0)
    for value in ("v2", "v3", "v4"):
        ok(hush(db, "put", "acme", "k", input=value))
    states = ok(hush(db, "history", "acme", "k")).stdout.splitlines()[1:]
    assert [line.split()[-1] for line in states] == ["destroyed", "destroyed", "previous", "current"]
    assert hush(db, "put", "acme", "k", "--rotate-every", "soon", input="v").returncode == 2


def test_rotate_prompts_without_echo(db: Any) -> None:
    ok(hush(db, "put", "acme", "k", input="one"))
    out = typed_at_prompts(db, ["rotate", "acme", "k", "--new-value"], [b"New value: ", b"Repeat for confirmation: "],
                           b"typed-rotation")
    assert b"typed-rotation" not in out  # never echoed
    assert ok(hush(db, "get", "acme", "k", "-n")).stdout == "typed-rotation"
