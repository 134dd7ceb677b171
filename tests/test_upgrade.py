"""ALTER EXTENSION hush UPDATE: every path from an earlier release (its frozen
install script in sql/releases/) to this version ends where a fresh install
does, keeps the data readable, and switches a session that already ran the old
Python over to the new."""
from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest

from helpers import get, save
from test_surface import surface

FUNCTION_DEFS = """SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
                     FROM pg_proc p WHERE p.pronamespace = 'hush'::regnamespace ORDER BY 1"""
GRANTS = "SELECT tenant_id, role_name, granted_at, granted_by FROM hush.tenant_grants ORDER BY 1, 2"
TRAIL = "SELECT * FROM hush.audit_log ORDER BY id"
EVENT_TRIGGERS = "SELECT evtname, evtevent, evtenabled, evttags::text, evtfoid::regproc::text FROM pg_event_trigger ORDER BY 1"


class Named:
    def __init__(self, cluster: Any, name: str) -> None:
        self.cluster, self.name = cluster, name

    def dsn(self, user: str = "postgres") -> str:
        return self.cluster.dsn(self.name, user=user)

    def connect(self, user: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.dsn(user), autocommit=True)

    def sql(self, query: str, params: object = None) -> list[tuple]:
        with self.connect() as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


@pytest.fixture
def fresh_db(cluster: Any) -> Iterator[Any]:
    """An empty database (no extension) of the session cluster."""
    made: list[str] = []

    def make(name: str) -> Named:
        with psycopg.connect(cluster.dsn(), autocommit=True) as su:
            su.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return Named(cluster, name)
    yield make
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for name in made:
            su.execute(f"DROP DATABASE {name} WITH (FORCE)")


def versions(db: Any) -> tuple[list[str], str]:
    rows = db.sql("SELECT name, default_version FROM pg_available_extensions WHERE name = 'hush'")
    default = rows[0][1]
    sources = [r[0] for r in db.sql("SELECT source FROM pg_extension_update_paths('hush') "
                                    "WHERE target = %s AND path IS NOT NULL", [default])]
    return sources, default


def test_every_update_path_ends_like_a_fresh_install(fresh_db: Any) -> None:
    new = fresh_db("up_fresh")
    new.sql("CREATE EXTENSION hush CASCADE")
    sources, default = versions(new)
    assert sources, "no update path leads to the current version: add sql/updates/hush--A--B.sql.in"
    for i, source in enumerate(sources):
        old = fresh_db(f"up_from_{i}")
        old.sql("CREATE EXTENSION hush VERSION %s CASCADE" % psycopg.sql.quote(source))
        old.sql("SELECT hush.grant_tenant('alice', 'acme')")
        with old.connect("alice") as alice:
            save(alice, "acme", "kept", "value-saved-before-the-update")
            assert get(alice, "acme", "kept")["value"] == "value-saved-before-the-update"
            grants = old.sql(GRANTS)
            trail = old.sql(TRAIL)
            assert grants and trail
            old.sql("ALTER EXTENSION hush UPDATE")
            # Every grant and audit row is still there, as it was.
            assert old.sql(GRANTS) == grants
            assert old.sql(TRAIL) == trail
            # The same session, whose backend holds the old version's Python, runs the new.
            assert get(alice, "acme", "kept")["value"] == "value-saved-before-the-update"
            save(alice, "acme", "kept", "saved-after")
        assert old.sql("SELECT extversion FROM pg_extension WHERE extname = 'hush'") == [(default,)]
        assert surface(old) == surface(new), f"update from {source} differs from a fresh install"
        assert old.sql(FUNCTION_DEFS) == new.sql(FUNCTION_DEFS)
        assert old.sql(EVENT_TRIGGERS) == new.sql(EVENT_TRIGGERS)
        with old.connect("alice") as alice:
            assert get(alice, "acme", "kept", 1)["value"] == "value-saved-before-the-update"
            assert get(alice, "acme", "kept")["value"] == "saved-after"
