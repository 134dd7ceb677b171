"""hush import, export and run: what a file round trip keeps, what export
reads, where its file's mode ends up, and what run does with nothing to pass."""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

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
