"""hush keys status|add|activate|retire: root key rotation (needs hush_admin)."""
from __future__ import annotations

import sys

import click

from .. import Keys
from ._common import connect, fails_cleanly, json_option, print_json, print_table, when


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
        found = Keys(conn).status()
    for w in found.warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        print_json(found.keys)
        return
    print_table(["KEY ID", "STATE", "LOADED", "DATA KEYS", "ACTIVATED"],
                [[k.key_id, k.state, "yes" if k.loaded else "NO", k.data_keys, when(k.activated_at)]
                 for k in found.keys])


def _key_command(name: str, help: str) -> click.Command:
    @click.command(name, help=help)
    @click.argument("key_id")
    @json_option
    @click.pass_context
    @fails_cleanly
    def command(ctx: click.Context, key_id: str, as_json: bool) -> None:
        with connect(ctx) as conn:
            state = getattr(Keys(conn), name)(key_id).state
        if as_json:
            print_json({"key_id": key_id, "state": state})
        else:
            click.echo(f"{key_id}: {state}", err=True)
    return command


keys.add_command(_key_command("add", "Register KEY_ID, a key of the server's keyring (decrypt_only)."))
keys.add_command(_key_command("activate",
                              "Seal new data keys with KEY_ID from now on; the old active key keeps decrypting."))
keys.add_command(_key_command("retire", "Retire KEY_ID once it is not active and seals no data key."))

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
        root_keys = Keys(conn)
        total = sum(k.data_keys for k in root_keys.status().keys if k.state != "active")
        with click.progressbar(length=max(total, 1), label="re-sealing data keys", file=sys.stderr) as bar:
            def progress(done: int, _: int) -> None:
                bar.update(min(done, total) - bar.pos)
            rewrapped = root_keys.rewrap(batch_size=batch_size, pause_ms=pause_ms, progress=progress)
    if as_json:
        print_json({"rewrapped": rewrapped})
    else:
        click.echo(f"re-sealed {rewrapped} data keys under the active root key", err=True)
