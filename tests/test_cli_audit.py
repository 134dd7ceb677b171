"""hush audit seal|verify|export|tail|maintain, and the action names it accepts."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

import docs_text
from helpers import imported
from hush._audit_actions import AUDIT_ACTIONS
from hush.cli import _audit
from test_cli import hush, ok

PLPYTHON = Path(__file__).resolve().parent.parent / "plpython" / "hush_plpy"


def test_seal_verify_and_a_tampered_trail(db: Any) -> None:
    ok(hush(db, "put", "acme", "k", input="v"))
    ok(hush(db, "get", "acme", "k"))
    sealed = json.loads(ok(hush(db, "audit", "seal", "--json", user="audrey")).stdout)
    assert sealed["seals_created"] == 1 and sealed["unsealed_rows"] == 0
    out = ok(hush(db, "audit", "verify", user="audrey")).stdout
    assert out.startswith("ok: 1 seals") and sealed["head_hash"] in out
    ok(hush(db, "audit", "verify", "--known-head", sealed["head_hash"], user="audrey"))
    r = hush(db, "audit", "verify", "--known-head", "0" * 64, user="audrey")  # a seal the chain lost
    assert r.returncode == 10 and "TAMPERED: seal_missing" in r.stderr
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


def test_tail_n_0_follow_prints_only_rows_that_come_later(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(hush(db, "put", "acme", "a", input="v"))
    ok(hush(db, "get", "acme", "a"))
    assert ok(hush(db, "audit", "tail", "-n", "0", user="audrey")).stdout == ""
    assert len(ok(hush(db, "audit", "tail", "-n", "1", user="audrey")).stdout.splitlines()) == 1
    state = {"polls": 0, "txid": None, "visible": False}

    class Clock:
        """Stands in for time in the follow loop: the first poll makes a row; the
        one after the row is past the seal horizon ends the loop like Ctrl-C."""

        @staticmethod
        def sleep(_: float) -> None:
            state["polls"] += 1
            if state["txid"] is None:
                db.sql("SELECT value FROM hush.get_secret('acme', 'a')", user="alice")
                state["txid"] = db.sql("SELECT max(txid) FROM hush.audit_log")[0][0]
                return
            if state["visible"] or state["polls"] > 200:
                raise KeyboardInterrupt
            state["visible"] = db.sql("SELECT pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot()) > %s",
                                      [state["txid"]])[0][0]
            time.sleep(0.05)

    monkeypatch.setattr(_audit, "time", Clock)
    out = ok(hush(db, "audit", "tail", "-n", "0", "-f", "--interval", "0", user="audrey")).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["action"], r["txid"]) for r in rows] == [("read", state["txid"])]


def test_action_names_are_listed_and_checked(db: Any) -> None:
    r = hush(db, "audit", "export", "--action", "get_secret", user="audrey")
    assert r.returncode == 2 and "'get_secret' is not one of 'read', 'create'" in r.stderr
    help_text = ok(hush(db, "audit", "tail", "--help")).stdout
    assert all(action in help_text for action in AUDIT_ACTIONS)


def test_action_list_matches_what_the_extension_writes() -> None:
    """The client's list is the extension's (plpython/hush_plpy/audit.py ACTIONS, which record()
    enforces); and every action written by SQL text in plpython/ is in it."""
    actions = imported("hush_plpy.audit").ACTIONS
    assert AUDIT_ACTIONS == actions
    src = "\n".join(p.read_text() for p in sorted(PLPYTHON.glob("*.py")))
    in_sql = set(re.findall(r"INSERT INTO hush\.audit_log \([^)]*\)\s*SELECT \$1, '([a-z_]+)'", src))
    # An action chosen by a CASE in the SELECT that feeds the insert (bulk.py).
    in_sql |= {a for pair in re.findall(r"SELECT \$1, CASE WHEN [^']* THEN '([a-z_]+)' ELSE '([a-z_]+)' END", src)
               for a in pair}
    in_sql |= set(re.findall(r'action="([a-z_]+)"', src))
    assert in_sql and in_sql <= set(actions)


def test_the_clients_list_is_generated_from_the_servers() -> None:
    """hush/_audit_actions.py is what tools/client_tables.py writes from ACTIONS."""
    client_tables = imported("client_tables", under="tools")
    assert client_tables.MODULE.read_text() == client_tables.render(), \
        "python_client/src/hush/_audit_actions.py is stale: run python3 tools/client_tables.py --write"


def test_readme_lists_the_same_actions() -> None:
    """The CLI's page lists the audit actions --action takes, in the client's order."""
    paragraph = docs_text.paragraph("Audit actions (`--action`):")
    assert re.findall(r"`([a-z_]+)`", paragraph) == list(AUDIT_ACTIONS)
