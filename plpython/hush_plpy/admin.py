"""Tenant settings (hush_admin). Every change is audited. Grants are grants.py's.

Authority is EXECUTE on the API function, which PostgreSQL checks against the
role the calling code runs as; the change itself is a privileged step run as
hush_owner (privileged.py), and what it records (granted_by, the audit row's
db_role) names that role.
"""
from __future__ import annotations


from . import access, audit, privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

T = "pg_catalog.text"
IV = "pg_catalog.interval"
OWNER = privileged.OWNER

CONFIGURE_SQL = """
INSERT INTO hush.tenants AS t (tenant_id, audit_reads, max_value_bytes, recovery_days, audit_rows_per_second,
                            reader_refresh, max_versions, destroy_versions_after, expiry_warning)
VALUES ($1, COALESCE($2, true), COALESCE($3, 65536), COALESCE($4, 30), COALESCE($5, 0), COALESCE($6, true),
        COALESCE($7, 0), COALESCE($8, '0'::pg_catalog.interval), COALESCE($9, '14 days'::pg_catalog.interval))
ON CONFLICT (tenant_id) DO UPDATE
   SET audit_reads = COALESCE($2, t.audit_reads), max_value_bytes = COALESCE($3, t.max_value_bytes),
       recovery_days = COALESCE($4, t.recovery_days),
       audit_rows_per_second = COALESCE($5, t.audit_rows_per_second),
       reader_refresh = COALESCE($6, t.reader_refresh), max_versions = COALESCE($7, t.max_versions),
       destroy_versions_after = COALESCE($8, t.destroy_versions_after),
       expiry_warning = COALESCE($9, t.expiry_warning), updated_at = pg_catalog.now()
RETURNING t.tenant_id, t.audit_reads, t.max_value_bytes, t.updated_at, t.recovery_days, t.audit_rows_per_second,
          t.reader_refresh, t.max_versions, t.destroy_versions_after, t.expiry_warning
"""
MAX_RECOVERY_DAYS = 3650
# The rate limit's check counts the tenant's rows of the last second, up to the limit:
# its cost grows with the limit, so the limit has a ceiling.
MAX_AUDIT_ROWS_PER_SECOND = 10000
MAX_EXPIRY_WARNING = "10 years"


@api
def configure_tenant(plpy: Any, tenant: Any, audit_reads: Any, max_value_bytes: Any, recovery_days: Any,
                     audit_rows_per_second: Any, reader_refresh: Any, max_versions: Any = None,
                     destroy_versions_after: Any = None, expiry_warning: Any = None) -> dict:
    validate.tenant(tenant)
    if max_value_bytes is not None and not 1 <= max_value_bytes <= 1048576:
        raise Fail(INVALID_ARGUMENT, "max_value_bytes must be between 1 and 1048576")
    if recovery_days is not None and not 1 <= recovery_days <= MAX_RECOVERY_DAYS:
        raise Fail(INVALID_ARGUMENT, "recovery_days must be between 1 and %d" % MAX_RECOVERY_DAYS)
    if audit_rows_per_second is not None and not 0 <= audit_rows_per_second <= MAX_AUDIT_ROWS_PER_SECOND:
        raise Fail(INVALID_ARGUMENT, "audit_rows_per_second must be between 0 (no limit) and %d"
                   % MAX_AUDIT_ROWS_PER_SECOND)
    validate.max_versions(max_versions)
    validate.interval(plpy, destroy_versions_after, "destroy_versions_after", validate.MAX_RETENTION)
    validate.interval(plpy, expiry_warning, "expiry_warning", MAX_EXPIRY_WARNING)
    return privileged.call(plpy, OWNER, _configure, tenant, audit_reads, max_value_bytes, recovery_days,
                           audit_rows_per_second, reader_refresh, max_versions, destroy_versions_after,
                           expiry_warning)


@privileged.step(OWNER)
def _configure(plpy: Any, caller: str, tenant: str, audit_reads: Any, max_value_bytes: Any,
               recovery_days: Any, audit_rows_per_second: Any, reader_refresh: Any, max_versions: Any,
               destroy_versions_after: Any, expiry_warning: Any) -> dict:
    access.act_in(plpy, tenant)
    row = plpy.execute(plan(plpy, "admin.configure", CONFIGURE_SQL,
                            [T, "pg_catalog.bool", "pg_catalog.int4", "pg_catalog.int4", "pg_catalog.int4",
                             "pg_catalog.bool", "pg_catalog.int4", IV, IV]),
                       [tenant, audit_reads, max_value_bytes, recovery_days, audit_rows_per_second, reader_refresh,
                        max_versions, destroy_versions_after, expiry_warning])[0]
    audit.record(plpy, {"caller": caller}, tenant, "configure_tenant",
                 detail={"audit_reads": row["audit_reads"], "max_value_bytes": row["max_value_bytes"],
                         "recovery_days": row["recovery_days"],
                         "audit_rows_per_second": row["audit_rows_per_second"],
                         "reader_refresh": row["reader_refresh"], "max_versions": row["max_versions"],
                         "destroy_versions_after": row["destroy_versions_after"],
                         "expiry_warning": row["expiry_warning"]})
    return row
