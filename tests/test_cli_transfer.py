"""hush import, export and run: what a file round trip keeps, what export
reads, where its file's mode ends up, what run does with nothing to pass, and
how both leave out expired and destroyed secrets (or fail, with --strict)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from unittest import mock

from test_cli import HUSH, hush, ok


def reads(db: Any) -> list[str]:
    """The names whose values were read, as the audit trail has them."""
    return sorted(r[0] for r in db.sql("SELECT secret_name FROM hush.audit_log WHERE action = 'read'"))


def test_export_to_an_existing_file_makes_it_0600(db: Any, tmp_path: Path) -> None:
    ok(hush(db, "put", "acme", "A", input="value-a"))
    out = tmp_path / "out.env"
    out.write_text("old content that is longer than the export\n")
    out.chmod(0o644)
    ok(hush(db, "export", "acme", "-o", str(out)))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text() == "A=value-a\n"


def test_a_byte_order_mark_is_not_part_of_the_first_name(db: Any, tmp_path: Path) -> None:
    for name, text in (("bom.env", "FIRST=1\nSECOND=2\n"), ("bom.json", '{"FIRST": "1", "SECOND": "2"}')):
        f = tmp_path / name
        f.write_bytes(b"\xef\xbb\xbf" + text.encode())
        ok(hush(db, "import", "acme", str(f)))
    assert db.sql("SELECT name FROM hush.secrets ORDER BY name") == [("FIRST",), ("SECOND",)]


def test_env_export_reads_only_what_it_writes(db: Any, tmp_path: Path) -> None:
    for name in ("app/GOOD", "app/bad-name", "app/also bad"):
        ok(hush(db, "put", "acme", name, input="v"))
    out = tmp_path / "app.env"
    r = ok(hush(db, "export", "acme", "--prefix", "app/", "-o", str(out)))
    assert out.read_text() == "GOOD=v\n"
    assert "exported 1 secrets" in r.stderr and "skipped 2" in r.stderr
    assert reads(db) == ["app/GOOD"]  # skipped names were never decrypted, so never audited
    ok(hush(db, "export", "acme", "--format", "json"))
    assert reads(db) == ["app/GOOD", "app/GOOD", "app/also bad", "app/bad-name"]  # JSON takes any name


def test_json_export_and_import_keep_kind_description_tags_and_metadata(db: Any, tmp_path: Path) -> None:
    ok(hush(db, "put", "acme", "db/pw", "--kind", "password", "--description", "main db", "--tag", "prod",
            "--tag", "db", "--metadata", '{"owner": "ops", "rotate": 90}', input="pw-1"))
    ok(hush(db, "put", "acme", "plain", input="p"))
    ok(hush(db, "put", "acme", "key", "--kind", "api_key", "--tag", "prod", input="k"))
    dump = tmp_path / "acme.json"
    ok(hush(db, "export", "acme", "--format", "json", "-o", str(dump)))
    assert json.loads(dump.read_text())["db/pw"] == {
        "value": "pw-1", "kind": "password", "description": "main db", "tags": ["db", "prod"],  # sorted by the server
        "metadata": {"owner": "ops", "rotate": 90}}
    r = ok(hush(db, "import", "globex", str(dump), "--json", user="bob"))
    assert json.loads(r.stdout) == {"tenant": "globex", "imported": 3, "created": 3}

    def secrets(tenant: str, user: str) -> dict[str, Any]:
        return {s["name"]: {k: s[k] for k in ("value", "kind", "description", "tags", "metadata")}
                for s in (json.loads(ok(hush(db, "get", tenant, n, "--json", user=user)).stdout)
                          for n in ("db/pw", "plain", "key"))}
    assert secrets("globex", "bob") == secrets("acme", "alice")
    # --kind and --tag given on the command line win over the file's.
    ok(hush(db, "import", "globex", str(dump), "--kind", "token", "--tag", "restored", user="bob"))
    again = secrets("globex", "bob")
    assert {s["kind"] for s in again.values()} == {"token"}
    assert {tuple(s["tags"]) for s in again.values()} == {("restored",)}
    assert again["db/pw"]["description"] == "main db"


def test_json_import_names_a_bad_entry_and_imports_nothing(db: Any, tmp_path: Path) -> None:
    for body, said in (('{"a": {"valeu": "x"}}', "'a' must be a string, or an object"),
                       ('{"a": {"value": "x", "colour": "red"}}', "unknown fields: colour"),
                       ('{"a": "1", "b": {"value": "x", "tags": "prod"}}', "'b': \"tags\" has the wrong type")):
        f = tmp_path / "bad.json"
        f.write_text(body)
        r = hush(db, "import", "acme", str(f))
        assert r.returncode == 6 and said in r.stderr and "nothing was imported" in r.stderr, r.stderr
    assert db.sql("SELECT count(*) FROM hush.secrets") == [(0,)]


def test_run_with_no_secret_to_pass(db: Any) -> None:
    r = hush(db, "run", "acme", "--prefix", "prdo/", "--", "true")
    assert r.returncode == 3 and "no secret of acme under 'prdo/'" in r.stderr and "--allow-empty" in r.stderr
    ok(hush(db, "put", "acme", "only/not-a-variable", input="v"))
    r = hush(db, "run", "acme", "--prefix", "only/", "--", "true")
    assert r.returncode == 3 and "skipped 1" in r.stderr
    # --allow-empty runs it anyway, and says so.
    child = subprocess.run([HUSH, "run", "acme", "--prefix", "prdo/", "--allow-empty", "--", "sh", "-c", "exit 7"],
                           env={**os.environ, "HUSH_DSN": db.dsn("alice")}, capture_output=True, text=True)
    assert child.returncode == 7 and "running sh without any" in child.stderr


def unreadable_tenant(db: Any) -> None:
    """acme: two good secrets, one expired, one whose current version is destroyed
    (an older version destroyed, as in GOOD_B, leaves a secret readable)."""
    ok(hush(db, "put", "acme", "GOOD_A", input="value-a"))
    for value in ("old-b", "value-b"):
        ok(hush(db, "put", "acme", "GOOD_B", input=value))
    ok(hush(db, "destroy", "acme", "GOOD_B", "--version", "1", "--yes"))
    # `hush put` refuses a past --expires-at; the library does not.
    db.sql("SELECT hush.save_secret(%s, %s, %s, expires_at => %s)", ["acme", "OLD", "value-old", "2001-01-01"],
           user="alice")
    for value in ("gone-1", "gone-2"):
        ok(hush(db, "put", "acme", "GONE", input=value))
    ok(hush(db, "destroy", "acme", "GONE", "--version", "2", "--yes"))


def skipped_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("hush: skipped")]


def assert_skipped_both(stderr: str) -> None:
    lines = skipped_lines(stderr)
    assert len(lines) == 2, stderr
    assert lines[0].startswith("hush: skipped acme/GONE: current version 2 destroyed")
    assert lines[1].startswith("hush: skipped acme/OLD: expired at 2001-01-0")  # local time, with its offset
    assert "value-" not in stderr and "gone-" not in stderr


def test_run_skips_expired_and_destroyed_secrets(db: Any) -> None:
    unreadable_tenant(db)
    child = subprocess.run([HUSH, "run", "acme", "--", "env"], env={**os.environ, "HUSH_DSN": db.dsn("alice")},
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    env = dict(line.split("=", 1) for line in child.stdout.splitlines() if "=" in line)
    assert (env["GOOD_A"], env["GOOD_B"]) == ("value-a", "value-b")
    assert "OLD" not in env and "GONE" not in env
    assert_skipped_both(child.stderr)
    assert reads(db) == ["GOOD_A", "GOOD_B"]  # each good value read once; the others never opened
    # --strict: fails as before (exit 7, the command does not run), reading nothing.
    r = hush(db, "run", "acme", "--strict", "--", "env")
    assert r.returncode == 7 and r.stderr.startswith("Error: ") and "[SH01" in r.stderr, r.stderr
    assert reads(db) == ["GOOD_A", "GOOD_B"]
    # Nothing readable left under a prefix: nothing to pass, exit 3, as with no secret at all.
    r = hush(db, "run", "acme", "--prefix", "GON", "--", "env")
    assert r.returncode == 3 and skipped_lines(r.stderr) == ["hush: skipped acme/GONE: current version 2 destroyed "
                                                              "(--strict fails instead)"]


def test_export_skips_expired_and_destroyed_secrets(db: Any, tmp_path: Path) -> None:
    unreadable_tenant(db)
    r = ok(hush(db, "export", "acme"))
    assert r.stdout == "GOOD_A=value-a\nGOOD_B=value-b\n"
    assert_skipped_both(r.stderr)
    r = ok(hush(db, "export", "acme", "--format", "json"))
    assert {name: item["value"] for name, item in json.loads(r.stdout).items()} == {"GOOD_A": "value-a",
                                                                                    "GOOD_B": "value-b"}
    assert_skipped_both(r.stderr)
    out = tmp_path / "acme.env"
    r = ok(hush(db, "export", "acme", "-o", str(out)))
    assert out.read_text() == "GOOD_A=value-a\nGOOD_B=value-b\n" and "exported 2 secrets" in r.stderr
    assert reads(db) == ["GOOD_A"] * 3 + ["GOOD_B"] * 3
    for fmt in ("env", "json"):
        r = hush(db, "export", "acme", "--format", fmt, "--strict", "-o", str(tmp_path / f"strict.{fmt}"))
        assert r.returncode == 7 and r.stderr.startswith("Error: "), r.stderr
        assert r.stdout == "" and not (tmp_path / f"strict.{fmt}").exists()
    assert reads(db) == ["GOOD_A"] * 3 + ["GOOD_B"] * 3


def test_a_secret_that_expires_after_the_listing_is_skipped_too(db: Any) -> None:
    """The server's clock says expired only once the values are read: the batch it fails is
    read again in halves (small batches here), and every other value is read exactly once."""
    names = [f"K{i:02d}" for i in range(11)]
    for name in names:
        ok(hush(db, "put", "acme", name, input=f"value-{name}"))
    db.sql("SELECT hush.save_secret(%s, %s, %s, expires_at => %s)", ["acme", "K03", "v", "2001-01-01"], user="alice")
    ok(hush(db, "put", "acme", "K08", input="v2"))
    ok(hush(db, "destroy", "acme", "K08", "--version", "2", "--yes"))
    long_ago = datetime(2000, 1, 1, tzinfo=timezone.utc)  # as if listed before K03 expired
    with mock.patch("hush.cli._transfer.READ_BATCH", 4), mock.patch("hush.cli._transfer.server_now",
                                                                    return_value=long_ago):
        r = ok(hush(db, "export", "acme"))
    good = [n for n in names if n not in ("K03", "K08")]
    assert r.stdout == "".join(f"{n}=value-{n}\n" for n in good)
    assert [line.split(": ")[1] for line in skipped_lines(r.stderr)] == ["skipped acme/K03", "skipped acme/K08"]
    assert "K03: expired at 2001-01-0" in r.stderr and "K08: current version 2 destroyed" in r.stderr
    assert reads(db) == good
