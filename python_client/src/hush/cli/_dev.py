"""hush dev start|stop|status: a throwaway local cluster with hush installed.

The cluster lives in a directory under the system temp dir (the server's OS
user must be able to enter it, which a home directory under /root is not),
with its own keyring, and is removed by `hush dev stop`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click
import psycopg

from .. import devcluster
from ._admin import install
from ._common import EXIT_ERROR, Fail, json_option, print_json

STATE = "hush-dev.json"


def default_dir() -> Path:
    return Path(os.environ.get("HUSH_DEV_DIR") or Path(tempfile.gettempdir()) / f"hush-dev-{os.getuid()}")


def _state(base: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((base / STATE).read_text())
        return state
    except FileNotFoundError:
        return None


def _cluster(base: Path, state: dict[str, Any]) -> devcluster.Cluster:
    return devcluster.Cluster(base=base, port=int(state["port"]))


dir_option = click.option("--dir", "base", type=click.Path(file_okay=False, path_type=Path),
                          help="Where the cluster lives (default: $HUSH_DEV_DIR or <tmp>/hush-dev-<uid>).")


@click.group()
def dev() -> None:
    """A throwaway local PostgreSQL cluster with hush installed, for trying hush out."""


@dev.command()
@dir_option
@json_option
def start(base: Path | None, as_json: bool) -> None:
    """Start the dev cluster (or report the running one) and print its DSN.

    export HUSH_DSN="$(hush dev start)" """
    base = base or default_dir()
    state = _state(base)
    if state is None or not _cluster(base, state).running():
        if not devcluster.extension_installed():
            raise Fail(f"hush is not installed in the PostgreSQL at {devcluster.PG_BIN}: run `make install` in "
                       "the hush source tree first", EXIT_ERROR)
        if state is not None:  # left over from a reboot or a crash: start afresh
            _cluster(base, state).stop(remove=True)
        c = devcluster.Cluster(base=base)
        click.echo(f"starting a PostgreSQL cluster in {base} on port {c.port} ...", err=True)
        c.start()
        with psycopg.connect(c.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE hush")
        with psycopg.connect(c.dsn("hush"), autocommit=True) as conn:
            info = install(conn)
        state = {"port": c.port, "dsn": c.dsn("hush"), "dir": str(base), "keyring": str(c.keyfile),
                 "active_key_id": info["active_key_id"]}
        (base / STATE).write_text(json.dumps(state))
    if as_json:
        print_json(state)
    else:
        click.echo(state["dsn"])


@dev.command()
@dir_option
@json_option
def status(base: Path | None, as_json: bool) -> None:
    """Say whether the dev cluster runs (exit 0) or not (exit 1), with its DSN."""
    base = base or default_dir()
    state = _state(base)
    running = state is not None and _cluster(base, state).running()
    if as_json:
        print_json({"running": running, **(state or {})})
    elif running and state is not None:
        click.echo(f"running: {state['dsn']}")
    else:
        click.echo("not running", err=True)
    if not running:
        raise SystemExit(EXIT_ERROR)


@dev.command()
@dir_option
def stop(base: Path | None) -> None:
    """Stop the dev cluster and delete it, data and keyring included."""
    base = base or default_dir()
    state = _state(base)
    if state is None:
        click.echo(f"no dev cluster in {base}", err=True)
        return
    _cluster(base, state).stop(remove=True)
    click.echo(f"stopped and removed {base}", err=True)


COMMANDS = [dev]
