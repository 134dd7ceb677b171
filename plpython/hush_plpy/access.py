"""Who is calling, may they act on this tenant, and the tenant's settings.

Every API call starts here with one SPI round trip that (1) sets hush.tenant
for the transaction, which the FORCE'd row-level security policies key on, (2)
checks the caller's tenant grant, and (3) reads the tenant's settings (and,
for writes, the active root key id). Inside a SECURITY DEFINER function
current_user is the owner, so the caller is the session's SET ROLE when there is one (PostgREST
style) and session_user otherwise; grants count through role membership.
"""
from __future__ import annotations

from typing import Any

from . import validate
from .errors import READ_ONLY_AUDIT, TENANT_ACCESS_DENIED, Fail

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


# Every name is schema-qualified, operators included, so a caller's
# search_path cannot steer what runs here (the functions also pin theirs).
PRELUDE_SQL = """
SELECT pg_catalog.set_config('hush.tenant', $1, true) AS tenant,
       c.caller,
       -- is_superuser follows SET ROLE and is left alone by SECURITY DEFINER: it is the caller's.
       (pg_catalog.current_setting('is_superuser') OPERATOR(pg_catalog.=) 'on'
        OR EXISTS (SELECT 1 FROM hush.tenant_grants g
                    WHERE g.tenant_id OPERATOR(pg_catalog.=) ANY (ARRAY[$1, '*'::pg_catalog.text])
                      -- to_regrole: a grant to a role dropped since is NULL, not an error
                      AND pg_catalog.pg_has_role(c.caller,
                            pg_catalog.to_regrole(pg_catalog.quote_ident(g.role_name)), 'MEMBER'))) AS allowed,
       COALESCE(t.audit_reads, true) AS audit_reads,
       pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.=) 'on' AS read_only{write_cols}
  FROM (SELECT CASE pg_catalog.current_setting('role')
                 WHEN 'none' THEN SESSION_USER
                 ELSE pg_catalog.current_setting('role') END::pg_catalog.name AS caller) c
  LEFT JOIN hush.tenants t ON t.tenant_id OPERATOR(pg_catalog.=) $1
"""
# Writes also need the value size limit and the active root key id (read from
# the table on every write, so a newly activated key is used at once); reads,
# the hot path, do not.
PRELUDE_READ_SQL = PRELUDE_SQL.format(write_cols="")
PRELUDE_WRITE_SQL = PRELUDE_SQL.format(write_cols=""",
       COALESCE(t.max_value_bytes, 65536) AS max_value_bytes,
       (SELECT k.key_id FROM hush.root_keys k WHERE k.state OPERATOR(pg_catalog.=) 'active') AS active_key_id""")


def deny(caller: str, tenant: str) -> None:
    # The same error whether or not the tenant or any secret exists there.
    raise Fail(TENANT_ACCESS_DENIED, "role %s may not act on tenant %s" % (caller, tenant),
               hint="An admin grants it with hush.grant_tenant(role, tenant).")


def deny_read_only(tenant: str) -> None:
    # Fail closed: an audited read must write its audit row.
    raise Fail(READ_ONLY_AUDIT, "reading a secret of tenant %s writes an audit row, which a read-only "
               "transaction (or a standby) cannot do" % tenant,
               hint="Read in a read-write transaction on the primary, or have an admin switch read auditing "
                    "off for this tenant with hush.configure_tenant.")


def enter(plpy: Any, tenant: Any, write: bool = False) -> dict[str, Any]:
    """Validate the tenant, set it for RLS, check the grant. Returns the prelude row
    (with max_value_bytes and active_key_id when `write`)."""
    validate.tenant(tenant)
    if write:
        p = plan(plpy, "prelude.write", PRELUDE_WRITE_SQL, ["pg_catalog.text"])
    else:
        p = plan(plpy, "prelude.read", PRELUDE_READ_SQL, ["pg_catalog.text"])
    row = plpy.execute(p, [tenant])[0]
    if not row["allowed"]:
        deny(row["caller"], tenant)
    return row
