"""The typed results of the administration APIs (hush.Tenants, hush.Keys,
hush.Audit): one class per row shape of the SQL function that returns it, read
by column name. None of them holds a secret value or key material: key ids,
counts, hashes and audit rows only.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Mapping, TypeVar

R = TypeVar("R")


def _by_name(cls: type[R], row: Mapping[str, Any]) -> R:
    """A dataclass from the columns named like its fields (a column the server adds is ignored)."""
    return cls(**{f.name: row[f.name] for f in fields(cls)})  # type: ignore[arg-type]


class ByName:
    """A result whose fields are the row's columns of the same names: from_row() takes them."""

    __slots__ = ()

    @classmethod
    def from_row(cls: type[R], r: Mapping[str, Any]) -> R:
        return _by_name(cls, r)


@dataclass(frozen=True, slots=True)
class TenantSettings(ByName):
    """A tenant's settings, as `hush.configure_tenant` returns them."""

    tenant_id: str
    audit_reads: bool
    max_value_bytes: int
    recovery_days: int
    audit_rows_per_second: int
    reader_refresh: bool  # whether readers may refresh OAuth tokens themselves
    updated_at: datetime
    max_versions: int  # 0: no limit (a secret's own setting applies first)
    destroy_versions_after: timedelta  # timedelta(0): never
    expiry_warning: timedelta  # how far ahead due() and the maintenance reminders look



@dataclass(frozen=True, slots=True)
class RootKey(ByName):
    """One root key, by id: `state` is active, decrypt_only, retired or unregistered (in the
    keyring, not registered yet); `loaded` whether the server's keyring holds it now;
    `data_keys` how many data keys it seals."""

    key_id: str
    state: str
    loaded: bool
    data_keys: int
    created_at: datetime | None
    activated_at: datetime | None



@dataclass(frozen=True, slots=True)
class RootKeyStatus:
    """`hush.root_key_status()`: the keys, and the warnings the server gave with them (why the
    keyring could not be read, for one). Iterating it iterates the keys."""

    keys: list[RootKey]
    warnings: list[str]

    @property
    def active(self) -> RootKey | None:
        """The key new data keys are sealed with, if there is one."""
        return next((k for k in self.keys if k.state == "active"), None)

    def __iter__(self) -> Any:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass(frozen=True, slots=True)
class RootKeyChange:
    """What add, activate or retire left: the key's state, and the server's warnings (a standby
    whose keyring lacks the key, for one)."""

    key_id: str
    state: str
    warnings: list[str]


def _uuid_or_none(v: Any) -> uuid.UUID | None:
    if v is None or isinstance(v, uuid.UUID):
        return v
    return uuid.UUID(str(v))


def _json_or_none(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    return json.loads(v) if isinstance(v, (str, bytes)) else dict(v)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the audit trail; never a value. `db_role` is the role the calling code ran
    as, `session_role` the login role; `client_addr` is inet's text form (None over a Unix
    socket); `caller_xact`, for read records committed apart, whether the reading transaction
    committed (see `hush.caller_xact`), None for rows written in the caller's own transaction.

    Read from the table (auditors, admins: Audit.query, tail, iter_all): `id` and `txid`, the
    writing transaction (seal order is (txid, id)); `cursor` is None. Read through
    hush.audit_log() (application roles: Audit.log, iter_log): `cursor`, an opaque token to pass
    as `after=`; `id` and `txid` are None, since they count every tenant's activity."""

    id: int | None
    tenant_id: str
    at: datetime
    action: str
    secret_id: uuid.UUID | None
    secret_name: str | None
    version: int | None
    db_role: str
    session_role: str
    application_name: str | None
    client_addr: str | None
    txid: int | None
    outcome: str
    detail: dict[str, Any] | None
    caller_xact: str | None
    cursor: str | None = None

    @property
    def position(self) -> tuple[int, int]:
        """(txid, id), the row's place in seal order, for `after=` of Audit.query and iter_all;
        ValueError for a row of Audit.log, which has a `cursor` instead."""
        if self.txid is None or self.id is None:
            raise ValueError("a row from hush.audit_log() has a cursor, not a position: pass after=row.cursor")
        return self.txid, self.id

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> AuditRecord:
        return cls(r.get("id"), r["tenant_id"], r["at"], r["action"], _uuid_or_none(r["secret_id"]), r["secret_name"],
                   r["version"], r["db_role"], r["session_role"], r["application_name"], r["client_addr"],
                   r.get("txid"), r["outcome"], _json_or_none(r["detail"]), r["caller_xact"], r.get("cursor"))


@dataclass(frozen=True, slots=True)
class AuditSeal(ByName):
    """`hush.seal_audit()`: seals made, rows they cover, rows still waiting for running
    transactions, and the chain's head (keep `head_hash` somewhere else too). When rows wait,
    `horizon_pid`, `horizon_role` and `horizon_age` name the oldest running transaction, which
    holds them back (the pid is None for a prepared transaction)."""

    seals_created: int
    rows_sealed: int
    unsealed_rows: int
    head_seal_id: int | None
    head_hash: str | None
    horizon_pid: int | None
    horizon_role: str | None
    horizon_age: timedelta | None



@dataclass(frozen=True, slots=True)
class AuditVerification(ByName):
    """`hush.verify_audit()`: `ok`, or the first seal that differs (`bad_seal_id`) and why
    (`problem`: rows_changed, seal_missing, ...; `detail`)."""

    ok: bool
    seals_checked: int
    rows_checked: int
    unsealed_rows: int
    head_hash: str | None
    bad_seal_id: int | None
    problem: str | None
    detail: str | None



@dataclass(frozen=True, slots=True)
class AuditPartition(ByName):
    """A monthly audit partition `hush.create_audit_partitions()` created (UTC bounds), and the
    rows that moved into it from the DEFAULT partition."""

    partition: str
    range_from: datetime
    range_to: datetime
    rows_moved: int



@dataclass(frozen=True, slots=True)
class AuditCleanup(ByName):
    """`hush.cleanup_audit_logs()`: what retention removed, and the seal that anchors what is left."""

    cutoff: datetime
    partitions_dropped: int
    rows_removed: int
    oldest_removed: datetime | None
    newest_removed: datetime | None
    anchor_seal_id: int | None
    # Expired partitions another session kept in use through every try: nothing was removed then.
    partitions_deferred: list[str]



@dataclass(frozen=True, slots=True)
class PurgedSecrets(ByName):
    """`hush.purge_deleted_secrets()`: how many soft-deleted secrets of a tenant were erased."""

    tenant_id: str
    secrets_purged: int



@dataclass(frozen=True, slots=True)
class OAuthCleanup(ByName):
    """`hush.cleanup_oauth()`: of a tenant, how many OAuth events past their retention and
    expired pending authorizations were removed."""

    tenant_id: str
    events_removed: int
    pending_removed: int



@dataclass(frozen=True, slots=True)
class SecretUpkeep(ByName):
    """`hush.maintain_secrets()`: of a tenant, how many versions retention destroyed, how many
    expiry reminders (expiring, expired) and rotation reminders (due, overdue) it wrote to
    hush.secret_events, and how many reminders past their retention it removed."""

    tenant_id: str
    versions_destroyed: int
    expiring: int
    rotation_due: int
    events_removed: int



@dataclass(frozen=True, slots=True)
class MaintenanceJob(ByName):
    """A pg_cron job `hush.schedule_maintenance()` registered."""

    jobname: str
    schedule: str
    command: str
    jobid: int



@dataclass(frozen=True, slots=True)
class AuditMaintenance:
    """What `Audit.maintain()` did, step by step (partitions, seal, retention, purge, OAuth cleanup,
    secrets' upkeep)."""

    partitions: list[AuditPartition]
    seal: AuditSeal
    retention: AuditCleanup
    purge: list[PurgedSecrets]
    oauth: list[OAuthCleanup]
    secrets: list[SecretUpkeep]
