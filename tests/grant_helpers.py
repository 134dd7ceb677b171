"""What the grant tests share (test_access_grants.py, test_access_grants_effective.py):
every capability, hush.grant called as a given connection, the stored grants and audit
rows of grant changes, and `roles`, a fixture making roles for one test (import it to
use it)."""
from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest

from helpers import rows

ALL = ["read", "list", "write", "delete", "destroy", "oauth_use", "oauth_manage", "audit"]


def grant(conn: psycopg.Connection, role: str, tenant: str, prefix: Any, caps: Any) -> dict:
    return rows(conn, "SELECT * FROM hush.grant(%s, %s, %s, %s)", [role, tenant, prefix, caps])[0]


def stored(db: Any, role: str) -> list[tuple]:
    return db.sql("SELECT tenant_id, prefix, capabilities FROM hush.tenant_grants WHERE role_name = %s "
                  "ORDER BY 1, 2", [role])


def trail(db: Any, *actions: str) -> list[tuple]:
    return db.sql("SELECT action, tenant_id, db_role, detail FROM hush.audit_log WHERE action = ANY(%s) ORDER BY id",
                  [list(actions)])


@pytest.fixture
def roles(db: Any) -> Iterator[Any]:
    """make(name, spec): a role made for one test (roles are cluster-wide), dropped after it."""
    made: list[str] = []

    def make(name: str, spec: str = "") -> str:
        full = f"{name}_{db.name}"
        db.sql(f'CREATE ROLE "{full}" {spec}')
        made.append(full)
        return full
    yield make
    for r in reversed(made):
        db.sql(f'DROP OWNED BY "{r}"; DROP ROLE "{r}"')
