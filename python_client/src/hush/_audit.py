"""hush.Audit (and hush.aio.AsyncAudit): the audit trail, read, sealed, verified and maintained."""
from __future__ import annotations

from datetime import datetime
from typing import Any, AsyncIterator, Iterator

from . import _admin_calls as q
from ._admin_models import (AuditCleanup, AuditMaintenance, AuditPartition, AuditRecord, AuditSeal,
                            AuditVerification, MaintenanceJob, OAuthCleanup, PurgedSecrets, SecretUpkeep)
from ._calls import Call
from ._errors import HushError, from_sqlstate
from ._exec import executor_for

DEFAULT_RETENTION_DAYS = 2555  # the server's default, 7 years
DEFAULT_MONTHS_AHEAD = 3
DEFAULT_OAUTH_EVENT_DAYS = 90  # the server's default
DEFAULT_SECRET_EVENT_DAYS = 90  # the server's default


def _in_step(step: str, e: HushError) -> HushError:
    """The same error, its message naming the maintenance step that failed."""
    return from_sqlstate(e.code, f"{step}: {e.message}", e.hint) if e.code else HushError(f"{step}: {e.message}")


def _maintenance_calls(months_ahead: int, retention_days: int, oauth_event_days: int,
                       secret_event_days: int) -> list[tuple[str, Call[Any]]]:
    """maintain()'s steps, each with its call, in the order they run."""
    return [(step, q.maintenance_step(step, months_ahead=months_ahead, retention_days=retention_days,
                                      oauth_event_days=oauth_event_days, secret_event_days=secret_event_days))
            for step in q.MAINTENANCE_STEPS]


def _maintenance(done: dict[str, Any]) -> AuditMaintenance:
    return AuditMaintenance(done["partitions"], done["seal"], done["retention"], done["purge"], done["oauth"],
                            done["secrets"])


class Audit:
    """The audit trail. `log()` and `iter_log()` are a tenant's own trail for the application
    roles granted it, each row with an opaque `cursor` instead of the trail's id and txid (which
    count every tenant's activity); the rest needs hush_auditor or hush_admin (`seal`,
    `verify`, `query`, `tail`, `iter_all`) or hush_admin (partitions, retention, purge, their
    schedule, `maintain`).

    `conn` is what hush.Secrets takes. The trail itself is read in seal order, (txid, id), and
    only below the oldest running transaction: a row that commits late is never skipped by a
    reader who goes on `after=` the last row it saw (a cursor, with iter_log). Never a value."""

    def __init__(self, conn: Any) -> None:
        self._exec = executor_for(conn)

    def __repr__(self) -> str:
        return "Audit()"

    def _run(self, call: Call[Any]) -> Any:
        return self._exec.run([call])[0]

    def log(self, tenant: str, *, since: datetime | None = None, until: datetime | None = None,
            action: str | None = None, secret_name: str | None = None,
            max_rows: int = 1000, after: str | None = None, oldest_first: bool = False) -> list[AuditRecord]:
        """A tenant's newest rows, newest first (hush.audit_log(); at most max_rows, up to
        10,000), for any role granted the tenant; `after`, the `cursor` of a row it returned: the
        rows that follow it (older ones, or with `oldest_first` newer ones, of finished
        transactions only)."""
        result: list[AuditRecord] = self._run(q.audit_log(tenant, since=since, until=until, action=action,
                                                          secret_name=secret_name, max_rows=max_rows, after=after,
                                                          oldest_first=oldest_first))
        return result

    def iter_log(self, tenant: str, *, since: datetime | None = None, until: datetime | None = None,
                 action: str | None = None, secret_name: str | None = None, after: str | None = None,
                 batch_size: int = 1000) -> Iterator[AuditRecord]:
        """A tenant's rows oldest first, after the row whose cursor is `after`, by pages of
        batch_size (one statement each): keep the last row's cursor to go on later, missing
        nothing (rows of transactions still running wait until they finish)."""
        while True:
            page = self.log(tenant, since=since, until=until, action=action, secret_name=secret_name,
                            max_rows=batch_size, after=after, oldest_first=True)
            yield from page
            if len(page) < batch_size:
                return
            after = page[-1].cursor

    def query(self, *, tenant: str | None = None, since: datetime | None = None, until: datetime | None = None,
              action: str | None = None, secret_name: str | None = None, after: tuple[int, int] | None = None,
              limit: int | None = 1000) -> list[AuditRecord]:
        """Rows of the trail in seal order, the first `limit` (None: all) after `after`, a
        (txid, id) pair: pass the last row's (txid, id) to read on."""
        result: list[AuditRecord] = self._run(q.audit_query(tenant=tenant, since=since, until=until, action=action,
                                                            secret_name=secret_name, after=after, limit=limit))
        return result

    def tail(self, n: int = 20, *, tenant: str | None = None, since: datetime | None = None,
             until: datetime | None = None, action: str | None = None,
             secret_name: str | None = None) -> list[AuditRecord]:
        """The latest n rows, in seal order (the last is the newest)."""
        result: list[AuditRecord] = self._run(q.audit_query(tenant=tenant, since=since, until=until, action=action,
                                                            secret_name=secret_name, after=None, limit=n,
                                                            newest=True))
        return result

    def iter_all(self, *, tenant: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 action: str | None = None, secret_name: str | None = None, after: tuple[int, int] | None = None,
                 batch_size: int = 5000) -> Iterator[AuditRecord]:
        """Every row in seal order (after `after`), by keyset pages of batch_size (one
        statement each): for an export, however long the trail."""
        while True:
            page = self.query(tenant=tenant, since=since, until=until, action=action, secret_name=secret_name,
                              after=after, limit=batch_size)
            yield from page
            if len(page) < batch_size:
                return
            after = page[-1].position

    def seal(self) -> AuditSeal:
        """Seal the rows of finished transactions not sealed yet; keep `head_hash` somewhere else too.
        Rows that wait: `horizon_pid`, `horizon_role` and `horizon_age` name the transaction
        holding them back. MaintenanceBusy while another maintenance call runs too long."""
        result: AuditSeal = self._run(q.seal())
        return result

    def verify(self, *, since: datetime | None = None, known_head: str | None = None) -> AuditVerification:
        """Recompute the seal chain and the rows under it (those of seals made since `since`, or
        all). `known_head`, a head hash kept from an earlier seal: the chain must still hold it."""
        result: AuditVerification = self._run(q.verify(since, known_head))
        return result

    def create_partitions(self, months_ahead: int = DEFAULT_MONTHS_AHEAD) -> list[AuditPartition]:
        """Create the monthly partitions missing up to months_ahead months ahead; the ones made now."""
        result: list[AuditPartition] = self._run(q.create_partitions(months_ahead))
        return result

    def cleanup(self, retention_days: int = DEFAULT_RETENTION_DAYS) -> AuditCleanup:
        """Remove rows older than retention_days (AuditTampered, and nothing removed, over a
        chain that does not verify). Expired partitions a session keeps in use are left, and
        nothing removed: `partitions_deferred` names them, and the next run tries again."""
        result: AuditCleanup = self._run(q.cleanup(retention_days))
        return result

    def purge_deleted(self) -> list[PurgedSecrets]:
        """Erase soft-deleted secrets past their tenant's recovery window; per tenant, how many."""
        result: list[PurgedSecrets] = self._run(q.purge_deleted())
        return result

    def cleanup_oauth(self, event_days: int = DEFAULT_OAUTH_EVENT_DAYS) -> list[OAuthCleanup]:
        """Remove OAuth events older than event_days and expired pending authorizations, every
        tenant; per tenant, how many."""
        result: list[OAuthCleanup] = self._run(q.cleanup_oauth(event_days))
        return result

    def maintain_secrets(self, event_days: int = DEFAULT_SECRET_EVENT_DAYS) -> list[SecretUpkeep]:
        """Secrets' upkeep, every tenant (hourly under pg_cron): version retention, expiry and
        rotation reminders (hush.secret_events), and the removal of reminders older than
        event_days; per tenant where anything was done, how much."""
        result: list[SecretUpkeep] = self._run(q.maintain_secrets(event_days))
        return result

    def schedule_maintenance(self, retention_days: int = DEFAULT_RETENTION_DAYS,
                             oauth_event_days: int = DEFAULT_OAUTH_EVENT_DAYS,
                             secret_event_days: int = DEFAULT_SECRET_EVENT_DAYS) -> list[MaintenanceJob]:
        """Register the maintenance with pg_cron (NoScheduler, saying what to run instead, without it)."""
        result: list[MaintenanceJob] = self._run(q.schedule_maintenance(retention_days, oauth_event_days,
                                                                        secret_event_days))
        return result

    def maintain(self, *, retention_days: int = DEFAULT_RETENTION_DAYS, months_ahead: int = DEFAULT_MONTHS_AHEAD,
                 oauth_event_days: int = DEFAULT_OAUTH_EVENT_DAYS,
                 secret_event_days: int = DEFAULT_SECRET_EVENT_DAYS) -> AuditMaintenance:
        """All maintenance once, each step its own call (for a scheduler without pg_cron):
        partitions, seal, retention, purge, OAuth cleanup, secrets' upkeep. A failing step's error names it
        ("retention: ..."); over a pool or an autocommit connection the steps before it stay
        done, while over your own transaction the failure aborts it, so nothing is done until
        you retry it."""
        done: dict[str, Any] = {}
        for step, call in _maintenance_calls(months_ahead, retention_days, oauth_event_days, secret_event_days):
            try:
                done[step] = self._run(call)
            except HushError as e:
                raise _in_step(step, e) from e
        return _maintenance(done)


class AsyncAudit:
    """hush.Audit, awaited, over what hush.aio.AsyncSecrets takes."""

    def __init__(self, conn: Any) -> None:
        from .aio import _executor_for
        self._exec = _executor_for(conn)

    def __repr__(self) -> str:
        return "AsyncAudit()"

    async def _run(self, call: Call[Any]) -> Any:
        return (await self._exec.run([call]))[0]

    async def log(self, tenant: str, *, since: datetime | None = None, until: datetime | None = None,
                  action: str | None = None, secret_name: str | None = None,
                  max_rows: int = 1000, after: str | None = None, oldest_first: bool = False) -> list[AuditRecord]:
        result: list[AuditRecord] = await self._run(q.audit_log(tenant, since=since, until=until, action=action,
                                                                secret_name=secret_name, max_rows=max_rows,
                                                                after=after, oldest_first=oldest_first))
        return result

    async def iter_log(self, tenant: str, *, since: datetime | None = None, until: datetime | None = None,
                       action: str | None = None, secret_name: str | None = None, after: str | None = None,
                       batch_size: int = 1000) -> AsyncIterator[AuditRecord]:
        """A tenant's rows oldest first, by cursor pages: `async for record in audit.iter_log(t)`."""
        while True:
            page = await self.log(tenant, since=since, until=until, action=action, secret_name=secret_name,
                                  max_rows=batch_size, after=after, oldest_first=True)
            for record in page:
                yield record
            if len(page) < batch_size:
                return
            after = page[-1].cursor

    async def query(self, *, tenant: str | None = None, since: datetime | None = None,
                    until: datetime | None = None, action: str | None = None, secret_name: str | None = None,
                    after: tuple[int, int] | None = None, limit: int | None = 1000) -> list[AuditRecord]:
        result: list[AuditRecord] = await self._run(q.audit_query(tenant=tenant, since=since, until=until,
                                                                  action=action, secret_name=secret_name,
                                                                  after=after, limit=limit))
        return result

    async def tail(self, n: int = 20, *, tenant: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, action: str | None = None,
                   secret_name: str | None = None) -> list[AuditRecord]:
        result: list[AuditRecord] = await self._run(q.audit_query(tenant=tenant, since=since, until=until,
                                                                  action=action, secret_name=secret_name,
                                                                  after=None, limit=n, newest=True))
        return result

    async def iter_all(self, *, tenant: str | None = None, since: datetime | None = None,
                       until: datetime | None = None, action: str | None = None, secret_name: str | None = None,
                       after: tuple[int, int] | None = None, batch_size: int = 5000) -> AsyncIterator[AuditRecord]:
        """Every row in seal order, by keyset pages: `async for record in audit.iter_all()`."""
        while True:
            page = await self.query(tenant=tenant, since=since, until=until, action=action,
                                    secret_name=secret_name, after=after, limit=batch_size)
            for record in page:
                yield record
            if len(page) < batch_size:
                return
            after = page[-1].position

    async def seal(self) -> AuditSeal:
        result: AuditSeal = await self._run(q.seal())
        return result

    async def verify(self, *, since: datetime | None = None, known_head: str | None = None) -> AuditVerification:
        result: AuditVerification = await self._run(q.verify(since, known_head))
        return result

    async def create_partitions(self, months_ahead: int = DEFAULT_MONTHS_AHEAD) -> list[AuditPartition]:
        result: list[AuditPartition] = await self._run(q.create_partitions(months_ahead))
        return result

    async def cleanup(self, retention_days: int = DEFAULT_RETENTION_DAYS) -> AuditCleanup:
        result: AuditCleanup = await self._run(q.cleanup(retention_days))
        return result

    async def purge_deleted(self) -> list[PurgedSecrets]:
        result: list[PurgedSecrets] = await self._run(q.purge_deleted())
        return result

    async def cleanup_oauth(self, event_days: int = DEFAULT_OAUTH_EVENT_DAYS) -> list[OAuthCleanup]:
        result: list[OAuthCleanup] = await self._run(q.cleanup_oauth(event_days))
        return result

    async def maintain_secrets(self, event_days: int = DEFAULT_SECRET_EVENT_DAYS) -> list[SecretUpkeep]:
        result: list[SecretUpkeep] = await self._run(q.maintain_secrets(event_days))
        return result

    async def schedule_maintenance(self, retention_days: int = DEFAULT_RETENTION_DAYS,
                                   oauth_event_days: int = DEFAULT_OAUTH_EVENT_DAYS,
                                   secret_event_days: int = DEFAULT_SECRET_EVENT_DAYS) -> list[MaintenanceJob]:
        result: list[MaintenanceJob] = await self._run(q.schedule_maintenance(retention_days, oauth_event_days,
                                                                              secret_event_days))
        return result

    async def maintain(self, *, retention_days: int = DEFAULT_RETENTION_DAYS,
                       months_ahead: int = DEFAULT_MONTHS_AHEAD,
                       oauth_event_days: int = DEFAULT_OAUTH_EVENT_DAYS,
                       secret_event_days: int = DEFAULT_SECRET_EVENT_DAYS) -> AuditMaintenance:
        done: dict[str, Any] = {}
        for step, call in _maintenance_calls(months_ahead, retention_days, oauth_event_days, secret_event_days):
            try:
                done[step] = await self._run(call)
            except HushError as e:
                raise _in_step(step, e) from e
        return _maintenance(done)
