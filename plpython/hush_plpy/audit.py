"""Audit rows for changes that are not secret writes (grants, tenant settings).

Secret reads and writes insert their audit row inside the same statement as
the change (a data-modifying CTE in secrets.py): one round trip, one
transaction. The row's who/where columns (role, session role,
application_name, client address, txid, time) come from column defaults.
"""
from __future__ import annotations

import json
from typing import Any

from .access import plan

RECORD_SQL = """
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, detail)
VALUES ($1, $2, $3, $4, $5, $6)
"""


def record(plpy: Any, tenant: str, action: str, secret_id: Any = None, secret_name: Any = None,
           version: Any = None, detail: Any = None) -> None:
    p = plan(plpy, "audit.record", RECORD_SQL,
             ["pg_catalog.text", "pg_catalog.text", "pg_catalog.uuid", "pg_catalog.text", "pg_catalog.int4",
              "pg_catalog.jsonb"])
    plpy.execute(p, [tenant, action, secret_id, secret_name, version,
                     None if detail is None else json.dumps(detail, sort_keys=True)])
