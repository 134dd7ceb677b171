"""Audit rows for changes that are not secret writes (grants, tenant settings),
and a tenant's own audit trail for application roles (hush.audit_log()).

Secret reads and writes insert their audit row inside the same statement as
the change (a data-modifying CTE in secrets.py): one round trip, one
transaction. The row's who/where columns (role, session role,
application_name, client address, txid, time) come from column defaults.
"""
from __future__ import annotations

import json
from typing import Any

from . import access
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api

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


MAX_LOG_ROWS = 10000
# RLS (hush.tenant, set by access.enter) confines this to the caller's tenant as well.
LOG_SQL = """
SELECT a.id, a.at, a.action, a.secret_id, a.secret_name, a.version, a.db_role, a.session_role,
       a.application_name, a.client_addr, a.txid, a.outcome, a.detail
  FROM hush.audit_log a
 WHERE a.tenant_id OPERATOR(pg_catalog.=) $1
   AND ($2 IS NULL OR a.at OPERATOR(pg_catalog.>=) $2) AND ($3 IS NULL OR a.at OPERATOR(pg_catalog.<) $3)
   AND ($4 IS NULL OR a.action OPERATOR(pg_catalog.=) $4)
   AND ($5 IS NULL OR a.secret_name OPERATOR(pg_catalog.=) $5)
 ORDER BY a.id DESC
 LIMIT $6
"""


@api
def read_log(plpy: Any, tenant: Any, since: Any, until: Any, action: Any, secret_name: Any, max_rows: Any) -> list:
    """The newest audit rows of one tenant the caller is granted, newest first. Not itself audited."""
    if max_rows is None or not 1 <= max_rows <= MAX_LOG_ROWS:
        raise Fail(INVALID_ARGUMENT, "max_rows must be between 1 and %d" % MAX_LOG_ROWS)
    access.enter(plpy, tenant)
    p = plan(plpy, "audit.log", LOG_SQL, ["pg_catalog.text", "pg_catalog.timestamptz", "pg_catalog.timestamptz",
                                          "pg_catalog.text", "pg_catalog.text", "pg_catalog.int4"])
    return list(plpy.execute(p, [tenant, since, until, action, secret_name, max_rows]))
