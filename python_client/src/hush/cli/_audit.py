"""hush audit seal|verify|export|tail|maintain: the audit trail from the shell.

export and tail read the trail itself, so they need hush_auditor or hush_admin;
an application role reads its own tenants' rows with hush.audit_log(). Rows
come in seal order (txid, id) and only below the oldest running transaction:
a row that commits late is never skipped by `tail --follow`.
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, Callable

import click
import psycopg

from .. import AUDIT_ACTIONS, Audit, AuditRecord, HushError
from .._audit import DEFAULT_OAUTH_EVENT_DAYS, DEFAULT_SECRET_EVENT_DAYS
from ._common import connect, db_error, failure, fails_cleanly, json_option, jsonable, print_json
from ._exits import EXIT_TAMPERED

EXPORT_BATCH = 5000  # rows a statement


def _line(row: AuditRecord) -> str:
    fields = jsonable(row)
    if fields.get("cursor") is None:  # rows read from the table have id and txid instead
        fields.pop("cursor", None)
    return json.dumps(fields, sort_keys=True, default=str)


filters = [
    click.option("--tenant", help="Only this tenant's rows."),
    click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]),
                 help="Rows at or after this time (ISO 8601; no zone = the server's)."),
    click.option("--until", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]),
                 help="Rows before this time."),
    click.option("--action", type=click.Choice(AUDIT_ACTIONS), metavar="ACTION",
                 help=f"Only this action: {', '.join(AUDIT_ACTIONS)}."),
]


def with_filters(fn: Any) -> Any:
    for opt in reversed(filters):
        fn = opt(fn)
    return fn


@click.group()
def audit() -> None:
    """The audit trail: seal it, verify it, export it as JSON lines, follow it, maintain it."""


@audit.command()
@json_option
@click.pass_context
@fails_cleanly
def seal(ctx: click.Context, as_json: bool) -> None:
    """Seal the rows not sealed yet; prints the chain's head hash (keep it somewhere else too)."""
    with connect(ctx) as conn:
        r = Audit(conn).seal()
    if as_json:
        print_json(r)
    else:
        click.echo(f"sealed {r.rows_sealed} rows in {r.seals_created} seals; {r.unsealed_rows} rows wait "
                   f"for running transactions\nhead {r.head_seal_id} {r.head_hash}")
        if r.horizon_role is not None:
            click.echo(f"held back by {'a prepared transaction' if r.horizon_pid is None else f'pid {r.horizon_pid}'} "
                       f"(role {r.horizon_role}), open for {r.horizon_age}", err=True)


@audit.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]),
              help="Check the rows of seals made since then (the chain itself is always checked whole).")
@click.option("--known-head", metavar="HASH",
              help="A head hash kept from an earlier seal or verify: the chain must still hold that seal "
                   "(a failover to a standby that lacked it loses it).")
@json_option
@click.pass_context
@fails_cleanly
def verify(ctx: click.Context, since: datetime | None, known_head: str | None, as_json: bool) -> None:
    """Recompute the seal chain and the rows under it. Exit 10 when anything differs."""
    with connect(ctx) as conn:
        r = Audit(conn).verify(since=since, known_head=known_head)
    if as_json:
        print_json(r)
    elif r.ok:
        click.echo(f"ok: {r.seals_checked} seals, {r.rows_checked} rows checked, {r.unsealed_rows} unsealed"
                   f"\nhead {r.head_hash}")
    else:
        click.echo(f"TAMPERED: {r.problem}: {r.detail}", err=True)
    if not r.ok:
        ctx.exit(EXIT_TAMPERED)


@audit.command()
@with_filters
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.pass_context
@fails_cleanly
def export(ctx: click.Context, tenant: str | None, since: datetime | None, until: datetime | None,
           action: str | None, output: str | None) -> None:
    """Audit rows as JSON lines (one object per row, in seal order) for a SIEM. Needs hush_auditor or hush_admin."""
    out = click.open_file(output or "-", "w", encoding="utf-8")
    n = 0
    with connect(ctx) as conn, out:
        # Keyset pages, each its own statement: no transaction held open however long the trail.
        for row in Audit(conn).iter_all(tenant=tenant, since=since, until=until, action=action,
                                        batch_size=EXPORT_BATCH):
            out.write(_line(row) + "\n")
            n += 1
            if output and n % 50000 == 0:
                click.echo(f"{n} rows", err=True)
    if output:
        click.echo(f"exported {n} rows to {output}", err=True)


@audit.command()
@with_filters
@click.option("-n", "--lines", type=click.IntRange(0), default=20, show_default=True,
              help="How many of the latest rows (0: none, then --follow from now).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing rows as their transactions finish.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls with --follow.")
@click.pass_context
@fails_cleanly
def tail(ctx: click.Context, tenant: str | None, since: datetime | None, until: datetime | None,
         action: str | None, lines: int, follow: bool, interval: float) -> None:
    """The latest audit rows as JSON lines; with --follow, new ones as they come."""
    with connect(ctx) as conn:
        trail = Audit(conn)
        # At least one row, so that --follow starts after the newest even with -n 0.
        rows = trail.tail(max(lines, 1), tenant=tenant, since=since, until=until, action=action)
        last = rows[-1].position if rows else (-1, -1)
        for row in rows if lines else []:
            click.echo(_line(row))
        try:
            while follow:
                time.sleep(interval)
                for row in trail.iter_all(tenant=tenant, since=since, until=until, action=action, after=last):
                    click.echo(_line(row))
                    last = row.position
        except KeyboardInterrupt:
            pass


@audit.command()
@click.option("--retention-days", default=2555, show_default=True, help="Audit rows older than this are removed.")
@click.option("--months-ahead", default=3, show_default=True, help="Monthly partitions to create ahead.")
@click.option("--oauth-event-days", default=DEFAULT_OAUTH_EVENT_DAYS, show_default=True,
              help="OAuth events older than this are removed.")
@click.option("--secret-event-days", default=DEFAULT_SECRET_EVENT_DAYS, show_default=True,
              help="Expiry and rotation reminders older than this are removed.")
@json_option
@click.pass_context
@fails_cleanly
def maintain(ctx: click.Context, retention_days: int, months_ahead: int, oauth_event_days: int,
             secret_event_days: int, as_json: bool) -> None:
    """All maintenance once (for cron without pg_cron): partitions, seal, retention, purge, OAuth cleanup,
    secrets' upkeep (version retention, expiry and rotation reminders). Needs hush_admin."""
    done: dict[str, Any] = {}
    with connect(ctx) as conn:
        trail = Audit(conn)
        # Step by step (Audit.maintain() runs the same ones), so that any error names its step.
        steps: list[tuple[str, Callable[[], list[Any]]]] = [
            ("partitions", lambda: trail.create_partitions(months_ahead)),
            ("seal", lambda: [trail.seal()]),
            ("retention", lambda: [trail.cleanup(retention_days)]),
            ("purge", trail.purge_deleted),
            ("oauth", lambda: trail.cleanup_oauth(oauth_event_days)),
            ("secrets", lambda: trail.maintain_secrets(secret_event_days))]
        for name, step in steps:
            try:
                done[name] = step()
            except (HushError, psycopg.Error) as e:
                err = e if isinstance(e, HushError) else db_error(e)
                err.message = f"{name}: {err.message}"
                raise failure(err) from None
    if as_json:
        print_json(done)
        return
    r, s = done["retention"][0], done["seal"][0]
    click.echo(f"partitions created: {len(done['partitions'])}\n"
               f"sealed: {s.rows_sealed} rows, head {s.head_hash}\n"
               f"retention: {r.rows_removed} rows removed, {r.partitions_dropped} partitions dropped "
               f"(cutoff {r.cutoff.isoformat()})"
               f"{'; deferred, in use: ' + ', '.join(r.partitions_deferred) if r.partitions_deferred else ''}\n"
               f"purged: {sum(p.secrets_purged for p in done['purge'])} soft-deleted secrets\n"
               f"oauth: {sum(o.events_removed for o in done['oauth'])} events, "
               f"{sum(o.pending_removed for o in done['oauth'])} expired pending authorizations removed\n"
               f"secrets: {sum(u.versions_destroyed for u in done['secrets'])} versions destroyed by retention, "
               f"{sum(u.expiring for u in done['secrets'])} expiry and "
               f"{sum(u.rotation_due for u in done['secrets'])} rotation reminders written, "
               f"{sum(u.events_removed for u in done['secrets'])} old reminders removed")
