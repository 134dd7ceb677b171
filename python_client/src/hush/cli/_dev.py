"""hush dev start|stop|status: a throwaway local cluster with hush installed.

The cluster lives in a directory under the system temp dir (the server's OS
user must be able to enter it, which a home directory under /root is not),
with its own keyring, and is removed by `hush dev stop`. `start` prints the DSN
of APP_ROLE, a login role that is hush_writer with tenant grants and nothing
more, so an app tried against the dev cluster meets the grants it will meet in
production; the superuser's DSN, for admin work, goes to stderr and --json.
Unlike production, it lets OAuth requests reach loopback providers over plain
http (hush.oauth_allow_egress for 127.0.0.1, ::1 and localhost).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import sql

from .. import devcluster
from .._errors import HushError
from ._admin import install
from ._common import EXIT_ERROR, Fail, json_option, print_json

STATE = "hush-dev.json"
APP_ROLE = "app"
LOOPBACK = ("127.0.0.1", "::1", "localhost")  # OAuth egress allowed here (hush.oauth_allow_egress)


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


def _create(base: Path, tenants: tuple[str, ...]) -> dict[str, Any]:
    c = devcluster.Cluster(base=base)
    click.echo(f"starting a PostgreSQL cluster in {base} on port {c.port} ...", err=True)
    try:
        c.start()
    except devcluster.StartFailed as e:
        raise Fail(str(e), EXIT_ERROR) from None
    state: dict[str, Any] = {"port": c.port, "dsn": c.dsn("hush", user=APP_ROLE), "admin_dsn": c.dsn("hush"),
                             "role": APP_ROLE, "tenants": list(tenants), "dir": str(base),
                             "keyring": str(c.keyfile)}
    try:
        # Written before the set-up below, so that `hush dev stop` finds the server even
        # if this process is killed half-way.
        (base / STATE).write_text(json.dumps(state))
        with psycopg.connect(c.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE hush")
        with psycopg.connect(c.dsn("hush"), autocommit=True) as conn:
            state["active_key_id"] = install(conn)["active_key_id"]
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE hush_writer").format(sql.Identifier(APP_ROLE)))
            for tenant in tenants:
                conn.execute("SELECT hush.grant_tenant(%s, %s)", [APP_ROLE, tenant])
            # OAuth providers tried out on this machine (a local Keycloak, a mock IdP) answer over
            # plain http at loopback addresses, which hush refuses unless an admin allows them.
            for host in LOOPBACK:
                conn.execute("SELECT hush.oauth_allow_egress(%s, allow_http => true, allow_private => true)", [host])
        (base / STATE).write_text(json.dumps(state))
    except BaseException as e:
        c.stop(remove=True)  # a failed start leaves no server behind
        gone = f"the half-made dev cluster in {base} is stopped and removed"
        if isinstance(e, Fail):
            raise Fail(f"{e.message}; {gone}", e.exit_code) from None
        if isinstance(e, (psycopg.Error, HushError)):
            raise Fail(f"{e}; {gone}", EXIT_ERROR) from None
        raise
    return state


dir_option = click.option("--dir", "base", type=click.Path(file_okay=False, path_type=Path),
                          help="Where the cluster lives (default: $HUSH_DEV_DIR or <tmp>/hush-dev-<uid>).")


@click.group()
def dev() -> None:
    """A throwaway local PostgreSQL cluster with hush installed, for trying hush out."""


@dev.command()
@dir_option
@click.option("--tenant", "tenants", multiple=True, default=["acme"], show_default=True,
              help=f"A tenant the app role `{APP_ROLE}` is granted when the cluster is created (repeatable).")
@json_option
def start(base: Path | None, tenants: tuple[str, ...], as_json: bool) -> None:
    """Start the dev cluster (or report the running one) and print the app role's DSN.

    export HUSH_DSN="$(hush dev start)"

    The app role is hush_writer with grants on the --tenant tenants only; the
    superuser's DSN (for hush keys, hush grant, psql) is printed on stderr."""
    base = base or default_dir()
    state = _state(base)
    if state is None or not _cluster(base, state).running():
        if not devcluster.extension_installed():
            raise Fail(f"hush is not installed in the PostgreSQL at {devcluster.PG_BIN}: run `make install` in "
                       "the hush source tree first", EXIT_ERROR)
        if state is not None:  # left over from a reboot or a crash: start afresh
            _cluster(base, state).stop(remove=True)
        state = _create(base, tenants)
    if as_json:
        print_json(state)
    else:
        if "admin_dsn" in state:  # a dev cluster started by an older hush has only the superuser's
            click.echo(f"superuser (admin work): {state['admin_dsn']}", err=True)
        click.echo(state["dsn"])


@dev.command()
@dir_option
@json_option
def status(base: Path | None, as_json: bool) -> None:
    """Say whether the dev cluster runs (exit 0) or not (exit 1), with its DSNs."""
    base = base or default_dir()
    state = _state(base)
    running = state is not None and _cluster(base, state).running()
    if as_json:
        print_json({"running": running, **(state or {})})
    elif running and state is not None:
        click.echo(f"running: {state['dsn']}\nsuperuser: {state.get('admin_dsn', state['dsn'])}")
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
