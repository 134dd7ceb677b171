"""The `hush` command line: a thin layer over the library.

Nothing happens at import time; main() builds the command group. A command's
module (and psycopg, and the OAuth stack) is imported only when that command
runs, so `hush --help` starts fast. Secret values are read from stdin, a file
or a no-echo prompt, never from argv.
"""
from __future__ import annotations

import errno
import importlib
import sys
from typing import Any

import click

from .._oauth_extra import OAuthExtraMissing
from ._exits import EXIT_ERROR, EXIT_HELP, Fail

# name: (module, attribute, the line `hush --help` shows without importing the module).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "put": ("_secrets", "put", "Save a secret (value from stdin, a file or a prompt)."),
    "get": ("_secrets", "get", "Print a secret's value (audited)."),
    "ls": ("_secrets", "ls", "List a tenant's secrets (metadata only, never values)."),
    "search": ("_secrets", "search", "Find secrets by name, description or tag."),
    "history": ("_secrets", "history", "A secret's versions."),
    "rm": ("_secrets", "rm", "Soft-delete a secret (undo with `hush restore`)."),
    "restore": ("_secrets", "restore", "Undo a soft delete."),
    "destroy": ("_secrets", "destroy", "Erase versions of a secret for good."),
    "rotate": ("_lifecycle", "rotate", "Promote a secret's pending version (or a new value) to current."),
    "due": ("_lifecycle", "due", "What is due for rotation or expires soon (exit 12/13 for monitoring)."),
    "import": ("_transfer", "import_", "Save every secret of a .env or JSON file, all or nothing."),
    "export": ("_transfer", "export", "Write a tenant's secrets as .env or JSON."),
    "run": ("_transfer", "run", "Run a command with the secrets as environment variables."),
    "keygen": ("_admin", "keygen", "Write a new root key to a keyring file."),
    "init": ("_admin", "init", "Install hush in a database and register the root key."),
    "grant": ("_admin", "grant", "Let a role act on all of a tenant (hush_admin)."),
    "revoke": ("_admin", "revoke", "Remove a role's grants on a tenant (hush_admin)."),
    "access": ("_access", "access", "Scoped grants: show, grant or revoke capabilities on name prefixes."),
    "keys": ("_keys", "keys", "Root keys: status, add, activate, rewrap, retire."),
    "audit": ("_audit", "audit", "The audit trail: seal, verify, export, tail, maintain."),
    "oauth": ("_oauth", "oauth", "OAuth2/OIDC providers, logins and tokens."),
    "oauth-worker": ("_oauth", "oauth_worker", "Keep OAuth tokens fresh ahead of expiry."),
    "dev": ("_dev", "dev", "A throwaway local cluster with hush installed."),
}


class LazyGroup(click.Group):
    """The top-level group: commands are loaded by name on first use, and
    errors no command turned into an exit code still end in one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        try:
            command: click.Command = getattr(importlib.import_module(f".{module}", __name__), attribute)
        except OAuthExtraMissing as e:
            raise Fail(str(e), EXIT_ERROR) from None
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, _, summary) in COMMANDS.items()])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as e:
            if e.errno == errno.EPIPE:  # `hush export | head`: click exits quietly
                raise
            where = f"{e.filename}: " if e.filename else ""
            raise Fail(f"{where}{e.strerror or e}", EXIT_ERROR) from None
        except Exception as e:
            # A database error a command did not map (psycopg is loaded by then if it can be one).
            psycopg = sys.modules.get("psycopg")
            if psycopg is None or not isinstance(e, psycopg.Error):
                raise
            from ._common import db_failure
            raise db_failure(e) from None


def build() -> click.Group:
    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP,
                 invoke_without_command=True, no_args_is_help=True, subcommand_metavar="COMMAND [ARGS]...")
    @click.option("--dsn", envvar="HUSH_DSN", metavar="DSN",
                  help="libpq DSN or URL [env: HUSH_DSN; else the PG* variables].")
    @click.option("--prepare", is_flag=True, envvar="HUSH_PREPARE",
                  help="Let psycopg prepare hush's statements: a little faster on a direct connection, "
                       "broken through pgbouncer in transaction mode [env: HUSH_PREPARE=1].")
    @click.option("--version", "show_version", is_flag=True,
                  help="Show the client's version and the database's hush extension version, then exit.")
    @click.pass_context
    def cli(ctx: click.Context, dsn: str | None, prepare: bool, show_version: bool) -> None:
        """hush: secrets encrypted inside PostgreSQL, from the shell."""
        from .._log import set_prepare_default
        set_prepare_default(True if prepare else None)  # this invocation's, also when called in-process
        if show_version:
            from ._versions import report
            report(dsn)
            ctx.exit(0)
        if ctx.invoked_subcommand is None:
            raise click.UsageError("Missing command.", ctx)

    return cli


def main() -> None:
    build()(prog_name="hush")
