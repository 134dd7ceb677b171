"""hush import, export and run: many secrets at once."""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import click
import psycopg

from .. import _errors as E
from .._models import SavedSecret, Secret, SecretMetadata
from .._secrets import Secrets
from . import _dotenv
from ._common import connect, decode, print_json, tenant_command
from ._exits import EXIT_INVALID, EXIT_NOT_FOUND, Fail
from ._secrets import expired, from_file, server_now

# get_secrets per statement when reading a tenant's values (export, run).
READ_BATCH = 500
# Rows per statement when importing, so the progress bar moves on 10,000-line files.
IMPORT_BATCH = 2_000
# What a JSON export carries beside each value, and an import restores.
ATTRIBUTES = ("kind", "description", "tags", "metadata")


@dataclass(frozen=True)
class Entry:
    """One secret of an import file; None attributes leave an existing secret's as they are."""

    name: str
    value: str
    kind: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


def _read(path: str) -> str:
    if path == "-":
        raw = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            raw = f.read()
    # Some editors start a UTF-8 file with a byte-order mark: it is not part of the first name.
    return decode(raw, "stdin" if path == "-" else path).removeprefix("\ufeff")


def _entry(name: str, item: Any) -> Entry:
    """An entry of a JSON file: "name": "value", or "name": {"value": ..., "kind": ..., ...} as export writes."""
    if isinstance(item, str):
        return Entry(name, item)
    if not isinstance(item, dict) or not isinstance(item.get("value"), str):
        raise ValueError(f"{name!r} must be a string, or an object with a string \"value\"")
    unknown = sorted(set(item) - {"value", *ATTRIBUTES})
    if unknown:
        raise ValueError(f"{name!r} has unknown fields: {', '.join(unknown)} (known: value, {', '.join(ATTRIBUTES)})")
    kind, description, tags, metadata = (item.get(k) for k in ATTRIBUTES)
    for field, ok in (("kind", kind is None or isinstance(kind, str)),
                      ("description", description is None or isinstance(description, str)),
                      ("tags", tags is None or (isinstance(tags, list) and all(isinstance(t, str) for t in tags))),
                      ("metadata", metadata is None or isinstance(metadata, dict))):
        if not ok:
            raise ValueError(f"{name!r}: \"{field}\" has the wrong type")
    return Entry(name, item["value"], kind, description, tags, metadata)


def _load(path: str, fmt: str | None) -> list[Entry]:
    fmt = fmt or ("json" if path.endswith(".json") else "env")
    text = _read(path)
    if fmt == "env":
        try:
            return [Entry(name, value) for name, value in _dotenv.parse(text)]
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
    try:
        return [_entry(name, item) for name, item in data.items()]
    except ValueError as e:
        raise Fail(f"{path}: {e}; nothing was imported", EXIT_INVALID) from None


def _save(secrets: Secrets, entries: list[Entry], kind: str | None, tags: list[str] | None,
          progress: Callable[[int], None]) -> list[SavedSecret]:
    """Every entry through the bulk path, one statement per batch of entries that share kind,
    tags and metadata; then descriptions, which the bulk path does not take, one by one."""
    groups: dict[tuple[str | None, tuple[str, ...] | None, str | None], list[Entry]] = {}
    for e in entries:
        t = tags if tags is not None else e.tags
        key = (kind or e.kind, None if t is None else tuple(t),
               None if e.metadata is None else json.dumps(e.metadata, sort_keys=True))
        groups.setdefault(key, []).append(e)
    saved: list[SavedSecret] = []
    for (k, group_tags, m), group in groups.items():
        def report(done: int, _total: int, base: int = len(saved)) -> None:
            progress(base + done)
        saved += secrets.save_many([(e.name, e.value) for e in group], kind=k, tags=group_tags,
                                   metadata=None if m is None else json.loads(m), batch_size=IMPORT_BATCH,
                                   progress=report)
    for e in entries:
        if e.description is not None:
            secrets.update(e.name, description=e.description)
    return saved


@tenant_command(
    click.argument("file", metavar="FILE", type=from_file),
    click.option("--format", "fmt", type=click.Choice(["env", "json"]), help="Default: json for *.json, else env."),
    click.option("--prefix", default="", help="Put this in front of every name (e.g. 'prod/')."),
    click.option("--kind", help="The kind of every imported secret (instead of the file's)."),
    click.option("--tag", "tags", multiple=True,
                 help="Tag every imported secret (repeat for several; instead of the file's)."),
    name="import", secret_name=False,
)
def import_(ctx: click.Context, tenant: str, file: str, fmt: str | None, prefix: str, kind: str | None,
            tags: tuple[str, ...], as_json: bool) -> None:
    """Save every secret of a .env or JSON file (FILE '-' = stdin), all or nothing.

    Existing names get a new version. One transaction: a bad name or value
    anywhere saves nothing. A JSON file written by `hush export --format json`
    brings back each secret's kind, description, tags and metadata too. The
    .env dialect is in docs/cli.md."""
    entries = [replace(e, name=prefix + e.name) for e in _load(file, fmt)]
    if not entries:
        raise Fail(f"{file}: no secrets in it", EXIT_INVALID)
    with connect(ctx) as conn, conn.transaction(), click.progressbar(
            length=len(entries), file=sys.stderr, label=f"importing into {tenant}") as bar:
        saved = _save(Secrets(conn, tenant), entries, kind, list(tags) if tags else None,
                      lambda done: bar.update(done - bar.pos))
    if as_json:
        print_json({"tenant": tenant, "imported": len(saved),
                    "created": sum(1 for s in saved if s.version == 1)})
    else:
        click.echo(f"imported {len(saved)} secrets into {tenant}", err=True)


def read_values(secrets: Secrets, names: Sequence[str]) -> Iterator[Secret]:
    """The latest values of these secrets, read (and audited) in batches; the first
    expired or destroyed one fails the whole read (--strict)."""
    for i in range(0, len(names), READ_BATCH):
        yield from secrets.get_many(names[i:i + READ_BATCH])


def _gone(meta: SecretMetadata, err: E.HushError | None = None) -> str:
    """Why a secret's latest value cannot be read, for the warning line (never a value)."""
    if err is None or isinstance(err, E.SecretExpired):
        return "expired" if meta.expires_at is None else \
            f"expired at {meta.expires_at.astimezone().isoformat(timespec='seconds')}"
    return f"current version {meta.version} destroyed"


def _read_batch(secrets: Secrets, batch: Sequence[SecretMetadata],
                skipped: list[tuple[SecretMetadata, str]]) -> list[Secret]:
    """One get_secrets for the batch. The server refuses a whole batch for one expired or
    destroyed secret before it records or opens anything, so a refused batch is read again
    in halves until the secret that failed it stands alone: log2(batch) more statements per
    such secret, none when there is none; each value read once, so audited once."""
    try:
        return secrets.get_many([m.name for m in batch])
    except (E.SecretExpired, E.VersionDestroyed) as e:
        if len(batch) == 1:
            skipped.append((batch[0], _gone(batch[0], e)))
            return []
    half = len(batch) // 2
    return _read_batch(secrets, batch[:half], skipped) + _read_batch(secrets, batch[half:], skipped)


def read_live(secrets: Secrets, conn: psycopg.Connection[Any], metas: Sequence[SecretMetadata],
              tenant: str) -> list[Secret]:
    """The latest values of these secrets, in batches, without those that cannot be read:
    expired by the server's clock (left out before any read: expiry is the server's call,
    not this machine's clock's), or whose current version is destroyed, or that expired
    since the listing (both found by the batch they fail). One warning line on stderr per
    secret left out."""
    now = server_now(conn) if any(m.expires_at is not None for m in metas) else None
    skipped = [(m, _gone(m)) for m in metas if now is not None and expired(m, now)]
    todo = [m for m in metas if now is None or not expired(m, now)]
    out: list[Secret] = []
    for i in range(0, len(todo), READ_BATCH):
        out += _read_batch(secrets, todo[i:i + READ_BATCH], skipped)
    for meta, why in sorted(skipped, key=lambda s: s[0].name):
        click.echo(f"hush: skipped {tenant}/{meta.name}: {why} (--strict fails instead)", err=True)
    return out


def read_all(secrets: Secrets, conn: psycopg.Connection[Any], metas: Sequence[SecretMetadata], tenant: str,
             strict: bool) -> list[Secret]:
    """What export and run read: every value (--strict: or fail), or every readable one."""
    if strict:
        return list(read_values(secrets, [m.name for m in metas]))
    return read_live(secrets, conn, metas, tenant)


def env_names(metas: list[SecretMetadata], prefix: str | None) -> dict[str, str]:
    """name: environment variable, the prefix cut off; names that are not valid
    variable names are left out, with a warning that names them."""
    out: dict[str, str] = {}
    skipped: list[str] = []
    for meta in metas:
        var = meta.name[len(prefix):] if prefix else meta.name
        if _dotenv.ENV_NAME.fullmatch(var):
            out[meta.name] = var
        else:
            skipped.append(var)
    if skipped:
        click.echo(f"hush: skipped {len(skipped)} secret(s) whose names are not environment variable names: "
                   + ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""), err=True)
    return out


def write_private(path: str, text: str) -> None:
    """Write text to path, created 0600, or an existing file made 0600 before a value goes in."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # not a pipe or a terminal such as /dev/stdout
            os.fchmod(fd, 0o600)  # open() keeps an existing file's mode; before truncating, so a failure keeps it whole
            os.ftruncate(fd, 0)
        f.write(text)


STRICT_HELP = ("Fail (exit 7) on an expired secret or one whose current version is destroyed, "
               "instead of skipping it with a warning.")


@tenant_command(
    click.option("--format", "fmt", type=click.Choice(["env", "json"]), default="env", show_default=True),
    click.option("--prefix", help="Only names under this prefix (cut off in .env output)."),
    click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file, made 0600."),
    click.option("--strict", is_flag=True, help=STRICT_HELP),
    secret_name=False, json=False,
)
def export(ctx: click.Context, tenant: str, fmt: str, prefix: str | None, output: str | None,
           strict: bool) -> None:
    """Write a tenant's secrets as .env or JSON (every value read is audited).

    JSON carries each secret's kind, description, tags and metadata beside its
    value, for `hush import`. In .env format, names that are not environment
    variable names are skipped before any value is read. Expired secrets and
    those whose current version is destroyed are skipped, one warning line on
    stderr each, unless --strict."""
    with connect(ctx) as conn:
        secrets = Secrets(conn, tenant)
        metas = list(secrets.iter_all(prefix=prefix))
        if fmt == "env":
            names = env_names(metas, prefix)
            values = read_all(secrets, conn, [m for m in metas if m.name in names], tenant, strict)
            text = _dotenv.format_pairs([(names[s.name], s.value) for s in values])
        else:
            values = read_all(secrets, conn, metas, tenant, strict)
            text = json.dumps({s.name: {"value": s.value, **{k: getattr(s, k) for k in ATTRIBUTES}}
                               for s in values}, indent=2, ensure_ascii=False) + "\n"
        count = len(values)
    if output is None:
        click.echo(text, nl=False)
        return
    write_private(output, text)
    click.echo(f"exported {count} secrets of {tenant} to {output}", err=True)


@tenant_command(
    click.option("--prefix", help="Only names under this prefix; the prefix is cut off the variable names."),
    click.option("--allow-empty", is_flag=True, help="Run COMMAND even when there is no secret to pass."),
    click.option("--strict", is_flag=True, help=STRICT_HELP),
    click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED),
    secret_name=False, json=False, context_settings={"ignore_unknown_options": True},
)
def run(ctx: click.Context, tenant: str, prefix: str | None, allow_empty: bool, strict: bool,
        command: tuple[str, ...]) -> None:
    """Run COMMAND with the tenant's secrets as environment variables.

    hush run acme --prefix prod/ -- ./server --port 8080

    Values go into the environment of COMMAND (which replaces hush), never into
    its arguments or onto the terminal. Secrets override variables already set.
    Expired secrets and those whose current version is destroyed are left out,
    one warning line on stderr each, unless --strict (then hush exits 7 and
    COMMAND does not run). No secret to pass (a wrong tenant or prefix, most
    often) exits 3 without running COMMAND, unless --allow-empty."""
    with connect(ctx) as conn:
        secrets = Secrets(conn, tenant)
        metas = list(secrets.iter_all(prefix=prefix))
        names = env_names(metas, prefix)
        pairs = [(names[s.name], s.value)
                 for s in read_all(secrets, conn, [m for m in metas if m.name in names], tenant, strict)]
    if not pairs:
        what = f"no secret of {tenant}" + (f" under {prefix!r}" if prefix else "")
        if not allow_empty:
            raise Fail(f"{what} to pass to {command[0]}: not running it (--allow-empty runs it anyway)",
                       EXIT_NOT_FOUND)
        click.echo(f"hush: {what}; running {command[0]} without any", err=True)
    env = dict(os.environ)
    env.update(pairs)
    exe = shutil.which(command[0], path=env.get("PATH"))
    if exe is None:
        raise Fail(f"{command[0]}: command not found", 127)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(exe, list(command), env)
