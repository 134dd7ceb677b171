"""hush import, export and run: many secrets at once."""
from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Iterator

import click

from .._secrets import Secrets
from . import _dotenv
from ._common import EXIT_INVALID, Fail, print_json, tenant_command, tenant_secrets

# get_secrets per statement when reading a tenant's values (export, run).
READ_BATCH = 500
# Rows per statement when importing, so the progress bar moves on 10,000-line files.
IMPORT_BATCH = 2_000


def _load(path: str, fmt: str | None) -> list[tuple[str, str]]:
    fmt = fmt or ("json" if path.endswith(".json") else "env")
    with click.open_file(path, "r", encoding="utf-8") as f:
        text = f.read()
    if fmt == "env":
        try:
            return _dotenv.parse(text)
        except _dotenv.DotenvError as e:
            raise Fail(f"{path}: {e}; nothing was imported", EXIT_INVALID) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        # The position only: the file holds values, so none of its text goes into the message.
        raise Fail(f"{path}: not JSON (line {e.lineno}, column {e.colno}); nothing was imported",
                   EXIT_INVALID) from None
    if not isinstance(data, dict):
        raise Fail(f"{path}: expected a JSON object of name: value; nothing was imported", EXIT_INVALID)
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise Fail(f"{path}: values must be strings; not so for {', '.join(map(repr, bad[:5]))}; "
                   "nothing was imported", EXIT_INVALID)
    return list(data.items())


@tenant_command(
    click.argument("file", metavar="FILE"),
    click.option("--format", "fmt", type=click.Choice(["env", "json"]), help="Default: json for *.json, else env."),
    click.option("--prefix", default="", help="Put this in front of every name (e.g. 'prod/')."),
    click.option("--kind", help="The kind of every imported secret."),
    click.option("--tag", "tags", multiple=True, help="Tag every imported secret (repeat for several)."),
    name="import", secret_name=False,
)
def import_(ctx: click.Context, tenant: str, file: str, fmt: str | None, prefix: str, kind: str | None,
            tags: tuple[str, ...], as_json: bool) -> None:
    """Save every secret of a .env or JSON file (FILE '-' = stdin), all or nothing.

    Existing names get a new version. One transaction: a bad name or value
    anywhere saves nothing. The .env dialect is in the README."""
    pairs = [(prefix + name, value) for name, value in _load(file, fmt)]
    if not pairs:
        raise Fail(f"{file}: no secrets in it", EXIT_INVALID)
    with tenant_secrets(ctx, tenant) as secrets, click.progressbar(length=len(pairs), file=sys.stderr,
                                                                  label=f"importing into {tenant}") as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.pos)
        saved = secrets.save_many(pairs, kind=kind, tags=tags or None, progress=progress,
                                                batch_size=IMPORT_BATCH)
    if as_json:
        print_json({"tenant": tenant, "imported": len(saved),
                    "created": sum(1 for s in saved if s.version == 1)})
    else:
        click.echo(f"imported {len(saved)} secrets into {tenant}", err=True)


def read_all(secrets: Secrets, prefix: str | None) -> Iterator[tuple[str, str]]:
    """(name, value) of every live secret, optionally under a prefix; values read in batches."""
    names: list[str] = []
    for meta in secrets.iter_all(prefix=prefix):
        names.append(meta.name)
        if len(names) == READ_BATCH:
            yield from ((s.name, s.value) for s in secrets.get_many(names))
            names = []
    if names:
        yield from ((s.name, s.value) for s in secrets.get_many(names))


def env_pairs(pairs: list[tuple[str, str]], prefix: str | None) -> list[tuple[str, str]]:
    """Names as environment variables: the prefix cut off; names that are not
    valid variable names are skipped, with a warning that names them."""
    out: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for name, value in pairs:
        var = name[len(prefix):] if prefix else name
        (out if _dotenv.ENV_NAME.fullmatch(var) else skipped).append((var, value))
    if skipped:
        click.echo(f"hush: skipped {len(skipped)} secret(s) whose names are not environment variable names: "
                   + ", ".join(n for n, _ in skipped[:10]) + (" ..." if len(skipped) > 10 else ""), err=True)
    return out


@tenant_command(
    click.option("--format", "fmt", type=click.Choice(["env", "json"]), default="env", show_default=True),
    click.option("--prefix", help="Only names under this prefix (cut off in .env output)."),
    click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file, created 0600."),
    secret_name=False, json=False,
)
def export(ctx: click.Context, tenant: str, fmt: str, prefix: str | None, output: str | None) -> None:
    """Write a tenant's secrets as .env or JSON (every value read is audited)."""
    with tenant_secrets(ctx, tenant) as secrets:
        pairs = list(read_all(secrets, prefix))
    if fmt == "env":
        text = _dotenv.format_pairs(env_pairs(pairs, prefix))
    else:
        text = json.dumps(dict(pairs), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    click.echo(f"exported {len(pairs)} secrets of {tenant} to {output}", err=True)


@tenant_command(
    click.option("--prefix", help="Only names under this prefix; the prefix is cut off the variable names."),
    click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED),
    secret_name=False, json=False, context_settings={"ignore_unknown_options": True},
)
def run(ctx: click.Context, tenant: str, prefix: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND with the tenant's secrets as environment variables.

    hush run acme --prefix prod/ -- ./server --port 8080

    Values go into the environment of COMMAND (which replaces hush), never into
    its arguments or onto the terminal. Secrets override variables already set."""
    with tenant_secrets(ctx, tenant) as secrets:
        pairs = env_pairs(list(read_all(secrets, prefix)), prefix)
    env = dict(os.environ)
    env.update(pairs)
    exe = shutil.which(command[0], path=env.get("PATH"))
    if exe is None:
        raise Fail(f"{command[0]}: command not found", 127)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(exe, list(command), env)


COMMANDS = [import_, export, run]
