"""The administration functions as Calls, like _calls.py: tenant settings and
grants, root keys (hush_admin), and the audit trail (hush_auditor or hush_admin;
hush.audit_log() for application roles). One statement each, every value a
bind parameter, rows read by column name. None of them only reads on a
replica's behalf: they all run on the primary (Call.reads_only is False).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ._admin_models import (AuditCleanup, AuditPartition, AuditRecord, AuditSeal, AuditVerification, MaintenanceJob,
                            OAuthCleanup, PurgedSecrets, RootKey, SecretUpkeep, TenantSettings)
from ._calls import Call, Rows, _int, _interval

# -- tenants ----------------------------------------------------------------------------


def configure_tenant(tenant: str, audit_reads: bool | None, max_value_bytes: int | None,
                     recovery_days: int | None, audit_rows_per_second: int | None,
                     reader_refresh: bool | None = None, max_versions: int | None = None,
                     destroy_versions_after: timedelta | None = None,
                     expiry_warning: timedelta | None = None) -> Call[TenantSettings]:
    return Call("SELECT tenant_id, audit_reads, max_value_bytes, recovery_days, audit_rows_per_second, "
                "reader_refresh, updated_at, max_versions, destroy_versions_after, expiry_warning "
                "FROM hush.configure_tenant(tenant => CAST(%(tenant)s AS pg_catalog.text), "
                "audit_reads => CAST(%(audit_reads)s AS pg_catalog.bool), "
                "max_value_bytes => CAST(%(max_value_bytes)s AS pg_catalog.int4), "
                "recovery_days => CAST(%(recovery_days)s AS pg_catalog.int4), "
                "audit_rows_per_second => CAST(%(audit_rows_per_second)s AS pg_catalog.int4), "
                "reader_refresh => CAST(%(reader_refresh)s AS pg_catalog.bool), "
                "max_versions => CAST(%(max_versions)s AS pg_catalog.int4), "
                "destroy_versions_after => CAST(%(destroy_versions_after)s AS pg_catalog.interval), "
                "expiry_warning => CAST(%(expiry_warning)s AS pg_catalog.interval))",
                {"tenant": tenant, "audit_reads": audit_reads, "max_value_bytes": max_value_bytes,
                 "recovery_days": recovery_days, "audit_rows_per_second": audit_rows_per_second,
                 "reader_refresh": reader_refresh, "max_versions": _int("max_versions", max_versions),
                 "destroy_versions_after": _interval("destroy_versions_after", destroy_versions_after),
                 "expiry_warning": _interval("expiry_warning", expiry_warning)},
                lambda rows: TenantSettings.from_row(rows[0]))


def grant(role: str, tenant: str) -> Call[bool]:
    return Call("SELECT hush.grant_tenant(CAST(%(role)s AS pg_catalog.name), CAST(%(tenant)s AS pg_catalog.text)) "
                "AS changed",
                {"role": role, "tenant": tenant}, lambda rows: bool(rows[0]["changed"]))


def revoke(role: str, tenant: str) -> Call[bool]:
    return Call("SELECT hush.revoke_tenant(CAST(%(role)s AS pg_catalog.name), CAST(%(tenant)s AS pg_catalog.text)) "
                "AS changed",
                {"role": role, "tenant": tenant}, lambda rows: bool(rows[0]["changed"]))


# -- root keys --------------------------------------------------------------------------

KEY_FUNCTIONS = {"add": "add_root_key", "activate": "activate_root_key", "retire": "retire_root_key"}


def root_key_status() -> Call[list[RootKey]]:
    return Call("SELECT key_id, state, loaded, data_keys, created_at, activated_at FROM hush.root_key_status()", {},
                lambda rows: [RootKey.from_row(r) for r in rows])


def root_key(action: str, key_id: str) -> Call[str]:
    """add, activate or retire (hush.add_root_key, ...); the key's state afterwards."""
    function = KEY_FUNCTIONS[action]
    return Call(f"SELECT hush.{function}(CAST(%(key_id)s AS pg_catalog.text)) AS state", {"key_id": key_id},
                lambda rows: str(rows[0]["state"]))


def rewrap_batch(batch_size: int) -> Call[int]:
    """One batch of CALL hush.rewrap(): the function the procedure calls between its COMMITs
    (granted to hush_admin with it), so that each batch is one statement of any executor."""
    return Call("SELECT hush._rewrap_batch(CAST(%(batch_size)s AS pg_catalog.int4)) AS rewrapped",
                {"batch_size": batch_size}, lambda rows: int(rows[0]["rewrapped"]))


# -- audit ------------------------------------------------------------------------------

# The columns of an AuditRecord but tenant_id and caller_xact, which the table and the
# function give differently. client_addr as inet's text form (psycopg's inet is an
# ipaddress object, other drivers differ), as `hush audit export` has always written it.
TRAIL_COLS = ("id, at, action, secret_id, secret_name, version, db_role, session_role, application_name, "
              "CAST(client_addr AS pg_catalog.text) AS client_addr, txid, outcome, detail")
# Rows of transactions still running stay out: a row that commits late cannot slip in
# behind one already returned (the seal's rule, and what lets `tail --follow` miss nothing).
HORIZON = "a.txid OPERATOR(pg_catalog.<) pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())"
FILTERS = (("tenant_id", "=", "tenant", "text"), ("at", ">=", "since", "timestamptz"),
           ("at", "<", "until", "timestamptz"), ("action", "=", "action", "text"),
           ("secret_name", "=", "secret_name", "text"))


def _records(rows: Rows) -> list[AuditRecord]:
    return [AuditRecord.from_row(r) for r in rows]


# What hush.audit_log() gives application roles: a cursor in place of id and txid, which
# count every tenant's activity.
LOG_COLS = ("cursor, at, action, secret_id, secret_name, version, db_role, session_role, application_name, "
            "CAST(client_addr AS pg_catalog.text) AS client_addr, outcome, detail, caller_xact")


def audit_log(tenant: str, *, since: datetime | None, until: datetime | None, action: str | None,
              secret_name: str | None, max_rows: int, after: str | None = None,
              oldest_first: bool = False) -> Call[list[AuditRecord]]:
    """hush.audit_log(tenant, ...): a granted tenant's rows, for application roles, newest
    first (or oldest first), those after the row whose cursor is `after`."""
    return Call(f"SELECT CAST(%(tenant)s AS pg_catalog.text) AS tenant_id, {LOG_COLS} "
                "FROM hush.audit_log(tenant => CAST(%(tenant)s AS pg_catalog.text), "
                "since => CAST(%(since)s AS pg_catalog.timestamptz), "
                "until => CAST(%(until)s AS pg_catalog.timestamptz), action => CAST(%(action)s AS pg_catalog.text), "
                "secret_name => CAST(%(secret_name)s AS pg_catalog.text), "
                "max_rows => CAST(%(max_rows)s AS pg_catalog.int4), after => CAST(%(after)s AS pg_catalog.text), "
                "oldest_first => CAST(%(oldest_first)s AS pg_catalog.bool))",
                {"tenant": tenant, "since": since, "until": until, "action": action, "secret_name": secret_name,
                 "max_rows": max_rows, "after": after, "oldest_first": oldest_first}, _records)


def audit_query(*, tenant: str | None, since: datetime | None, until: datetime | None, action: str | None,
                secret_name: str | None, after: tuple[int, int] | None, limit: int | None,
                newest: bool = False) -> Call[list[AuditRecord]]:
    """The hush.audit_log table (hush_auditor, hush_admin), in seal order (txid, id): the
    first `limit` rows after `after`, or with `newest` the last `limit` rows. Only the
    filters given are in the statement, so each combination gets its own plan."""
    where: list[str] = [HORIZON]
    params: dict[str, Any] = {}
    for col, op, key, typ in FILTERS:
        value = {"tenant": tenant, "since": since, "until": until, "action": action, "secret_name": secret_name}[key]
        if value is not None:
            where.append(f"a.{col} OPERATOR(pg_catalog.{op}) CAST(%({key})s AS pg_catalog.{typ})")
            params[key] = value
    if after is not None:
        where.append("(a.txid, a.id) OPERATOR(pg_catalog.>) "
                     "(CAST(%(after_txid)s AS pg_catalog.int8), CAST(%(after_id)s AS pg_catalog.int8))")
        params.update(after_txid=after[0], after_id=after[1])
    params["limit"] = limit
    order = "a.txid DESC, a.id DESC" if newest else "a.txid, a.id"
    select = (f"SELECT a.tenant_id, {TRAIL_COLS}, hush.caller_xact(a.detail) AS caller_xact FROM hush.audit_log a "
              f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT CAST(%(limit)s AS pg_catalog.int4)")
    if newest:
        select = f"SELECT * FROM ({select}) r ORDER BY r.txid, r.id"
    return Call(select, params, _records)


def seal() -> Call[AuditSeal]:
    return Call("SELECT seals_created, rows_sealed, unsealed_rows, head_seal_id, head_hash, horizon_pid, horizon_role, "
                "horizon_age FROM hush.seal_audit()",
                {}, lambda rows: AuditSeal.from_row(rows[0]))


def verify(since: datetime | None, known_head: str | None) -> Call[AuditVerification]:
    return Call("SELECT ok, seals_checked, rows_checked, unsealed_rows, head_hash, bad_seal_id, problem, detail "
                "FROM hush.verify_audit(CAST(%(since)s AS pg_catalog.timestamptz), "
                "CAST(%(known_head)s AS pg_catalog.text))",
                {"since": since, "known_head": known_head}, lambda rows: AuditVerification.from_row(rows[0]))


def create_partitions(months_ahead: int) -> Call[list[AuditPartition]]:
    return Call("SELECT partition, range_from, range_to, rows_moved "
                "FROM hush.create_audit_partitions(CAST(%(months_ahead)s AS pg_catalog.int4))",
                {"months_ahead": months_ahead}, lambda rows: [AuditPartition.from_row(r) for r in rows])


def cleanup(retention_days: int) -> Call[AuditCleanup]:
    return Call("SELECT cutoff, partitions_dropped, rows_removed, oldest_removed, newest_removed, anchor_seal_id, "
                "partitions_deferred FROM hush.cleanup_audit_logs(CAST(%(retention_days)s AS pg_catalog.int4))",
                {"retention_days": retention_days}, lambda rows: AuditCleanup.from_row(rows[0]))


def purge_deleted() -> Call[list[PurgedSecrets]]:
    return Call("SELECT tenant_id, secrets_purged FROM hush.purge_deleted_secrets()", {},
                lambda rows: [PurgedSecrets.from_row(r) for r in rows])


def cleanup_oauth(event_days: int) -> Call[list[OAuthCleanup]]:
    return Call("SELECT tenant_id, events_removed, pending_removed "
                "FROM hush.cleanup_oauth(CAST(%(event_days)s AS pg_catalog.int4))",
                {"event_days": event_days}, lambda rows: [OAuthCleanup.from_row(r) for r in rows])


def maintain_secrets(event_days: int) -> Call[list[SecretUpkeep]]:
    return Call("SELECT tenant_id, versions_destroyed, expiring, rotation_due, events_removed "
                "FROM hush.maintain_secrets(CAST(%(event_days)s AS pg_catalog.int4))",
                {"event_days": event_days}, lambda rows: [SecretUpkeep.from_row(r) for r in rows])


def schedule_maintenance(retention_days: int, oauth_event_days: int,
                         secret_event_days: int) -> Call[list[MaintenanceJob]]:
    return Call("SELECT jobname, schedule, command, jobid "
                "FROM hush.schedule_maintenance(CAST(%(retention_days)s AS pg_catalog.int4), "
                "CAST(%(oauth_event_days)s AS pg_catalog.int4), CAST(%(secret_event_days)s AS pg_catalog.int4))",
                {"retention_days": retention_days, "oauth_event_days": oauth_event_days,
                 "secret_event_days": secret_event_days},
                lambda rows: [MaintenanceJob.from_row(r) for r in rows])


# The order `hush audit maintain` and Audit.maintain() run the maintenance in.
MAINTENANCE_STEPS = ("partitions", "seal", "retention", "purge", "oauth", "secrets")


def maintenance_step(step: str, *, months_ahead: int, retention_days: int, oauth_event_days: int,
                     secret_event_days: int) -> Call[Any]:
    if step == "partitions":
        return create_partitions(months_ahead)
    if step == "seal":
        return seal()
    if step == "retention":
        return cleanup(retention_days)
    if step == "purge":
        return purge_deleted()
    if step == "oauth":
        return cleanup_oauth(oauth_event_days)
    if step == "secrets":
        return maintain_secrets(secret_event_days)
    raise ValueError(step)
