"""hush keys status|add|activate|retire: root key rotation (needs hush_admin)."""
from __future__ import annotations

from typing import Any

import click
import psycopg

from .. import _calls as q
from .._exec import PsycopgExecutor
from ._common import connect, fails_cleanly, json_option, print_json, print_table, when


def key_status(conn: psycopg.Connection[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """hush.root_key_status() rows, and the warnings it gave (why the keyring did not load)."""
    warnings: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary:
            warnings.append(diag.message_primary.removeprefix("hush: "))
    conn.add_notice_handler(keep)
    try:
        rows: list[dict[str, Any]] = PsycopgExecutor(conn).run([q.root_key_status()])[0]
    finally:
        conn.remove_notice_handler(keep)
    return rows, warnings


@click.group()
def keys() -> None:
    """Root keys: see them, register one from the keyring, activate it, retire an old one.

    Rotation: add the new key to the keyring file (hush keygen PATH --append),
    then `hush keys add ID` and `hush keys activate ID`: new secrets are sealed
    with it at once, older ones stay readable with the old key."""


@keys.command()
@json_option
@click.pass_context
@fails_cleanly
def status(ctx: click.Context, as_json: bool) -> None:
    """Every registered key (active, decrypt_only, retired) and the keyring's unregistered ones."""
    with connect(ctx) as conn:
        rows, warnings = key_status(conn)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        print_json(rows)
        return
    print_table(["KEY ID", "STATE", "LOADED", "DATA KEYS", "ACTIVATED"],
                [[r["key_id"], r["state"], "yes" if r["loaded"] else "NO", r["data_keys"], when(r["activated_at"])]
                 for r in rows])


def _key_command(name: str, function: str, help: str) -> click.Command:
    @click.command(name, help=help)
    @click.argument("key_id")
    @json_option
    @click.pass_context
    @fails_cleanly
    def command(ctx: click.Context, key_id: str, as_json: bool) -> None:
        with connect(ctx) as conn:
            state = PsycopgExecutor(conn).run([q.root_key(function, key_id)])[0]
        if as_json:
            print_json({"key_id": key_id, "state": state})
        else:
            click.echo(f"{key_id}: {state}", err=True)
    return command


keys.add_command(_key_command("add", "add_root_key", "Register KEY_ID, a key of the server's keyring (decrypt_only)."))
keys.add_command(_key_command("activate", "activate_root_key",
                              "Seal new data keys with KEY_ID from now on; the old active key keeps decrypting."))
keys.add_command(_key_command("retire", "retire_root_key",
                              "Retire KEY_ID once it is not active and seals no data key."))

COMMANDS = [keys]
