"""Small helpers shared by the server tests."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
import pytest


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
