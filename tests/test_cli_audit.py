"""hush audit seal|verify|export|tail|maintain through the console script."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_cli import hush, ok


def test_seal_verify_and_a_tampered_trail(db: Any) -> None:
    ok(hush(db, "put", "acme", "k", input="v"))
    ok(hush(db, "get", "acme", "k"))
    sealed = json.loads(ok(hush(db, "audit", "seal", "--json", user="audrey")).stdout)
    assert sealed["seals_created"] == 1 and sealed["unsealed_rows"] == 0
    out = ok(hush(db, "audit", "verify", user="audrey")).stdout
    assert out.startswith("ok: 1 seals") and sealed["head_hash"] in out
    db.sql("SET session_replication_role = replica; UPDATE hush.audit_log SET action = 'x' WHERE action = 'read'")
    r = hush(db, "audit", "verify", user="audrey")
    assert r.returncode == 10 and "TAMPERED: rows_changed" in r.stderr
    assert json.loads(hush(db, "audit", "verify", "--json", user="audrey").stdout)["problem"] == "rows_changed"
    # Retention refuses to run over it: exit 10 too.
    db.sql("INSERT INTO hush.audit_log (tenant_id, action, at) VALUES ('acme', 'old', now() - interval '3000 days')")
    ok(hush(db, "audit", "seal", user="adam"))
    r = hush(db, "audit", "maintain", user="adam")
    assert r.returncode == 10 and "retention:" in r.stderr and "SH041" in r.stderr
    # Application roles may not seal or read the trail itself.
    assert hush(db, "audit", "seal", user="alice").returncode == 4
    assert hush(db, "audit", "export", user="alice").returncode == 4


def test_export_filters_and_tail(db: Any, tmp_path: Path) -> None:
    ok(hush(db, "put", "acme", "a", input="value-a"))
    ok(hush(db, "put", "globex", "g", input="value-g", user="bob"))
    ok(hush(db, "get", "acme", "a"))
    everything = [json.loads(line) for line in ok(hush(db, "audit", "export", user="audrey")).stdout.splitlines()]
    assert len(everything) == db.sql("SELECT count(*) FROM hush.audit_log")[0][0]
    assert [(r["txid"], r["id"]) for r in everything] == sorted((r["txid"], r["id"]) for r in everything)
    acme_reads = ok(hush(db, "audit", "export", "--tenant", "acme", "--action", "read", user="audrey")).stdout
    assert [(r["tenant_id"], r["secret_name"]) for r in map(json.loads, acme_reads.splitlines())] == [("acme", "a")]
    assert ok(hush(db, "audit", "export", "--since", "2999-01-01", user="audrey")).stdout == ""
    out = tmp_path / "audit.jsonl"
    r = ok(hush(db, "audit", "export", "-o", str(out), user="adam"))
    assert f"exported {len(everything)} rows" in r.stderr and len(out.read_text().splitlines()) == len(everything)
    assert "value-" not in out.read_text()
    last = [json.loads(line) for line in ok(hush(db, "audit", "tail", "-n", "2", user="audrey")).stdout.splitlines()]
    assert [r["action"] for r in last] == ["create", "read"] and last[-1]["secret_name"] == "a"


def test_maintain_runs_every_task(db: Any) -> None:
    ok(hush(db, "put", "acme", "gone", input="v"))
    ok(hush(db, "rm", "acme", "gone"))
    db.sql("UPDATE hush.secrets SET deleted_at = now() - interval '40 days'")
    done = json.loads(ok(hush(db, "audit", "maintain", "--json", "--months-ahead", "1", user="adam")).stdout)
    assert len(done["partitions"]) == 2 and done["seal"][0]["seals_created"] == 1
    assert done["retention"][0]["rows_removed"] == 0
    assert done["purge"] == [{"tenant_id": "acme", "secrets_purged": 1}]
    text = ok(hush(db, "audit", "maintain", "--months-ahead", "1", user="adam")).stdout
    assert "partitions created: 0" in text and "purged: 0" in text
