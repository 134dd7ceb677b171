"""hush keygen, init, grant, revoke: setting a database up."""
from __future__ import annotations

import base64
import hashlib
import os
import pwd
import secrets
import stat
from pathlib import Path
from typing import Any

import click
import psycopg

from .. import Keys, Tenants
from ._common import connect, fails_cleanly, json_option, print_json
from ._exits import EXIT_ERROR, EXIT_INVALID, EXIT_KEY, EXIT_USAGE, Fail


def key_id(key: bytes) -> str:
    """The id hush shows for a root key (the extension's keyring.key_id, recomputed here)."""
    return hashlib.blake2b(key, digest_size=16, person=b"hush-root-key").hexdigest()


def _owner(ctx: click.Context, param: click.Parameter, owner: str | None) -> tuple[int, int] | None:
    """--owner as (uid, gid), resolved before anything is written."""
    if owner is None:
        return None
    try:
        pw = pwd.getpwnam(owner)
    except KeyError:
        raise click.BadParameter(f"no OS user named {owner!r}") from None
    return pw.pw_uid, pw.pw_gid


def _open_keyring(path: Path, append: bool) -> int:
    """A descriptor to write the keyring through, after the checks that can fail without writing anything."""
    if not path.parent.is_dir():
        raise Fail(f"{path.parent} is not a directory: create it first, readable by the server's OS user only "
                   f"(install -d -m 700 {path.parent})", EXIT_USAGE)
    if not append:
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise Fail(f"{path} exists: use --append to add a key to it", EXIT_INVALID) from None
    try:
        st = path.stat()
    except FileNotFoundError:
        raise Fail(f"{path} does not exist (drop --append to create it)", EXIT_INVALID) from None
    if st.st_mode & 0o077:
        raise Fail(f"{path} is readable or writable by group or others (mode {stat.filemode(st.st_mode)}); "
                   "hush refuses such a keyring: chmod 600 it first", EXIT_INVALID)
    return os.open(path, os.O_WRONLY | os.O_APPEND)


def _write_key(path: Path, append: bool, owner: tuple[int, int] | None) -> str:
    fd = _open_keyring(path, append)
    key = secrets.token_bytes(32)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            if owner is not None:
                try:
                    os.fchown(fd, *owner)  # before the key goes in
                except OSError as e:
                    raise Fail(f"cannot give {path} to --owner: {e.strerror} (changing a file's owner needs root)",
                               EXIT_ERROR) from None
            f.write(("" if append else "# hush root keyring: one base64 key per line; back it up apart from the "
                     "database\n") + base64.b64encode(key).decode() + "\n")
    except BaseException:
        if not append:  # no half-made keyring left behind for the next run to trip on
            path.unlink(missing_ok=True)
        raise
    return key_id(key)


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--append", is_flag=True, help="Add a key to an existing keyring (for rotation).")
@click.option("--owner", metavar="USER", callback=_owner,
              help="chown the file to this OS user (the server's, e.g. postgres).")
@json_option
def keygen(path: Path, append: bool, owner: tuple[int, int] | None, as_json: bool) -> None:
    """Write a new root key to the keyring file PATH (created 0600) and print its key id.

    The key itself is never printed. Point the server at the file with
    hush.root_key_file in postgresql.conf."""
    kid = _write_key(path, append, owner)
    if as_json:
        print_json({"key_id": kid, "path": str(path)})
    else:
        click.echo(kid)


def install(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """CREATE EXTENSION hush (or update it to the installed version), and make a
    keyring key the active root key when none is: the keyring's first key."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS hush CASCADE")
    row = conn.execute("SELECT e.extversion, a.default_version, pg_catalog.current_database() "
                       "FROM pg_catalog.pg_extension e "
                       "JOIN pg_catalog.pg_available_extensions a ON a.name OPERATOR(pg_catalog.=) e.extname "
                       "WHERE e.extname OPERATOR(pg_catalog.=) 'hush'").fetchone()
    assert row is not None
    if row[0] != row[1]:
        conn.execute("ALTER EXTENSION hush UPDATE")
    root_keys = Keys(conn)
    status = root_keys.status()
    active = [k.key_id for k in status.keys if k.state == "active"]
    if not active:
        usable = [k.key_id for k in status.keys if k.loaded and k.state in ("unregistered", "decrypt_only")]
        if not usable:
            why = "; ".join(status.warnings) or "the keyring holds no key"
            raise Fail(f"hush is installed, but no root key can be made active: {why} "
                       "(see docs/install.md)", EXIT_KEY)
        with conn.transaction():  # registered and active, or neither
            root_keys.add(usable[0])
            root_keys.activate(usable[0])
        active = usable[:1]
    return {"version": row[1], "active_key_id": active[0], "database": row[2]}


@click.command()
@json_option
@click.pass_context
@fails_cleanly
def init(ctx: click.Context, as_json: bool) -> None:
    """Install hush in a database (as a superuser) and register the root key.

    The server must already have hush's files (`make install`) and
    hush.root_key_file in its configuration (see `hush keygen`)."""
    with connect(ctx) as conn:
        info = install(conn)
    if as_json:
        print_json(info)
        return
    click.echo(f"hush {info['version']} is installed in database {info['database']}; "
               f"active root key {info['active_key_id']}.\n"
               "Back up the keyring file apart from the database: without it no backup can be read.\n\n"
               "Next, for each application role (run as a superuser or a hush_admin):\n"
               "  GRANT hush_writer TO app_role;    -- or hush_reader: read-only\n"
               "  hush grant app_role TENANT        -- = SELECT hush.grant_tenant('app_role', 'TENANT')")


def _grant_command(name: str, done: str, not_done: str, help: str) -> click.Command:
    @click.command(name, help=help)
    @click.argument("role")
    @click.argument("tenant")
    @click.pass_context
    @fails_cleanly
    def command(ctx: click.Context, role: str, tenant: str) -> None:
        with connect(ctx) as conn:
            changed = getattr(Tenants(conn), name)(role, tenant)
        click.echo(f"{done if changed else not_done}: {role} on {tenant}", err=True)
    return command


grant = _grant_command("grant", "granted", "already granted",
                       "Let ROLE (and its members) act on all of TENANT ('*' = every tenant) with every capability "
                       "ROLE can call now; needs hush_admin. Narrower grants: hush access grant.")
revoke = _grant_command("revoke", "revoked", "no such grant",
                        "Remove every grant ROLE holds on TENANT (each prefix); needs hush_admin. "
                        "Some capabilities only: hush access revoke.")
