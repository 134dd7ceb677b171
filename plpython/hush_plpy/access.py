"""Whose authority, and may it act on this tenant.

hush acts with the authority of the role the calling code runs as:
CURRENT_USER at the call site, with the roles whose privileges it has
(pg_has_role ... 'USAGE': a NOINHERIT member that has not switched role gets
nothing). Never the session's (SESSION_USER, the `role` setting,
is_superuser): PostgreSQL runs code as other roles inside a session, in
definer functions and triggers and in the index expressions that ANALYZE,
VACUUM, REINDEX and friends evaluate as the table's owner. A superuser acting
as itself may act on every tenant.

may_act is that rule in SQL, written once: privileged steps use it with the
caller their ticket carries (the owner_steps row policy then confines them to
the tenant they checked); the OAuth worker's scan with its caller per row.
"""
from __future__ import annotations


from . import errors, privileged, validate
from .errors import TENANT_ACCESS_DENIED, Fail

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

_plans: dict[str, Any] = {}


def cached_plan(key: str) -> Any:
    """The plan prepared under `key`, or None: lets hot paths skip building SQL text."""
    return _plans.get(key)


def plan(plpy: Any, key: str, sql: str, types: list[str]) -> Any:
    """A prepared plan kept for the life of the backend."""
    p = _plans.get(key)
    if p is None:
        p = _plans[key] = plpy.prepare(sql, types)
    return p


def may_act(tenant: str, role: str) -> str:
    """SQL: whether `role` may act on `tenant` (both SQL expressions). The grant lookup
    goes through tenant_grants' primary key; the superuser test does not depend on the
    row, so the planner runs it once per statement. to_regrole: a grant to a role dropped
    since is NULL, not an error."""
    return f"""(EXISTS (SELECT 1 FROM hush.tenant_grants g
                  WHERE g.tenant_id OPERATOR(pg_catalog.=) ANY (ARRAY[{tenant}, '*'::pg_catalog.text])
                    AND pg_catalog.pg_has_role({role},
                          pg_catalog.to_regrole(pg_catalog.quote_ident(g.role_name)), 'USAGE'))
         OR COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                       WHERE r.rolname OPERATOR(pg_catalog.=) {role}), false))"""


# The owner_steps row policy: hush's privileged steps, running as hush_owner (or
# hush_retention, a member of it), see the one tenant they set in hush.tenant
# after checking their caller's grant (enter below). Keyed on CURRENT_USER, not
# on a role list: a policy TO hush_owner would apply to every caller reading
# through hush_owner's views too.
OWNER_STEPS = """CURRENT_USER OPERATOR(pg_catalog.=) ANY (ARRAY['hush_owner', 'hush_retention']::pg_catalog.name[])
       AND tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('hush.tenant', true)"""


# -- privileged side: a step acting for the caller its ticket names ---------------------

# Whether reads of a tenant are recorded. "Off" counts only when it is surely the
# committed, current state: the reading transaction has written nothing (so it
# cannot hold an uncommitted switch of its own, which a ROLLBACK would take back
# with no trace) and reads in READ COMMITTED (a statement snapshot: not one taken
# before an admin switched auditing back on). Anything else records.
def audit_reads(t: str) -> str:
    return f"""CASE WHEN {t}.audit_reads IS NOT FALSE THEN true
            WHEN pg_catalog.txid_current_if_assigned() IS NOT NULL THEN true
            ELSE pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' END"""


# One round trip: set hush.tenant (the owner_steps row policy confines every
# statement of the step to it), test the caller's grant, read the tenant's settings.
ENTER_SQL = f"""
SELECT pg_catalog.set_config('hush.tenant', $1, true) AS tenant,
       {may_act("$1", "$2")} AS allowed,
       COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $2), false)
           AS superuser,
       {audit_reads("t")} AS audit_reads, COALESCE(t.audit_rows_per_second, 0) AS audit_limit{{write_cols}}
  FROM (SELECT 1) AS one
  LEFT JOIN hush.tenants t ON t.tenant_id OPERATOR(pg_catalog.=) $1
"""
# Writes also need the value size limit and the active root key id (read from
# the table on every write, so a newly activated key is used at once).
ENTER_READ_SQL = ENTER_SQL.format(write_cols="")
ENTER_WRITE_SQL = ENTER_SQL.format(write_cols=""",
       COALESCE(t.max_value_bytes, 65536) AS max_value_bytes,
       (SELECT k.key_id FROM hush.root_keys k WHERE k.state OPERATOR(pg_catalog.=) 'active') AS active_key_id""")


def deny(caller: str, tenant: str) -> None:
    # The same error whether or not the tenant or any secret exists there; the tenant only by
    # its first characters, since a value passed in its place (an API key) is well-formed too.
    raise Fail(TENANT_ACCESS_DENIED, "role %s may not act on tenant %s" % (caller, validate.show(tenant)),
               hint="An admin grants it with hush.grant_tenant(role, tenant).")


def admit(tenant: str) -> None:
    """Note that this call's caller passed its grant check on `tenant`: a failure from here on
    may show the tenant in its log line (errors.admitted)."""
    errors.admitted = tenant


def enter(plpy: Any, caller: str, tenant: Any, write: bool = False, audits: bool = False) -> dict[str, Any]:
    """In a privileged step: validate the tenant, set it for the row policies, check the
    caller's grant. Returns the settings row (with max_value_bytes and active_key_id when
    `write`) plus `caller`. `audits`: the step writes audit rows, as every `write` does, so
    the tenant's audit rate limit applies (SH023)."""
    validate.tenant(tenant)
    if write:
        p = plan(plpy, "enter.write", ENTER_WRITE_SQL, ["pg_catalog.text", "pg_catalog.name"])
    else:
        p = plan(plpy, "enter.read", ENTER_READ_SQL, ["pg_catalog.text", "pg_catalog.name"])
    row = dict(plpy.execute(p, [tenant, caller])[0])
    if not row["allowed"]:
        deny(caller, tenant)
    admit(tenant)
    row["caller"] = caller
    # Refused before anything is written; steps that enter otherwise and then record are
    # checked in audit.record.
    if (write or audits) and row["audit_limit"]:
        from . import audit  # audit imports this module
        audit.check_rate(plpy, tenant, row["audit_limit"])
        row["rate_checked"] = True
    return row


def actor(ctx: dict[str, Any]) -> Any:
    """The audit detail that says a superuser acted as itself (None otherwise)."""
    return '{"superuser": true}' if ctx.get("superuser") else None
