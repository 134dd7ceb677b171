"""Who is calling, may they act on this tenant, and the tenant's settings.

Every API call starts here with one SPI round trip that (1) sets hush.tenant
for the transaction, which the FORCE'd row-level security policies key on, (2)
checks the caller's tenant grant, and (3) reads the tenant's settings and the
active root key id. Inside a SECURITY DEFINER function current_user is the
owner, so the caller is the session's SET ROLE when there is one (PostgREST
style) and session_user otherwise; grants count through role membership.
"""
from __future__ import annotations

from typing import Any

from . import validate
from .errors import READ_ONLY_AUDIT, TENANT_ACCESS_DENIED, Fail

_plans: dict[str, Any] = {}


def plan(plpy: Any, key: str, sql: str, types: list[str]) -> Any:
    """A prepared plan kept for the life of the backend."""
    p = _plans.get(key)
    if p is None:
        p = _plans[key] = plpy.prepare(sql, types)
    return p


# Every name is schema-qualified, operators included, so a caller's
# search_path cannot steer what runs here (the functions also pin theirs).
PRELUDE_SQL = """
SELECT pg_catalog.set_config('hush.tenant', $1, true) AS tenant,
       c.caller,
       (EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                 WHERE r.rolname OPERATOR(pg_catalog.=) c.caller AND r.rolsuper)
        OR EXISTS (SELECT 1 FROM hush.tenant_grants g
                     JOIN pg_catalog.pg_roles gr ON gr.rolname OPERATOR(pg_catalog.=) g.role_name
                    WHERE (g.tenant_id OPERATOR(pg_catalog.=) $1 OR g.tenant_id OPERATOR(pg_catalog.=) '*')
                      AND pg_catalog.pg_has_role(c.caller, gr.oid, 'MEMBER'))) AS allowed,
       COALESCE(t.audit_reads, true) AS audit_reads,
       COALESCE(t.max_value_bytes, 65536) AS max_value_bytes,
       pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.=) 'on' AS read_only,
       (SELECT k.key_id FROM hush.root_keys k WHERE k.state OPERATOR(pg_catalog.=) 'active') AS active_key_id
  FROM (SELECT CASE pg_catalog.current_setting('role')
                 WHEN 'none' THEN SESSION_USER
                 ELSE pg_catalog.current_setting('role') END::pg_catalog.name AS caller) c
  LEFT JOIN hush.tenants t ON t.tenant_id OPERATOR(pg_catalog.=) $1
"""


def enter(plpy: Any, tenant: Any, reads_value: bool = False) -> dict[str, Any]:
    """Validate the tenant, set it for RLS, check the grant. Returns the prelude row."""
    validate.tenant(tenant)
    row = plpy.execute(plan(plpy, "prelude", PRELUDE_SQL, ["pg_catalog.text"]), [tenant])[0]
    if not row["allowed"]:
        # The same error whether or not the tenant or any secret exists there.
        raise Fail(TENANT_ACCESS_DENIED, "role %s may not act on tenant %s" % (row["caller"], tenant),
                   hint="An admin grants it with hush.grant_tenant(role, tenant).")
    if reads_value and row["audit_reads"] and row["read_only"]:
        # Fail closed: an audited read must write its audit row.
        raise Fail(READ_ONLY_AUDIT, "reading a secret of tenant %s writes an audit row, which a read-only "
                   "transaction (or a standby) cannot do" % tenant,
                   hint="Read in a read-write transaction on the primary, or have an admin switch read auditing "
                        "off for this tenant with hush.configure_tenant.")
    return row
