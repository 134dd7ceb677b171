"""The `hush` command line: a thin layer over the library.

Nothing happens at import time; main() builds the command group. Secret values
are read from stdin, a file or a no-echo prompt, never from argv.
"""
from __future__ import annotations

import click

from ._common import EXIT_HELP


def build() -> click.Group:
    from . import _admin, _audit, _dev, _keys, _oauth, _secrets, _transfer

    @click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_HELP)
    @click.option("--dsn", envvar="HUSH_DSN", metavar="DSN",
                  help="libpq DSN or URL [env: HUSH_DSN; else the PG* variables].")
    @click.version_option(package_name="hush-client", prog_name="hush")
    def cli(dsn: str | None) -> None:
        """hush: secrets encrypted inside PostgreSQL, from the shell."""

    for module in (_admin, _keys, _secrets, _transfer, _audit, _oauth, _dev):
        for command in module.COMMANDS:
            cli.add_command(command)
    return cli


def main() -> None:
    build()(prog_name="hush")
