"""hush keys status|add|activate|retire: root key rotation (needs hush_admin)."""
from __future__ import annotations

import re
import sys
from typing import Any

import click
import psycopg

from .. import _calls as q
from .._exec import PsycopgExecutor, raise_translated
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


PROGRESS = re.compile(r"hush rewrap: (\d+) of \d+ data keys re-sealed")


@click.group()
def keys() -> None:
    """Root keys: see them, register one from the keyring, activate it, retire an old one.

    Rotation: add the new key to the keyring file (hush keygen PATH --append),
    then `hush keys add ID` and `hush keys activate ID`: new secrets are sealed
    with it at once, older ones stay readable with the old key. `hush keys
    rewrap` moves the older ones over; then `hush keys retire OLD_ID`."""


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

@keys.command()
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Data keys per committed batch.")
@click.option("--pause-ms", type=int, default=0, show_default=True,
              help="Pause between batches: trades rewrap speed for less load on live traffic.")
@json_option
@click.pass_context
@fails_cleanly
def rewrap(ctx: click.Context, batch_size: int, pause_ms: int, as_json: bool) -> None:
    """Re-seal every data key under the active root key (CALL hush.rewrap), with a progress bar.

    Batches commit one by one: interrupt it any time and run it again to finish.
    Values' ciphertext is never touched."""
    with connect(ctx) as conn:
        rows, _ = key_status(conn)
        total = sum(r["data_keys"] for r in rows if r["state"] != "active")
        done = [0]
        with click.progressbar(length=max(total, 1), label="re-sealing data keys", file=sys.stderr) as bar:
            def progress(diag: psycopg.errors.Diagnostic) -> None:
                m = PROGRESS.match(diag.message_primary or "")
                if m:
                    done[0] = int(m[1])
                    bar.update(min(done[0], total) - bar.pos)
            conn.add_notice_handler(progress)
            try:
                conn.execute("CALL hush.rewrap(%s, %s)", [batch_size, pause_ms])
            except psycopg.Error as e:
                raise_translated(e)
    if as_json:
        print_json({"rewrapped": done[0]})
    else:
        click.echo(f"re-sealed {done[0]} data keys under the active root key", err=True)
