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

from . import access, keyring, privileged, recorder
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


# Who read, and from where, taken in the reading backend (the step runs in the
# caller's session and transaction): never from an argument anyone could pass.
WHO_SQL = """
SELECT SESSION_USER::pg_catalog.text AS session_role, pg_catalog.current_setting('application_name') AS application_name,
       pg_catalog.inet_client_addr()::pg_catalog.text AS client_addr, pg_catalog.pg_backend_pid() AS pid,
       pg_catalog.txid_current_if_assigned() AS txid, pg_catalog.pg_is_in_recovery() AS standby,
       pg_catalog.pg_conf_load_time()::pg_catalog.text AS conf,
       COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1), false)
           AS superuser
"""


def record_reads(plpy: Any, GD: dict, caller: str, tenant: str, rows: list[tuple], key_ids: Any,
                 action: str = "read") -> None:
    """In a reading step, before any value is opened: the record that `caller` read these
    (row id, name, version[, detail dict]), committed on the primary apart from the caller's
    transaction (recorder.py); SH022, and no value, when it cannot be. The one place a read
    is recorded. key_ids: the root keys that will open the values, checked first, so that a
    read this node cannot serve (SH030) is refused before anything is recorded."""
    assert action in ACTIONS, action
    for kid in set(key_ids):
        keyring.get(plpy, GD, kid)
    who = plpy.execute(plan(plpy, "audit.who", WHO_SQL, ["pg_catalog.name"]), [caller])[0]
    # caller_txid: whether the reading transaction committed is read off it later
    # (hush.caller_xact); null when it had written nothing, so had no id yet.
    extra: dict = {"pid": who["pid"], "caller_txid": who["txid"]}
    if who["standby"]:
        extra["standby"] = True
    if who["superuser"]:
        extra["superuser"] = True
    recorder.record(plpy, GD, {
        "tenant": tenant, "db_role": caller, "session_role": who["session_role"],
        "application_name": who["application_name"], "client_addr": who["client_addr"],
        "rows": [(action, r[0], r[1], r[2], dict(r[3] if len(r) > 3 and r[3] else {}, **extra)) for r in rows],
    }, who)


MAX_LOG_ROWS = 10000
# The owner_steps row policy (hush.tenant, set by access.enter) confines this to the tenant as well.
LOG_SQL = """
SELECT a.id, a.at, a.action, a.secret_id, a.secret_name, a.version, a.db_role, a.session_role,
       a.application_name, a.client_addr, a.txid, a.outcome, a.detail, hush.caller_xact(a.detail) AS caller_xact
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
