"""hush.audit_log(tenant, ...): application roles read their own tenants' audit
trail, never another tenant's, and never a value."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from helpers import get, raises_sqlstate, rows, save


@pytest.fixture
def trail(db: Any) -> Any:
    with db.connect("alice") as a:
        save(a, "acme", "k1", "acme-secret-value")
        save(a, "acme", "k1", "acme-secret-value-2")
        save(a, "acme", "k2", "other")
        get(a, "acme", "k1")
    with db.connect("bob") as b:
        save(b, "globex", "k1", "globex-secret-value")
        get(b, "globex", "k1")
    return db


def log(conn: psycopg.Connection, tenant: str, **kw: Any) -> list[dict]:
    """The tenant's secret rows (the template's grant_tenant rows are there too)."""
    args = "".join(f", {k} => %({k})s" for k in kw)
    got = rows(conn, f"SELECT * FROM hush.audit_log(%(t)s{args})", {"t": tenant, **kw})
    return [r for r in got if r["secret_name"] is not None]


def test_own_tenant_newest_first_with_filters(trail: Any) -> None:
    with trail.connect("alice") as a:
        got = log(a, "acme")
        assert [(r["action"], r["secret_name"], r["version"]) for r in got] == [
            ("read", "k1", 2), ("create", "k2", 1), ("new_version", "k1", 2), ("create", "k1", 1)]
        assert all(r["db_role"] == "alice" for r in got)
        assert [r["action"] for r in log(a, "acme", action="create")] == ["create", "create"]
        assert [r["version"] for r in log(a, "acme", secret_name="k1")] == [2, 2, 1]
        assert len(rows(a, "SELECT * FROM hush.audit_log('acme', max_rows => 2)")) == 2
        assert {r["action"] for r in rows(a, "SELECT * FROM hush.audit_log('acme')")} >= {"grant_tenant"}
        middle = got[2]["at"]
        assert [r["cursor"] for r in log(a, "acme", since=middle)] == [r["cursor"] for r in got[:3]]
        assert [r["cursor"] for r in log(a, "acme", until=middle)] == [got[3]["cursor"]]  # grants came before
        assert "acme-secret-value" not in str(got)
    with trail.connect("rita") as r:  # a reader of acme too
        assert len(log(r, "acme")) == 4


def test_other_tenants_are_out_of_reach(trail: Any) -> None:
    with trail.connect("alice") as a:
        with raises_sqlstate("SH020"):
            log(a, "globex")
    with trail.connect("bob") as b:
        assert {r["secret_name"] for r in log(b, "globex")} == {"k1"} and len(log(b, "globex")) == 2
    with trail.connect("otto") as o, pytest.raises(psycopg.errors.InsufficientPrivilege):
        log(o, "acme")


def test_bad_arguments_and_no_side_effects(trail: Any) -> None:
    before = trail.sql("SELECT count(*) FROM hush.audit_log")
    with trail.connect("alice") as a:
        for bad in (0, 10001):
            with raises_sqlstate("SH004"):
                log(a, "acme", max_rows=bad)
        with raises_sqlstate("SH002"):
            log(a, "not a tenant!")
    with trail.connect("alice", autocommit=False) as a:
        a.read_only = True  # reading the trail writes nothing, so it works read-only
        assert len(log(a, "acme")) == 4
        a.rollback()
    assert trail.sql("SELECT count(*) FROM hush.audit_log") == before
