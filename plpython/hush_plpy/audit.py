"""Audit rows for changes that are not secret writes (grants, tenant settings,
keys, OAuth), the record of values read, and a tenant's own audit trail for
application roles (hush.audit_log()).

Secret writes insert their audit row inside the same statement as the change
(a data-modifying CTE in secrets.py): one round trip, one transaction. Every
row names the role the calling code ran as (db_role: the caller a privileged
step's ticket carries) beside the session's login role (session_role, a
column default), and says so in `detail` when a superuser acted as itself.
Everything here runs in privileged steps (privileged.py).
"""
from __future__ import annotations

from . import access, privileged
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

# Every action hush writes, in one place: record() and record_reads() refuse
# any other, and the client's list (hush audit --action) is checked against it.
ACTIONS = (
    # secrets
    "read", "create", "new_version", "update_metadata", "delete", "restore", "destroy", "purge",
    # tenants and root keys
    "grant_tenant", "revoke_tenant", "configure_tenant",
    "add_root_key", "activate_root_key", "retire_root_key", "rewrap",
    # OAuth
    "oauth_provider_save", "oauth_provider_remove", "oauth_client_secret_read", "oauth_authorize", "oauth_callback",
    "oauth_token_store", "oauth_token_read", "oauth_tokens_read", "oauth_refresh_claim", "oauth_refresh",
    "oauth_refresh_failed", "oauth_disconnect",
)

# A superuser acting as itself says so in `detail`, whatever the step.
RECORD_SQL = """
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, detail, db_role)
SELECT $1, $2, $3, $4, $5,
       CASE WHEN r.rolsuper THEN COALESCE($6, '{}'::pg_catalog.jsonb)
                                 OPERATOR(pg_catalog.||) '{"superuser": true}'::pg_catalog.jsonb
            ELSE $6 END, $7
  FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) $7
"""


def record(plpy: Any, who: dict, tenant: str, action: str, secret_id: Any = None, secret_name: Any = None,
           version: Any = None, detail: Any = None) -> None:
    """In a privileged step: one audit row naming the caller. `who` is the step's context
    (access.enter's row, or {"caller": ...} for steps that act on no tenant)."""
    import json  # here: the read path records through record_reads and needs none
    assert action in ACTIONS, action
    p = plan(plpy, "audit.record", RECORD_SQL,
             ["pg_catalog.text", "pg_catalog.text", "pg_catalog.uuid", "pg_catalog.text", "pg_catalog.int4",
              "pg_catalog.jsonb", "pg_catalog.name"])
    plpy.execute(p, [tenant, action, secret_id, secret_name, version,
                     None if detail is None else json.dumps(detail, sort_keys=True), who["caller"]])


# The read record: one row per value handed out, written in the reading step
# (hush.tenant is set and the caller's grant was checked by the read).
READS_SQL = """
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
SELECT $1, $2, u.id, u.name, u.version, $7,
       CASE WHEN r.rolsuper THEN COALESCE(u.detail, '{}'::pg_catalog.jsonb)
                                 OPERATOR(pg_catalog.||) '{"superuser": true}'::pg_catalog.jsonb
            ELSE u.detail END
  FROM ROWS FROM (pg_catalog.unnest($3::pg_catalog.uuid[]), pg_catalog.unnest($4::pg_catalog.text[]),
                  pg_catalog.unnest($5::pg_catalog.int4[]), pg_catalog.unnest($6::pg_catalog.jsonb[]))
            AS u(id, name, version, detail)
  LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) $7
"""


def record_reads(plpy: Any, caller: str, tenant: str, rows: list[tuple], action: str = "read") -> None:
    """In a reading step, before values are handed out: record that `caller` read them.
    rows: (row id, name, version[, detail dict]). The one place a read is recorded."""
    assert action in ACTIONS, action
    p = plan(plpy, "audit.reads", READS_SQL,
             ["pg_catalog.text", "pg_catalog.text", "pg_catalog.uuid[]", "pg_catalog.text[]", "pg_catalog.int4[]",
              "pg_catalog.jsonb[]", "pg_catalog.name"])
    details = [None] * len(rows)
    if any(len(r) > 3 and r[3] for r in rows):
        import json  # only reads with details need it (json imports re: ~7 ms for a new connection)
        details = [json.dumps(r[3], sort_keys=True) if len(r) > 3 and r[3] else None for r in rows]
    plpy.execute(p, [tenant, action, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], details,
                     caller])


MAX_LOG_ROWS = 10000
# The owner_steps row policy (hush.tenant, set by access.enter) confines this to the tenant as well.
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
    """The newest audit rows of one tenant the caller may act on, newest first. Not itself audited."""
    if max_rows is None or not 1 <= max_rows <= MAX_LOG_ROWS:
        raise Fail(INVALID_ARGUMENT, "max_rows must be between 1 and %d" % MAX_LOG_ROWS)
    return privileged.call(plpy, privileged.OWNER, _read_log, tenant, since, until, action, secret_name, max_rows)


@privileged.step(privileged.OWNER)
def _read_log(plpy: Any, caller: str, tenant: Any, since: Any, until: Any, action: Any, secret_name: Any,
              max_rows: int) -> list:
    access.enter(plpy, caller, tenant)
    p = plan(plpy, "audit.log", LOG_SQL, ["pg_catalog.text", "pg_catalog.timestamptz", "pg_catalog.timestamptz",
                                          "pg_catalog.text", "pg_catalog.text", "pg_catalog.int4"])
    return list(plpy.execute(p, [tenant, since, until, action, secret_name, max_rows]))
