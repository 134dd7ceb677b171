"""hush access show|grant|revoke (issue 20): scoped grants from the shell, --json for
scripts, exit codes, and `hush grant/revoke ROLE TENANT` left the whole-tenant shorthand."""
from __future__ import annotations

import json
import itertools
from typing import Any, Iterator

import pytest

from test_cli import hush, ok

_names = itertools.count()


@pytest.fixture
def role(db: Any) -> Iterator[Any]:
    made: list[str] = []

    def make(hush_role: str) -> str:
        name = f"cli_scoped_{next(_names)}_{db.name}"
        db.sql(f"CREATE ROLE {name} LOGIN IN ROLE {hush_role}")
        made.append(name)
        return name
    yield make
    for name in made:
        db.sql(f"DROP ROLE IF EXISTS {name}")


def test_help(db: Any) -> None:
    assert "access" in ok(hush(db, "--help")).stdout
    top = ok(hush(db, "access", "--help")).stdout
    assert all(word in top for word in ("show", "grant", "revoke", "read", "oauth_manage", "Examples"))
    for sub in ("show", "grant", "revoke"):
        assert ok(hush(db, "access", sub, "--help")).stdout.startswith(f"Usage: hush access {sub} ")
    assert "--capability" in ok(hush(db, "access", "grant", "--help")).stdout
    assert "hush access grant" in " ".join(ok(hush(db, "grant", "--help")).stdout.split())  # points to it


def test_grant_show_revoke_as_json(db: Any, role: Any) -> None:
    pay = role("hush_reader")
    out = json.loads(ok(hush(db, "access", "grant", pay, "acme", "--prefix", "payments/", "-c", "read",
                             "--json", user="adam")).stdout)
    assert {k: out[k] for k in ("tenant_id", "role_name", "prefix", "capabilities", "granted_by", "notices")} == \
        {"tenant_id": "acme", "role_name": pay, "prefix": "payments/", "capabilities": ["read"],
         "granted_by": "adam", "notices": []}
    out = json.loads(ok(hush(db, "access", "grant", pay, "acme", "--prefix", "payments/", "--capability", "list",
                             "--capability", "audit", "--json", user="adam")).stdout)
    assert out["capabilities"] == ["read", "list", "audit"]
    # The role itself may look; what it holds, and why.
    shown = json.loads(ok(hush(db, "access", "show", pay, "acme", "--json", user=pay)).stdout)
    assert {(e["capability"], e["prefix"], e["grant_role"], e["implied_by"], e["callable"]) for e in shown} == \
        {("read", "payments/", pay, None, True), ("list", "payments/", pay, None, True),
         ("audit", "payments/", pay, None, True)}
    assert json.loads(ok(hush(db, "access", "show", pay, "acme", "--json", user="adam")).stdout) == shown
    # revoke: a notice on stderr, never in the JSON on stdout's way... but in its "notices".
    r = ok(hush(db, "access", "revoke", pay, "acme", "--prefix", "payments/", "-c", "list", "--json", user="adam"))
    out = json.loads(r.stdout)
    assert out["capabilities"] == ["read", "audit"] and len(out["notices"]) == 1
    assert r.stderr.startswith("notice: ") and "may still list" in r.stderr  # read implies it
    out = json.loads(ok(hush(db, "access", "revoke", pay, "acme", "--prefix", "payments/", "-c", "read", "-c",
                             "audit", "--json", user="adam")).stdout)
    assert out["capabilities"] == [] and out["notices"] == []
    assert json.loads(ok(hush(db, "access", "show", pay, "acme", "--json", user=pay)).stdout) == []


def test_human_output(db: Any, role: Any) -> None:
    ci = role("hush_writer")
    r = ok(hush(db, "access", "grant", ci, "acme", "--prefix", "ci/", "-c", "write", "-c", "delete", user="adam"))
    assert r.stdout == "" and r.stderr.strip() == f"{ci} on acme, 'ci/': write, delete"
    r = ok(hush(db, "access", "grant", ci, "acme", "-c", "list", user="adam"))
    assert r.stderr.strip() == f"{ci} on acme, (whole tenant): list"
    table = ok(hush(db, "access", "show", ci, "acme", user=ci)).stdout.splitlines()
    assert table[0].split() == ["CAPABILITY", "PREFIX", "GRANTED", "TO", "ON", "TENANT", "IMPLIED", "BY", "CALLABLE"]
    rows = [line.split() for line in table[1:]]
    assert ["list", "(whole", "tenant)", ci, "acme", "yes"] in rows
    assert ["list", "'ci/'", ci, "acme", "write", "yes"] in rows  # implied by write
    r = ok(hush(db, "access", "revoke", ci, "acme", "--prefix", "ci/", "-c", "write", "-c", "delete", user="adam"))
    assert r.stderr.strip().endswith(f"{ci} on acme, 'ci/': nothing left: the grant is gone")
    r = ok(hush(db, "access", "show", "rita", "globex", user="rita"))
    assert r.stdout == "" and "rita holds no grant on globex" in r.stderr


def test_exit_codes(db: Any, role: Any) -> None:
    before = db.sql("SELECT count(*) FROM hush.tenant_grants")[0][0]
    r = hush(db, "access", "grant", "rita", "acme", "--prefix", "ci/", "-c", "write", user="adam")
    assert r.returncode == 6 and "[SH024]" in r.stderr and "hush_writer" in r.stderr  # a reader cannot write
    r = hush(db, "access", "revoke", "rita", "acme", "--prefix", "nothing/", "-c", "read", user="adam")
    assert r.returncode == 3 and "[SH025]" in r.stderr
    r = hush(db, "access", "grant", "rita", "acme", "-c", "reed", user="adam")
    assert r.returncode == 2 and "'reed' is not one of" in r.stderr
    r = hush(db, "access", "grant", "rita", "acme", user="adam")
    assert r.returncode == 2 and "--capability" in r.stderr
    r = hush(db, "access", "grant", "rita", "acme", "--prefix", "a\tb", "-c", "read", user="adam")
    assert r.returncode == 6 and "[SH004]" in r.stderr
    r = hush(db, "access", "grant", "alice", "acme", "-c", "read", user="alice")  # not an admin
    assert r.returncode == 4 and "[42501]" in r.stderr
    r = hush(db, "access", "show", "alice", "acme", user="rita")  # another role's access
    assert r.returncode == 4 and "[42501]" in r.stderr
    r = hush(db, "access", "show", "nobody_at_all", "acme", user="adam")
    assert r.returncode == 6 and "[SH004]" in r.stderr
    assert db.sql("SELECT count(*) FROM hush.tenant_grants")[0][0] == before


def test_whole_tenant_shorthand_stays(db: Any, role: Any) -> None:
    app = role("hush_reader")
    r = ok(hush(db, "grant", app, "acme", user="adam"))
    assert r.stderr.strip() == f"granted: {app} on acme"
    shown = json.loads(ok(hush(db, "access", "show", app, "acme", "--json", user=app)).stdout)
    assert {e["capability"] for e in shown if e["prefix"] == "" and e["implied_by"] is None} == \
        {"read", "list", "oauth_use", "audit"}  # what a reader can call
    ok(hush(db, "access", "grant", app, "acme", "--prefix", "x/", "-c", "read", user="adam"))
    assert ok(hush(db, "revoke", app, "acme", user="adam")).stderr.strip() == f"revoked: {app} on acme"
    assert json.loads(ok(hush(db, "access", "show", app, "acme", "--json", user=app)).stdout) == []
