"""hush put, get, ls, search, history, rm, restore, destroy."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import click
import psycopg

from .._models import Page, SecretMetadata
from .._secrets import Secrets
from ._common import connect, jsonable, print_json, print_table, read_value, tenant_command, tenant_secrets, when
from ._exits import EXIT_INVALID, EXIT_USAGE, Fail
from ._lifecycle import INTERVAL_HELP, TIMES, interval_option

# A PATH option whose file must exist ('-' = stdin): a missing one is a usage error before anything runs.
from_file = click.Path(exists=True, dir_okay=False, allow_dash=True)


def _future(ctx: click.Context, param: click.Parameter, expires_at: datetime | None) -> datetime | None:
    """--expires-at as an aware datetime, refused when it is already past (the secret would be unreadable)."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.astimezone()
    if expires_at <= datetime.now(timezone.utc):
        raise click.BadParameter(f"{expires_at.isoformat()} is in the past: reads would fail at once")
    return expires_at


@tenant_command(
    click.option("--from-file", "source", type=from_file, metavar="PATH",
                 help="Read the value from a file ('-' = stdin)."),
    click.option("--keep-newline", is_flag=True, help="Keep a trailing newline of the value read."),
    click.option("--allow-empty", is_flag=True, help="Save an empty value (refused otherwise: usually a mistake)."),
    click.option("--description"),
    click.option("--tag", "tags", multiple=True, help="A tag (repeat for several); replaces the tags."),
    click.option("--kind", help="generic, api_key, password, token, certificate, ..."),
    click.option("--metadata", help="A JSON object of non-secret metadata."),
    click.option("--expires-at", type=click.DateTime(TIMES), callback=_future,
                 help="When reads start failing with 'expired' (local time unless an offset is given)."),
    click.option("--expect-version", type=int, help="Check-and-set: fail unless at this version (0 = create only)."),
    click.option("--stage", type=click.Choice(["current", "pending"]),
                 help="pending: stage the value for `hush rotate` and keep the current one; a value only, "
                      "with no other option [default: current]."),
    interval_option("--rotate-every", help=f"Rotation schedule, for `hush due`: {INTERVAL_HELP}; 0 removes it."),
    click.option("--max-versions", type=int,
                 help="Keep at most this many versions (0: the tenant's setting); needs `destroy` on NAME."),
    interval_option("--destroy-versions-after",
                    help="Destroy versions created longer ago than this (0: the tenant's setting); needs "
                         "`destroy` on NAME."),
)
def put(ctx: click.Context, tenant: str, name: str, source: str | None, keep_newline: bool, allow_empty: bool,
        description: str | None, tags: tuple[str, ...], kind: str | None, metadata: str | None,
        expires_at: datetime | None, expect_version: int | None, stage: str | None, rotate_every: timedelta | None,
        max_versions: int | None, destroy_versions_after: timedelta | None, as_json: bool) -> None:
    """Save a secret (a new version if NAME exists).

    The value comes from --from-file, from stdin when it is piped, or from a
    no-echo prompt: never from the command line, where `ps` and shell history
    would show it. Retention never destroys the current, pending or previous
    version."""
    meta: dict[str, Any] | None = None
    if metadata is not None:
        try:
            meta = json.loads(metadata)
        except ValueError as e:
            raise Fail(f"--metadata is not JSON: {e}", EXIT_INVALID) from None
    value = read_value(source, keep_newline, allow_empty=allow_empty)
    with tenant_secrets(ctx, tenant) as secrets:
        saved = secrets.save(name, value, description=description, tags=tags or None, metadata=meta,
                             kind=kind, expected_version=expect_version, expires_at=expires_at, stage=stage,
                             rotate_every=rotate_every, max_versions=max_versions,
                             destroy_versions_after=destroy_versions_after)
    if as_json:
        print_json(saved)
    else:
        staged = " (pending: promote with `hush rotate`)" if stage == "pending" else ""
        click.echo(f"saved {tenant}/{saved.name} version {saved.version}{staged}", err=True)


@tenant_command(
    click.option("--version", "version", type=int, help="A given version (default: the latest)."),
    click.option("--stage", type=click.Choice(["current", "pending", "previous"]),
                 help="The version of a stage: pending (staged, not promoted yet), previous (before the last "
                      "rotation)."),
    click.option("-n", "--no-newline", is_flag=True, help="Print the value without a newline after it."),
)
def get(ctx: click.Context, tenant: str, name: str, version: int | None, stage: str | None, no_newline: bool,
        as_json: bool) -> None:
    """Print a secret's value (audited). --json prints the value with its metadata."""
    with tenant_secrets(ctx, tenant) as secrets:
        secret = secrets.get(name, version, stage=stage)
    if as_json:
        print_json(secret)
    else:
        click.echo(secret.value, nl=not no_newline)


# The current versions among NAMES that are destroyed, with the server's clock (expiry is the
# server's call, whatever this machine's clock says): one statement for the whole page.
# secret_versions is metadata only, so nothing is read or audited.
STATE_SQL = """
SELECT pg_catalog.statement_timestamp(),
       ARRAY(SELECT n.name
               FROM pg_catalog.unnest(CAST(%(names)s AS pg_catalog.text[])) AS n(name)
              CROSS JOIN LATERAL hush.secret_versions(CAST(%(tenant)s AS pg_catalog.text), n.name) AS v
              WHERE v.is_current AND v.destroyed)
"""


def server_now(conn: psycopg.Connection[Any]) -> datetime:
    """The server's clock: what a read's expiry check compares expires_at with."""
    row = conn.execute("SELECT pg_catalog.statement_timestamp()").fetchone()
    assert row is not None
    now: datetime = row[0]
    return now


def expired(meta: SecretMetadata, now: datetime) -> bool:
    return meta.expires_at is not None and meta.expires_at <= now


def states(conn: psycopg.Connection[Any], tenant: str, metas: Sequence[SecretMetadata]) -> list[str]:
    """Each secret's state, as a read of its latest value would find it: deleted, expired,
    destroyed (its current version), or active. Deleted and expired come first, in the
    order the server checks them."""
    live = [m.name for m in metas if m.deleted_at is None]
    if not live:
        return ["deleted"] * len(metas)
    row = conn.execute(STATE_SQL, {"names": live, "tenant": tenant}).fetchone()
    assert row is not None
    now, destroyed = row[0], set(row[1])
    return ["deleted" if m.deleted_at else "expired" if expired(m, now) else
            "destroyed" if m.name in destroyed else "active" for m in metas]


def _print_page(page: Page[SecretMetadata], state: list[str], as_json: bool) -> None:
    if as_json:
        print_json({"data": [{**jsonable(m), "state": s} for m, s in zip(page.data, state)], "page": page.page,
                    "per_page": page.per_page, "total": page.total, "total_exact": page.total_exact,
                    "total_pages": page.total_pages, "next_after": page.next_after})
        return
    print_table(["NAME", "KIND", "VERSION", "STATE", "UPDATED", "TAGS", "DESCRIPTION"],
                [[m.name, m.kind, m.version, s, when(m.updated_at), ",".join(m.tags), m.description]
                 for m, s in zip(page.data, state)])
    if page.next_after is not None:
        total = f"{page.total}" if page.total_exact else f"more than {page.total}"
        click.echo(f"-- {len(page.data)} of {total}; next page: --after {page.next_after!r}", err=True)


PAGE_OPTIONS = (
    click.option("--page", type=int, default=1, show_default=True),
    click.option("--per-page", type=int, default=50, show_default=True),
    click.option("--after", metavar="NAME", help="Start after this name (keyset paging: fast at any depth)."),
)


@tenant_command(
    click.option("--prefix", help="Only names starting with this."),
    click.option("--tag", "tags", multiple=True, help="Only secrets with this tag (repeat: all of them)."),
    click.option("--deleted", is_flag=True, help="Include soft-deleted secrets."),
    *PAGE_OPTIONS, name="ls", secret_name=False,
)
def ls(ctx: click.Context, tenant: str, prefix: str | None, tags: tuple[str, ...], deleted: bool, page: int,
       per_page: int, after: str | None, as_json: bool) -> None:
    """List a tenant's secrets (metadata only, never values).

    STATE is what a read of the latest value would meet: active, expired,
    destroyed (the current version was destroyed) or deleted (with --deleted)."""
    with connect(ctx) as conn:
        result = Secrets(conn, tenant).list(page=page, per_page=per_page, prefix=prefix, tags=tags or None,
                                            include_deleted=deleted, after=after)
        state = states(conn, tenant, result.data)
    _print_page(result, state, as_json)


@tenant_command(click.argument("query"), *PAGE_OPTIONS, secret_name=False)
def search(ctx: click.Context, tenant: str, query: str, page: int, per_page: int, after: str | None,
           as_json: bool) -> None:
    """Find secrets whose name, description or tags contain QUERY (case-insensitive)."""
    with connect(ctx) as conn:
        result = Secrets(conn, tenant).search(query, page=page, per_page=per_page, after=after)
        state = states(conn, tenant, result.data)
    _print_page(result, state, as_json)


@tenant_command()
def history(ctx: click.Context, tenant: str, name: str, as_json: bool) -> None:
    """A secret's versions: when, by whom, under which root key, and their state:
    destroyed, or the stage current, pending or previous."""
    with tenant_secrets(ctx, tenant) as secrets:
        versions = secrets.versions(name)
    if as_json:
        print_json(versions)
        return
    print_table(["VERSION", "CREATED", "BY", "KEY", "STATE"],
                [[v.version, when(v.created_at), v.created_by, v.key_id or "",
                  "destroyed" if v.destroyed else (v.stage or "")] for v in versions])


@tenant_command(json=False)
def rm(ctx: click.Context, tenant: str, name: str) -> None:
    """Soft-delete a secret (undo with `hush restore`; erase with `hush destroy`)."""
    with tenant_secrets(ctx, tenant) as secrets:
        secrets.delete(name)
    click.echo(f"deleted {tenant}/{name} (restore with: hush restore {tenant} {name})", err=True)


@tenant_command()
def restore(ctx: click.Context, tenant: str, name: str, as_json: bool) -> None:
    """Undo a soft delete."""
    with tenant_secrets(ctx, tenant) as secrets:
        meta = secrets.restore(name)
    if as_json:
        print_json(meta)
    else:
        click.echo(f"restored {tenant}/{meta.name} at version {meta.version}", err=True)


@tenant_command(
    click.option("--version", "versions", type=int, multiple=True, help="A version to destroy (repeat; default: all)."),
    click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
)
def destroy(ctx: click.Context, tenant: str, name: str, versions: tuple[int, ...], yes: bool, as_json: bool) -> None:
    """Erase versions of a secret for good: no restore brings them back."""
    what = f"versions {', '.join(map(str, versions))} of" if versions else "every version of"
    if not yes:
        if not sys.stdin.isatty():
            raise Fail(f"destroying {what} {tenant}/{name} needs --yes when stdin is not a terminal", EXIT_USAGE)
        click.confirm(f"Destroy {what} {tenant}/{name} for good?", abort=True, err=True)
    with tenant_secrets(ctx, tenant) as secrets:
        n = secrets.destroy(name, versions or None)
    if as_json:
        print_json({"tenant": tenant, "name": name, "destroyed": n})
    else:
        click.echo(f"destroyed {n} version(s) of {tenant}/{name}", err=True)
