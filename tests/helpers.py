"""Small helpers shared by the server tests."""
from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def raises_sqlstate(code: str) -> Iterator[Any]:
    """Expect a database error with exactly this SQLSTATE."""
    with pytest.raises(psycopg.Error) as ei:
        yield ei
    assert ei.value.sqlstate == code, f"expected {code}, got {ei.value.sqlstate}: {ei.value}"


def save(conn: psycopg.Connection, tenant: str, name: str, value: str, **kw: Any) -> dict:
    """hush.save_secret with the value as a bind parameter; returns the row as a dict."""
    args = ", ".join(f"{k} => %({k})s" for k in kw)
    q = f"SELECT * FROM hush.save_secret(%(t)s, %(n)s, %(v)s{', ' + args if args else ''})"
    cur = conn.execute(q, {"t": tenant, "n": name, "v": value, **kw})
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def get(conn: psycopg.Connection, tenant: str, name: str, version: int | None = None) -> dict:
    cur = conn.execute("SELECT * FROM hush.get_secret(%s, %s, %s)", [tenant, name, version])
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def rows(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict]:
    cur = conn.execute(query, params)
    names = [c.name for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def last_audit_id(db: Any) -> int:
    """The newest audit row's id (0 for none): what a test's own rows come after."""
    return int(db.sql("SELECT COALESCE(max(id), 0) FROM hush.audit_log")[0][0])


def imported(module: str, under: str = "plpython") -> ModuleType:
    """`module` imported from the folder `under` of the repository (the server's hush_plpy
    from plpython/, a tool from tools/), to compare the client or the docs with; sys.path is
    left as it was."""
    sys.path.insert(0, str(ROOT / under))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.pop(0)


@contextmanager
def cluster_roles(cluster: Any, roles: dict[str, str]) -> Iterator[None]:
    """The roles (name: CREATE ROLE options), made for as long as the block runs. Roles are
    cluster-wide, not per test database: dropped afterwards, the last made first (a member
    before its group)."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for role, spec in roles.items():
            su.execute(f"CREATE ROLE {role} {spec}")
    yield
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for role in reversed(list(roles)):
            su.execute(f"DROP ROLE {role}")


def module_roles(roles: dict[str, str]) -> Any:
    """A module-scoped fixture that makes `roles` once for the module's tests
    (`people = module_roles(ROLES)`)."""
    @pytest.fixture(scope="module")
    def fixture(cluster: Any) -> Iterator[None]:
        with cluster_roles(cluster, roles):
            yield
    return fixture


def tenant_secrets(user: str, tenant: str = "acme") -> Any:
    """A fixture: hush.Secrets of `tenant` as `user`, over a connection of its own
    (`alice = tenant_secrets("alice")`)."""
    import hush

    @pytest.fixture
    def fixture(db: Any) -> Iterator[hush.Secrets]:
        with db.connect(user) as conn:
            yield hush.Secrets(conn, tenant)
    return fixture


def owner_plan(db: Any, prepare: str, execute: str) -> str:
    """The plan of `EXECUTE execute` after `PREPARE prepare`, as a privileged step runs the
    query (hush_owner under the owner_steps row policy, tenant acme) and in a generic plan (the
    one a prepared plan settles on); with sequential scans off, an index it may use is used."""
    with db.connect() as su:
        su.execute("SET enable_seqscan = off")
        su.execute("SET plan_cache_mode = force_generic_plan")
        su.execute("SELECT set_config('hush.tenant', 'acme', false)")
        su.execute("SET ROLE hush_owner")
        su.execute(f"PREPARE {prepare}")
        return "\n".join(r[0] for r in su.execute(f"EXPLAIN EXECUTE {execute}").fetchall())
