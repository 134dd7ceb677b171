"""Each client method as one statement: the SQL of one `hush.*` call, its bind
parameters, and how its rows become typed results.

The sync, async and SQLAlchemy paths all run these same Calls, so they cannot
drift. Every value is a bind parameter, never query text (psycopg 3 binds on
the server, so a value is not in pg_stat_activity or the statement log).
Parameters are written `%(name)s` and cast with CAST(... AS type), a form that
both psycopg and SQLAlchemy's text() accept; the casts make function
resolution independent of how a driver types Python ints and lists. Every type,
function and operator is schema-qualified (pg_catalog.text, OPERATOR(pg_catalog.=)):
an application's search_path may put a schema its role can write before
pg_catalog, and a `text` domain there would see every value cast to it.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Generic, Iterable, Mapping, Sequence, TypeVar

from ._errors import InvalidArgument
from ._models import (Page, SavedSecret, Secret, SecretChange, SecretDue, SecretEvent, SecretMetadata,
                      SecretVersion)

T = TypeVar("T")
# Rows come keyed by column name (psycopg's dict_row; SQLAlchemy's Row._mapping), so a
# column the server adds, or a column list in another order, cannot shift a field.
Rows = Sequence[Mapping[str, Any]]

# The server's hush.save_secrets limit; larger imports are sent in chunks of this size.
MAX_BATCH = 10_000
# The values of one hush.save_secrets call, at most, counted as the server counts them
# (sql/25_limits.sql): UTF-8 bytes for an all-ASCII value, else 4 bytes a character.
MAX_BATCH_BYTES = 64 << 20
# The server clamps list and search pages to this many rows (plpython/hush_plpy/validate.py
# MAX_PER_PAGE; tests/test_client_surface.py keeps the two equal). Page.per_page says what it used.
MAX_PER_PAGE = 1000

SECRET_COLS = ("id, tenant_id, name, value, kind, description, tags, metadata, version, created_at, updated_at, "
               "expires_at, stage")
SAVED_COLS = "id, tenant_id, name, version, created_at, updated_at"
META_COLS = ("id, tenant_id, name, kind, description, tags, metadata, version, expires_at, created_at, updated_at, "
             "deleted_at, total, total_exact, max_versions, destroy_versions_after, rotate_every, rotated_at, "
             "pending_version")
VERSION_COLS = "version, created_at, created_by, key_id, destroyed, destroyed_at, is_current, stage"
DUE_COLS = "name, reason, due_at, rotate_every, rotated_at, expires_at, version, pending_version"

WRITE_ARGS = ("description => CAST(%(description)s AS pg_catalog.text), tags => CAST(%(tags)s AS pg_catalog.text[]), "
              "metadata => CAST(%(metadata)s AS pg_catalog.jsonb), "
              "expected_version => CAST(%(expected_version)s AS pg_catalog.int4), "
              "kind => CAST(%(kind)s AS pg_catalog.text), expires_at => CAST(%(expires_at)s AS pg_catalog.timestamptz), "
              "max_versions => CAST(%(max_versions)s AS pg_catalog.int4), "
              "destroy_versions_after => CAST(%(destroy_versions_after)s AS pg_catalog.interval), "
              "rotate_every => CAST(%(rotate_every)s AS pg_catalog.interval), "
              "stage => CAST(%(stage)s AS pg_catalog.text)")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One statement. `reads_only`: it writes nothing but its audit record (which a standby
    commits on the primary), so a client with a read pool (hush.connect(read_dsn=...)) may
    send it to a replica. `atomic`: run it in a transaction even alone on an autocommit
    connection (its shape calls back before the run returns, and may raise)."""
    sql: str
    params: dict[str, Any]
    shape: Callable[[Rows], T]
    reads_only: bool = False
    atomic: bool = False


def _one(cls: Callable[[Mapping[str, Any]], T]) -> Callable[[Rows], T]:
    return lambda rows: cls(rows[0])


def _none(rows: Rows) -> None:
    return None


def _meta_page(page: int, asked: int) -> Callable[[Rows], Page[SecretMetadata]]:
    per_page = min(asked, MAX_PER_PAGE)  # below 1 the server refuses the call (SH004)

    def shape(rows: Rows) -> Page[SecretMetadata]:
        data = [SecretMetadata.from_row(r) for r in rows]
        total = int(rows[0]["total"]) if rows else 0
        exact = bool(rows[0]["total_exact"]) if rows else True
        more = len(data) == per_page and (not exact or total > (page - 1) * per_page + len(data))
        return Page(data, page, per_page, total, exact, data[-1].name if data and more else None)
    return shape


def _metadata(metadata: Mapping[str, Any] | None) -> str | None:
    return None if metadata is None else json.dumps(metadata)


# Arguments checked here rather than by the server's casts, whose errors (and the server
# log line beside them) quote the text given: a value passed by mistake in the wrong
# argument would travel there. The messages say what was given, never its text.
def _given(v: Any) -> str:
    return f"a {type(v).__name__} of {len(str(v))} characters"


def _id(v: Any) -> str:
    if isinstance(v, uuid.UUID):
        return str(v)
    try:
        return str(uuid.UUID(str(v)))
    except ValueError:
        raise InvalidArgument(f"a secret id must be a UUID, not {_given(v)}") from None


def _int(what: str, v: Any) -> int | None:
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    raise InvalidArgument(f"{what} must be an integer, not {_given(v)}")


def _when(v: Any, what: str = "expires_at") -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    raise InvalidArgument(f"{what} must be a datetime, not {_given(v)}")


def _interval(what: str, v: Any) -> timedelta | None:
    if v is None or isinstance(v, timedelta):
        return v
    raise InvalidArgument(f"{what} must be a datetime.timedelta, not {_given(v)}")


def _text(what: str, v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    raise InvalidArgument(f"{what} must be a string, not {_given(v)}")


@dataclass(frozen=True)
class Lifecycle:
    """The lifecycle arguments of a write: the secret's own retention (0: back to the
    tenant's), its rotation schedule (timedelta(0): none) and the stage of a new value
    ('pending' stages it for promote); None keeps what is set."""
    max_versions: int | None = None
    destroy_versions_after: timedelta | None = None
    rotate_every: timedelta | None = None
    stage: str | None = None

    def params(self) -> dict[str, Any]:
        return {"max_versions": _int("max_versions", self.max_versions),
                "destroy_versions_after": _interval("destroy_versions_after", self.destroy_versions_after),
                "rotate_every": _interval("rotate_every", self.rotate_every), "stage": _text("stage", self.stage)}


def _tags(tags: Iterable[str] | None) -> list[str] | None:
    if tags is None:
        return None
    if isinstance(tags, str):  # a lone string is one tag, not its characters
        return [tags]
    return list(tags)


def _values(function_call: str) -> str:
    """A statement reading values: the function called in the select list of a subquery, not in
    FROM. In FROM, PostgreSQL gathers a function's whole result in work_mem (4 MB by default)
    and writes the rest to a temporary file, decrypted values and all; in the select list its
    rows pass through as they come. OFFSET 0 keeps the subquery, so the function runs once."""
    columns = ", ".join(f"(r).{c.strip()}" for c in SECRET_COLS.split(","))
    return f"SELECT {columns} FROM (SELECT {function_call} AS r OFFSET 0) AS s"


def get(tenant: str, name: str, version: int | None, stage: str | None = None) -> Call[Secret]:
    return Call(_values("hush.get_secret(CAST(%(tenant)s AS pg_catalog.text), CAST(%(name)s AS pg_catalog.text), "
                        "CAST(%(version)s AS pg_catalog.int4), CAST(%(stage)s AS pg_catalog.text))"),
                {"tenant": tenant, "name": name, "version": _int("version", version), "stage": _text("stage", stage)},
                _one(Secret.from_row), reads_only=True)


def get_by_id(tenant: str, id: Any, version: int | None, stage: str | None = None) -> Call[Secret]:
    return Call(_values("hush.get_secret_by_id(CAST(%(tenant)s AS pg_catalog.text), CAST(%(id)s AS pg_catalog.uuid), "
                        "CAST(%(version)s AS pg_catalog.int4), CAST(%(stage)s AS pg_catalog.text))"),
                {"tenant": tenant, "id": _id(id), "version": _int("version", version), "stage": _text("stage", stage)},
                _one(Secret.from_row), reads_only=True)


def get_many(tenant: str, names: Sequence[str]) -> Call[list[Secret]]:
    return Call(_values("hush.get_secrets(CAST(%(tenant)s AS pg_catalog.text), CAST(%(names)s AS pg_catalog.text[]))"),
                {"tenant": tenant, "names": list(names)}, lambda rows: [Secret.from_row(r) for r in rows],
                reads_only=True)


def save(tenant: str, name: str, value: str, *, description: str | None, tags: Iterable[str] | None,
         metadata: Mapping[str, Any] | None, kind: str | None, expected_version: int | None,
         expires_at: datetime | None, lifecycle: Lifecycle = Lifecycle()) -> Call[SavedSecret]:
    return Call(f"SELECT {SAVED_COLS} FROM hush.save_secret(tenant => CAST(%(tenant)s AS pg_catalog.text), "
                f"name => CAST(%(name)s AS pg_catalog.text), value => CAST(%(value)s AS pg_catalog.text), "
                f"{WRITE_ARGS})",
                {"tenant": tenant, "name": name, "value": value, "description": description, "tags": _tags(tags),
                 "metadata": _metadata(metadata), "kind": kind,
                 "expected_version": _int("expected_version", expected_version), "expires_at": _when(expires_at),
                 **lifecycle.params()},
                _one(SavedSecret.from_row))


def update(tenant: str, by: str, key: Any, value: str | None, *, description: str | None,
           tags: Iterable[str] | None, metadata: Mapping[str, Any] | None, kind: str | None,
           expected_version: int | None, expires_at: datetime | None,
           lifecycle: Lifecycle = Lifecycle()) -> Call[SavedSecret]:
    fn, arg = ("update_secret", "name => CAST(%(key)s AS pg_catalog.text)") if by == "name" else \
        ("update_secret_by_id", "id => CAST(%(key)s AS pg_catalog.uuid)")
    return Call(f"SELECT {SAVED_COLS} FROM hush.{fn}(tenant => CAST(%(tenant)s AS pg_catalog.text), {arg}, "
                f"value => CAST(%(value)s AS pg_catalog.text), {WRITE_ARGS})",
                {"tenant": tenant, "key": key if by == "name" else _id(key), "value": value,
                 "description": description, "tags": _tags(tags), "metadata": _metadata(metadata), "kind": kind,
                 "expected_version": _int("expected_version", expected_version), "expires_at": _when(expires_at),
                 **lifecycle.params()},
                _one(SavedSecret.from_row))


def save_many(tenant: str, names: Sequence[str], values: Sequence[str], *, kind: str | None,
              tags: Iterable[str] | None, metadata: Mapping[str, Any] | None) -> Call[list[SavedSecret]]:
    return Call(f"SELECT {SAVED_COLS} FROM hush.save_secrets(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(names)s AS pg_catalog.text[]), CAST(%(values)s AS pg_catalog.text[]), "
                "CAST(%(kind)s AS pg_catalog.text), CAST(%(tags)s AS pg_catalog.text[]), "
                "CAST(%(metadata)s AS pg_catalog.jsonb))",
                {"tenant": tenant, "names": list(names), "values": list(values), "kind": kind, "tags": _tags(tags),
                 "metadata": _metadata(metadata)},
                lambda rows: [SavedSecret.from_row(r) for r in rows])


def save_batches(tenant: str, items: Mapping[str, str] | Iterable[tuple[str, str]], *, kind: str | None,
                 tags: Iterable[str] | None, metadata: Mapping[str, Any] | None,
                 batch_size: int = MAX_BATCH) -> list[Call[list[SavedSecret]]]:
    """save_many in statements of at most batch_size secrets and MAX_BATCH_BYTES of values,
    to run in one transaction."""
    seq = list(items.items()) if isinstance(items, Mapping) else list(items)
    size = max(1, min(batch_size, MAX_BATCH))
    tags = _tags(tags)
    batches: list[list[tuple[str, str]]] = [[]]
    held = 0
    for name, value in seq:
        weight = (len(value) if value.isascii() else 4 * len(value)) if isinstance(value, str) else 0
        if batches[-1] and (len(batches[-1]) == size or held + weight > MAX_BATCH_BYTES):
            batches.append([])
            held = 0
        batches[-1].append((name, value))
        held += weight
    return [save_many(tenant, [n for n, _ in b], [v for _, v in b], kind=kind, tags=tags, metadata=metadata)
            for b in batches if b]


def delete(tenant: str, name: str) -> Call[None]:
    return Call("SELECT hush.delete_secret(CAST(%(tenant)s AS pg_catalog.text), CAST(%(name)s AS pg_catalog.text))",
                {"tenant": tenant, "name": name}, _none)


def delete_by_id(tenant: str, id: Any) -> Call[None]:
    return Call("SELECT hush.delete_secret_by_id(CAST(%(tenant)s AS pg_catalog.text), CAST(%(id)s AS pg_catalog.uuid))",
                {"tenant": tenant, "id": _id(id)}, _none)


def restore(tenant: str, name: str) -> Call[SecretMetadata]:
    return Call(f"SELECT {META_COLS} FROM hush.restore_secret(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(name)s AS pg_catalog.text))",
                {"tenant": tenant, "name": name}, _one(SecretMetadata.from_row))


def destroy(tenant: str, name: str, versions: Iterable[int] | None) -> Call[int]:
    return Call("SELECT hush.destroy_secret(CAST(%(tenant)s AS pg_catalog.text), CAST(%(name)s AS pg_catalog.text), "
                "CAST(%(versions)s AS pg_catalog.int4[])) AS destroyed",
                {"tenant": tenant, "name": name, "versions": None if versions is None else list(versions)},
                lambda rows: int(rows[0]["destroyed"]))


def list_(tenant: str, *, page: int, per_page: int, prefix: str | None, tags: Iterable[str] | None,
          include_deleted: bool, after: str | None) -> Call[Page[SecretMetadata]]:
    return Call(f"SELECT {META_COLS} FROM hush.list_secrets(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(page)s AS pg_catalog.int4), CAST(%(per_page)s AS pg_catalog.int4), "
                "CAST(%(prefix)s AS pg_catalog.text), CAST(%(tags)s AS pg_catalog.text[]), "
                "CAST(%(include_deleted)s AS pg_catalog.bool), CAST(%(after)s AS pg_catalog.text))",
                {"tenant": tenant, "page": page, "per_page": per_page, "prefix": prefix, "tags": _tags(tags),
                 "include_deleted": include_deleted, "after": after},
                _meta_page(page, per_page), reads_only=True)


def search(tenant: str, query: str, *, page: int, per_page: int, after: str | None) -> Call[Page[SecretMetadata]]:
    return Call(f"SELECT {META_COLS} FROM hush.search_secrets(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(query)s AS pg_catalog.text), CAST(%(page)s AS pg_catalog.int4), "
                "CAST(%(per_page)s AS pg_catalog.int4), CAST(%(after)s AS pg_catalog.text))",
                {"tenant": tenant, "query": query, "page": page, "per_page": per_page, "after": after},
                _meta_page(page, per_page), reads_only=True)


def exists(tenant: str, name: str) -> Call[bool]:
    return Call("SELECT hush.secret_exists(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(name)s AS pg_catalog.text)) AS found",
                {"tenant": tenant, "name": name}, lambda rows: bool(rows[0]["found"]), reads_only=True)


def exists_by_id(tenant: str, id: Any) -> Call[bool]:
    return Call("SELECT hush.secret_exists_by_id(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(id)s AS pg_catalog.uuid)) AS found",
                {"tenant": tenant, "id": _id(id)}, lambda rows: bool(rows[0]["found"]), reads_only=True)


def versions(tenant: str, name: str) -> Call[list[SecretVersion]]:
    return Call(f"SELECT {VERSION_COLS} FROM hush.secret_versions(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(name)s AS pg_catalog.text))",
                {"tenant": tenant, "name": name}, lambda rows: [SecretVersion.from_row(r) for r in rows],
                reads_only=True)


# -- lifecycle: staged rotation, rollback, what falls due, what changed ------------------


def promote(tenant: str, name: str, expected_version: int | None) -> Call[SavedSecret]:
    return Call(f"SELECT {SAVED_COLS} FROM hush.promote_secret(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(name)s AS pg_catalog.text), CAST(%(expected_version)s AS pg_catalog.int4))",
                {"tenant": tenant, "name": name, "expected_version": _int("expected_version", expected_version)},
                _one(SavedSecret.from_row))


def rollback(tenant: str, name: str, to_version: int, expected_version: int | None) -> Call[SavedSecret]:
    if to_version is None:
        raise InvalidArgument("to_version must be the version whose value to restore, not None")
    return Call(f"SELECT {SAVED_COLS} FROM hush.rollback_secret(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(name)s AS pg_catalog.text), CAST(%(to_version)s AS pg_catalog.int4), "
                "CAST(%(expected_version)s AS pg_catalog.int4))",
                {"tenant": tenant, "name": name, "to_version": _int("to_version", to_version),
                 "expected_version": _int("expected_version", expected_version)},
                _one(SavedSecret.from_row))


def due(tenant: str, within: timedelta | None, at: datetime | None) -> Call[list[SecretDue]]:
    # `at` NULL would be no time at all: without one, the function's default (now()) decides.
    when = "" if at is None else ", at => CAST(%(at)s AS pg_catalog.timestamptz)"
    return Call(f"SELECT {DUE_COLS} FROM hush.due_for_rotation(tenant => CAST(%(tenant)s AS pg_catalog.text), "
                f"within => CAST(%(within)s AS pg_catalog.interval){when})",
                {"tenant": tenant, "within": _interval("within", within),
                 **({} if at is None else {"at": _when(at, "at")})},
                lambda rows: [SecretDue.from_row(r) for r in rows], reads_only=True)


def change_channel(tenant: str) -> Call[str]:
    # Not reads_only: the first call makes the channel, and a LISTEN needs the primary's.
    return Call("SELECT hush.change_channel(CAST(%(tenant)s AS pg_catalog.text)) AS channel", {"tenant": tenant},
                lambda rows: str(rows[0]["channel"]))


def changes(tenant: str, since: str | None, max_rows: int) -> Call[list[SecretChange]]:
    return Call("SELECT cursor, name, version, change, at FROM hush.changes(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(since)s AS pg_catalog.text), CAST(%(max_rows)s AS pg_catalog.int4))",
                {"tenant": tenant, "since": _text("since", since), "max_rows": _int("max_rows", max_rows)},
                lambda rows: [SecretChange.from_row(r) for r in rows], reads_only=True)


def changes_cursor(tenant: str) -> Call[str]:
    return Call("SELECT hush.changes_cursor(CAST(%(tenant)s AS pg_catalog.text)) AS cursor", {"tenant": tenant},
                lambda rows: str(rows[0]["cursor"]), reads_only=True)


def events(tenant: str, since: datetime | None, max_rows: int) -> Call[list[SecretEvent]]:
    return Call("SELECT id, at, name, event, due_at, detail FROM hush.secret_events("
                "CAST(%(tenant)s AS pg_catalog.text), CAST(%(since)s AS pg_catalog.timestamptz), "
                "CAST(%(max_rows)s AS pg_catalog.int4))",
                {"tenant": tenant, "since": _when(since, "since"), "max_rows": _int("max_rows", max_rows)},
                lambda rows: [SecretEvent.from_row(r) for r in rows], reads_only=True)


# Tenants, root keys and the audit trail: _admin_calls.py.
