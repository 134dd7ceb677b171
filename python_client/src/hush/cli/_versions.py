"""hush --version: the client's version, the database's extension version, and whether they fit."""
from __future__ import annotations

import click
import psycopg

from .. import _version
from .._version import __version__, supported_range, supports_extension
from ._common import first_line

# --version must answer at once, also when the server does not.
CONNECT_TIMEOUT = 3


def extension_version(dsn: str) -> tuple[str | None, str]:
    """(extversion or None when hush is not installed, database name)."""
    with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT, application_name="hush-cli") as conn:
        row = conn.execute("SELECT (SELECT extversion FROM pg_catalog.pg_extension "
                           "WHERE extname OPERATOR(pg_catalog.=) 'hush'), pg_catalog.current_database()").fetchone()
    assert row is not None
    return row[0], row[1]


def report(dsn: str | None) -> None:
    """Print both versions; a database that cannot be reached makes the extension's unknown, not an error."""
    click.echo(f"hush client {__version__} (supports extension {supported_range()})")
    try:
        version, database = extension_version(dsn or "")
    except psycopg.Error as e:
        click.echo(f"hush extension: unknown (cannot connect: {first_line(e)})")
        return
    if version is None:
        click.echo(f"hush extension: not installed in database {database}")
        return
    click.echo(f"hush extension {version} (database {database})")
    if not supports_extension(version):
        click.echo(f"warning: this client supports hush extension {supported_range()}, not {version}: "
                   + ("update the extension (ALTER EXTENSION hush UPDATE, after make install)"
                      if _series(version) < _series(_version.SUPPORTED_EXTENSION_SERIES[0]) else
                      "install a client that supports it (pip install -U hush-client)"), err=True)


def _series(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
