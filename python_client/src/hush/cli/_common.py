"""What every command shares: the connection, output, secret input, errors as one line and an exit code."""
from __future__ import annotations

import functools
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, Sequence, TypeVar
from uuid import UUID

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .. import _dsn
from .. import _errors as E
from .._client import connect_kwargs
from .._secrets import Secrets
from ._exits import EXIT_CONNECT, EXIT_INVALID, exit_code
# _dev imports these two from here.
from ._exits import EXIT_ERROR as EXIT_ERROR, Fail as Fail

F = TypeVar("F", bound=Callable[..., Any])

ROLE_HINT = ("{role} needs a hush role: GRANT hush_reader TO {role} (or hush_writer, hush_admin, hush_auditor); "
             "readers and writers also need a tenant grant: hush grant {role} TENANT")


def first_line(e: BaseException) -> str:
    return str(e).strip().split("\n", 1)[0]


def failure(err: E.HushError) -> Fail:
    """One line for the user: the message, its hint, its SQLSTATE when there is one."""
    hint = err.hint
    if isinstance(err, E.PermissionDenied) and not hint:
        ctx = click.get_current_context(silent=True)
        hint = ROLE_HINT.format(role=(ctx.meta.get("hush.role") if ctx else None) or "ROLE")
    line = err.message + (f" (hint: {hint})" if hint else "") + (f" [{err.code}]" if err.code else "")
    return Fail(line, exit_code(err))


def db_error(e: psycopg.Error) -> E.HushError:
    """A database error the library did not translate (SQL run by the CLI itself) as hush's class for its code."""
    message = (e.diag.message_primary or first_line(e)).removeprefix("hush: ")
    if not e.sqlstate:
        return E.HushError(message)
    return E.from_sqlstate(e.sqlstate, message, e.diag.message_hint)


def db_failure(e: psycopg.Error) -> Fail:
    if isinstance(e, psycopg.OperationalError):
        return Fail(f"cannot connect: {first_line(e)}", EXIT_CONNECT)
    return failure(db_error(e))


def fails_cleanly(fn: F) -> F:
    """Turn hush and connection errors into one line on stderr and an exit code."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except E.HushError as e:
            raise failure(e) from None
        except psycopg.Error as e:
            raise db_failure(e) from None
    return wrapper  # type: ignore[return-value]


@contextmanager
def connect(ctx: click.Context) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection from --dsn, HUSH_DSN or the PG* variables (libpq's rules)."""
    dsn: str = ctx.find_root().params.get("dsn") or ""
    given = dsn
    try:
        _dsn.check(dsn)
        if "application_name" not in conninfo_to_dict(dsn) and "PGAPPNAME" not in os.environ:
            dsn = make_conninfo(dsn, application_name="hush-cli")
    except (psycopg.ProgrammingError, E.InvalidArgument) as e:
        why = e.message if isinstance(e, E.InvalidArgument) else _dsn.reason(given, e)
        raise Fail(f"cannot connect: {why} (check --dsn or HUSH_DSN: libpq keywords such as host, port, "
                   "dbname, user, or a postgresql:// URL)", EXIT_CONNECT) from None
    try:
        conn = psycopg.connect(dsn, **connect_kwargs({}, None))  # no prepared statements unless --prepare
    except psycopg.Error as e:
        raise Fail(f"cannot connect: {_dsn.reason(dsn, e)}", EXIT_CONNECT) from None
    ctx.meta["hush.role"] = conn.info.user
    with conn:
        yield conn


def decode(raw: bytes, where: str) -> str:
    """UTF-8 text, or an error that names where it came from (never the bytes: they are secret)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise Fail(f"{where} is not UTF-8 text (line {line}); hush stores text: base64-encode binary data first",
                   EXIT_INVALID) from None


def read_value(source: str | None, keep_newline: bool, *, allow_empty: bool = False, prompt: str = "Value",
               empty_hint: str = "--allow-empty saves it anyway") -> str:
    """A secret value from a file (`-` = stdin), piped stdin, or a no-echo prompt; never argv.
    One trailing newline is dropped (what `echo` and editors add) unless keep_newline.
    An empty value is refused unless allow_empty: an empty pipe is more often a mistake."""
    if source is None and sys.stdin.isatty():
        # click re-asks on an empty answer unless there is a default.
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True,
                                default="" if allow_empty else None, show_default=False))
    where = "stdin" if source in (None, "-") else source
    if source is None or source == "-":
        raw = sys.stdin.buffer.read()
    else:
        with open(source, "rb") as f:
            raw = f.read()
    value = decode(raw, f"the {prompt.lower()} from {where}")
    if not keep_newline:
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    if not value and not allow_empty:
        raise Fail(f"the {prompt.lower()} from {where} is empty; nothing was saved ({empty_hint})", EXIT_INVALID)
    return value


def jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, timedelta):  # seconds: what a script compares
        return obj.total_seconds()
    if isinstance(obj, UUID):
        return str(obj)
    return obj


def print_json(obj: Any) -> None:
    click.echo(json.dumps(jsonable(obj), indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def when(ts: datetime | None) -> str:
    return "" if ts is None else ts.astimezone().strftime("%Y-%m-%d %H:%M")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def tenant_command(*options: Callable[[Any], Any], name: str | None = None, secret_name: bool = True,
                   json: bool = True, context_settings: dict[str, Any] | None = None,
                   ) -> Callable[[Callable[..., Any]], click.Command]:
    """A command taking TENANT (and NAME), then `options`, then --json; it gets the
    click context and fails with one line and an exit code."""
    def wrap(fn: Callable[..., Any]) -> click.Command:
        fn = click.pass_context(fails_cleanly(fn))
        if json:
            fn = json_option(fn)
        for option in reversed(options):
            fn = option(fn)
        if secret_name:
            fn = click.argument("name")(fn)
        fn = click.argument("tenant")(fn)
        command: click.Command = click.command(name, context_settings=context_settings)(fn)
        return command
    return wrap


@contextmanager
def tenant_secrets(ctx: click.Context, tenant: str) -> Iterator[Secrets]:
    """The tenant's Secrets over a connection made for this command."""
    with connect(ctx) as conn:
        yield Secrets(conn, tenant)
