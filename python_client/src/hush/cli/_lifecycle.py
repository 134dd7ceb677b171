"""hush due, rotate: rotation schedules, expiry reminders and staged rotation from the shell;
and INTERVAL, how every command takes a length of time ('30d', '12h', '90m')."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import click

from .._models import SecretDue
from .._secrets import Secrets
from ._common import connect, print_json, print_table, read_value, tenant_command, when
from ._exits import EXIT_DUE, EXIT_OK, EXIT_OVERDUE

INTERVAL_HELP = "a number and a unit, s m h d w (seconds to weeks), or a sum such as 1d12h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")


def parse_interval(text: str) -> timedelta:
    """'30d', '12h', '90m', '45s', '2w', or a sum of them such as '1d12h'; '0' is zero.
    No months or years: their length varies, and a schedule should say what it means in days."""
    t = text.strip().lower()
    if t == "0":
        return timedelta(0)
    parts = _PART.findall(t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"{text!r} is not an interval: {INTERVAL_HELP}")
    try:
        return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    except OverflowError:
        raise ValueError(f"{text!r} is too long an interval") from None


def interval(ctx: click.Context, param: click.Parameter, text: str | None) -> timedelta | None:
    """An INTERVAL option's callback (type=str): its text as a timedelta, or a usage error."""
    if text is None:
        return None
    try:
        return parse_interval(text)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def interval_option(*names: str, help: str) -> Any:
    return click.option(*names, callback=interval, metavar="INTERVAL", help=help)
# What --at and --expires-at accept (local time unless an offset is given).
TIMES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def due_exit(rows: list[SecretDue]) -> int:
    """13 when anything is past due, 12 when something comes due in the window, else 0."""
    if any(r.overdue for r in rows):
        return EXIT_OVERDUE
    return EXIT_DUE if rows else EXIT_OK


def _piped_value() -> bool:
    """Whether stdin is a pipe or file that holds something now (a terminal, an empty pipe or
    /dev/null: no). One byte may be consumed: only when there is a value, which is refused."""
    import io
    import select
    import sys
    stream = sys.stdin
    if stream is None or stream.isatty():
        return False
    raw = getattr(stream, "buffer", stream)
    try:
        if not select.select([stream], [], [], 0)[0]:
            return False  # a pipe whose writer has sent nothing yet: reading would wait on it
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # no file descriptor: an in-memory stream, whose read never waits
    return bool(raw.read(1))


def _aware(at: datetime | None) -> datetime | None:
    return at if at is None or at.tzinfo is not None else at.astimezone()


@tenant_command(
    interval_option("--within",
                    help=f"How far ahead to look: {INTERVAL_HELP}; 0 lists only what is overdue or expired "
                         "[default: the tenant's expiry_warning, 14 days]."),
    click.option("--at", type=click.DateTime(TIMES),
                 help="Look from this time rather than now (local time unless an offset is given)."),
    secret_name=False,
)
def due(ctx: click.Context, tenant: str, within: timedelta | None, at: datetime | None, as_json: bool) -> None:
    """What falls due in TENANT: rotations overdue or due within the window
    (rotate_every after the last rotation), secrets expired or expiring in it;
    names you may list, by due time, metadata only.

    Exit code, for cron and monitoring: 0 nothing listed, 12 something comes
    due within the window, 13 something is overdue or expired (other codes:
    errors, see `hush --help`)."""
    with connect(ctx) as conn:
        rows = Secrets(conn, tenant).due(within, at=_aware(at))
    if as_json:
        print_json(rows)
    else:
        print_table(["NAME", "REASON", "DUE", "VERSION", "PENDING"],
                    [[r.name, r.reason, when(r.due_at), r.version, r.pending_version] for r in rows])
    ctx.exit(due_exit(rows))


@tenant_command(
    click.option("--new-value", is_flag=True,
                 help="Save a new value as pending first, then promote it, in one transaction."),
    click.option("--from-file", "source", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
                 metavar="PATH", help="Read the new value from a file ('-' = stdin); implies --new-value."),
    click.option("--keep-newline", is_flag=True, help="Keep a trailing newline of the value read."),
    click.option("--allow-empty", is_flag=True, help="Accept an empty new value."),
    click.option("--expect-version", "expect_version", type=int,
                 help="Check-and-set: with a new value, the current version you expect; without, the pending "
                      "version you expect to promote."),
)
def rotate(ctx: click.Context, tenant: str, name: str, new_value: bool, source: str | None, keep_newline: bool,
           allow_empty: bool, expect_version: int | None, as_json: bool) -> None:
    """Make the pending version of NAME current; the current one becomes
    previous (`hush get --stage previous`) until the next rotation.

    Without --new-value: promote the version staged with `hush put --stage
    pending`. With --new-value (or --from-file): save a new value as pending
    and promote it in one transaction; it comes from --from-file, from stdin
    when piped, or from a no-echo prompt, never from the command line. If
    anything fails, the current value stays as it was."""
    value = None
    if not (new_value or source is not None) and _piped_value():
        # Promoting whatever was staged before, while the value meant to go live is dropped, is
        # the one mistake a rotation must not make silently.
        raise click.UsageError("stdin carries a value: pass --new-value to stage it and promote it")
    if new_value or source is not None:  # read before connecting: a prompt may wait on a person
        value = read_value(source, keep_newline, allow_empty=allow_empty, prompt="New value",
                           empty_hint="--allow-empty accepts it")
    with connect(ctx) as conn:
        secrets = Secrets(conn, tenant)
        if value is None:
            saved = secrets.promote(name, expected_version=expect_version)
        else:
            with conn.transaction():
                staged = secrets.update(name, value, expected_version=expect_version, stage="pending")
                saved = secrets.promote(name, expected_version=staged.version)
    if as_json:
        print_json(saved)
    else:
        click.echo(f"promoted {tenant}/{saved.name}: version {saved.version} is current", err=True)
