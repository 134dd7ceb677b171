"""What every command shares: the connection, output, secret input, exit codes."""
from __future__ import annotations

import functools
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence, TypeVar
from uuid import UUID

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .. import _errors as E
from .._secrets import Secrets

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes, documented in the README (`hush --help` lists them too).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2          # click's own code for bad usage
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
EXIT_CONFLICT = 5
EXIT_INVALID = 6
EXIT_GONE = 7           # expired or destroyed
EXIT_KEY = 8            # root key unavailable, decryption failed
EXIT_CONNECT = 9        # cannot reach the database
EXIT_TAMPERED = 10      # the audit trail does not match its seals
EXIT_OAUTH = 11         # the OAuth provider refused or failed; or the account must authorize again

EXIT_CODES: list[tuple[type[E.HushError], int]] = [
    (E.SecretNotFound, EXIT_NOT_FOUND),          # VersionNotFound included
    (E.TenantAccessDenied, EXIT_DENIED), (E.PermissionDenied, EXIT_DENIED),
    (E.VersionConflict, EXIT_CONFLICT), (E.SecretDeleted, EXIT_CONFLICT),
    (E.InvalidInput, EXIT_INVALID),
    (E.SecretExpired, EXIT_GONE), (E.VersionDestroyed, EXIT_GONE),
    (E.KeyUnavailable, EXIT_KEY), (E.DecryptionFailed, EXIT_KEY),
    (E.RootKeyUnknown, EXIT_NOT_FOUND), (E.RootKeyInUse, EXIT_CONFLICT),
    (E.AuditTampered, EXIT_TAMPERED),
    (E.OAuthProviderNotFound, EXIT_NOT_FOUND), (E.OAuthConnectionNotFound, EXIT_NOT_FOUND),
    (E.OAuthAccountAmbiguous, EXIT_INVALID), (E.OAuthStateInvalid, EXIT_GONE), (E.OAuthLeaseLost, EXIT_CONFLICT),
    (E.ReauthorizationRequired, EXIT_OAUTH), (E.OAuthError, EXIT_OAUTH),
]

EXIT_HELP = """Exit codes: 0 ok, 1 other error, 2 usage, 3 not found, 4 access denied,
5 conflict (check-and-set, deleted), 6 invalid input, 7 expired or destroyed,
8 root key or decryption, 9 cannot connect, 10 audit trail does not match its seals,
11 the OAuth provider refused or failed (or the account must authorize again)."""


class Fail(click.ClickException):
    """An error for the user, with the exit code scripts branch on."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        setattr(self, "exit_code", code)  # a ClassVar in click's stubs; click reads it per instance


def exit_code(err: E.HushError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(err, cls):
            return code
    return EXIT_ERROR


def db_exit_code(e: psycopg.Error) -> int:
    """The exit code of a database error the library did not translate (SQL run by the CLI itself)."""
    return exit_code(E.from_sqlstate(e.sqlstate, str(e))) if e.sqlstate else EXIT_ERROR


def fails_cleanly(fn: F) -> F:
    """Turn hush and connection errors into one line on stderr and an exit code."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except E.HushError as e:
            raise Fail(f"{e} [{e.code}]", exit_code(e)) from None
        except psycopg.OperationalError as e:
            raise Fail(f"cannot connect: {str(e).strip()}", EXIT_CONNECT) from None
        except psycopg.Error as e:
            raise Fail(f"{str(e).strip()} [{e.sqlstate}]", db_exit_code(e)) from None
    return wrapper  # type: ignore[return-value]


@contextmanager
def connect(ctx: click.Context) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection from --dsn, HUSH_DSN or the PG* variables (libpq's rules)."""
    dsn: str = ctx.find_root().params.get("dsn") or ""
    if "application_name" not in conninfo_to_dict(dsn) and "PGAPPNAME" not in os.environ:
        dsn = make_conninfo(dsn, application_name="hush-cli")
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as e:
        raise Fail(f"cannot connect: {str(e).strip()}", EXIT_CONNECT) from None
    with conn:
        yield conn


def read_value(source: str | None, keep_newline: bool, prompt: str = "Value") -> str:
    """A secret value from a file (`-` = stdin), piped stdin, or a no-echo prompt; never argv.
    One trailing newline is dropped (what `echo` and editors add) unless keep_newline."""
    if source is not None:
        f = click.open_file(source, "r", encoding="utf-8")
        with f:
            value = str(f.read())
    elif not sys.stdin.isatty():
        value = sys.stdin.read()
    else:
        value = str(click.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True))
        return value
    if not keep_newline:
        value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
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
