"""Each client method as one statement: the SQL of one `hush.*` call, its bind
parameters, and how its rows become typed results.

The sync, async and SQLAlchemy paths all run these same Calls, so they cannot
drift. Every value is a bind parameter, never query text (psycopg 3 binds on
the server, so a value is not in pg_stat_activity or the statement log).
Parameters are written `%(name)s` and cast with CAST(... AS type), a form that
both psycopg and SQLAlchemy's text() accept; the casts make function
resolution independent of how a driver types Python ints and lists.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Generic, Iterable, Mapping, Sequence, TypeVar

from ._models import Page, SavedSecret, Secret, SecretMetadata, SecretVersion

T = TypeVar("T")
# Rows come keyed by column name (psycopg's dict_row; SQLAlchemy's Row._mapping), so a
# column the server adds, or a column list in another order, cannot shift a field.
Rows = Sequence[Mapping[str, Any]]

# The server's hush.save_secrets limit; larger imports are sent in chunks of this size.
MAX_BATCH = 10_000
# The server clamps list and search pages to this many rows (plpython/hush_plpy/validate.py
# MAX_PER_PAGE; tests/test_client_surface.py keeps the two equal). Page.per_page says what it used.
MAX_PER_PAGE = 1000

SECRET_COLS = ("id, tenant_id, name, value, kind, description, tags, metadata, version, created_at, updated_at, "
               "expires_at")
SAVED_COLS = "id, tenant_id, name, version, created_at, updated_at"
META_COLS = ("id, tenant_id, name, kind, description, tags, metadata, version, expires_at, created_at, updated_at, "
             "deleted_at, total, total_exact")
VERSION_COLS = "version, created_at, created_by, key_id, destroyed, destroyed_at, is_current"

WRITE_ARGS = ("description => CAST(%(description)s AS text), tags => CAST(%(tags)s AS text[]), "
              "metadata => CAST(%(metadata)s AS jsonb), expected_version => CAST(%(expected_version)s AS integer), "
              "kind => CAST(%(kind)s AS text), expires_at => CAST(%(expires_at)s AS timestamptz)")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One statement. `reads_only`: it writes nothing but its audit record (which a standby
    commits on the primary), so a client with a read pool (hush.connect(read_dsn=...)) may
    send it to a replica."""
    sql: str
    params: dict[str, Any]
    shape: Callable[[Rows], T]
    reads_only: bool = False


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


def _tags(tags: Iterable[str] | None) -> list[str] | None:
    if tags is None:
        return None
    if isinstance(tags, str):  # a lone string is one tag, not its characters
        return [tags]
    return list(tags)


def get(tenant: str, name: str, version: int | None) -> Call[Secret]:
    return Call(f"SELECT {SECRET_COLS} FROM hush.get_secret(CAST(%(tenant)s AS text), CAST(%(name)s AS text), "
                "CAST(%(version)s AS integer))",
                {"tenant": tenant, "name": name, "version": version}, _one(Secret.from_row), reads_only=True)


def get_by_id(tenant: str, id: Any, version: int | None) -> Call[Secret]:
    return Call(f"SELECT {SECRET_COLS} FROM hush.get_secret_by_id(CAST(%(tenant)s AS text), CAST(%(id)s AS uuid), "
                "CAST(%(version)s AS integer))",
                {"tenant": tenant, "id": str(id), "version": version}, _one(Secret.from_row), reads_only=True)


def get_many(tenant: str, names: Sequence[str]) -> Call[list[Secret]]:
    return Call(f"SELECT {SECRET_COLS} FROM hush.get_secrets(CAST(%(tenant)s AS text), CAST(%(names)s AS text[]))",
                {"tenant": tenant, "names": list(names)}, lambda rows: [Secret.from_row(r) for r in rows],
                reads_only=True)


def save(tenant: str, name: str, value: str, *, description: str | None, tags: Iterable[str] | None,
         metadata: Mapping[str, Any] | None, kind: str | None, expected_version: int | None,
         expires_at: datetime | None) -> Call[SavedSecret]:
    return Call(f"SELECT {SAVED_COLS} FROM hush.save_secret(tenant => CAST(%(tenant)s AS text), "
                f"name => CAST(%(name)s AS text), value => CAST(%(value)s AS text), {WRITE_ARGS})",
                {"tenant": tenant, "name": name, "value": value, "description": description, "tags": _tags(tags),
                 "metadata": _metadata(metadata), "kind": kind, "expected_version": expected_version,
                 "expires_at": expires_at},
                _one(SavedSecret.from_row))


def update(tenant: str, by: str, key: Any, value: str | None, *, description: str | None,
           tags: Iterable[str] | None, metadata: Mapping[str, Any] | None, kind: str | None,
           expected_version: int | None, expires_at: datetime | None) -> Call[SavedSecret]:
    fn, arg = ("update_secret", "name => CAST(%(key)s AS text)") if by == "name" else \
        ("update_secret_by_id", "id => CAST(%(key)s AS uuid)")
    return Call(f"SELECT {SAVED_COLS} FROM hush.{fn}(tenant => CAST(%(tenant)s AS text), {arg}, "
                f"value => CAST(%(value)s AS text), {WRITE_ARGS})",
                {"tenant": tenant, "key": key if by == "name" else str(key), "value": value,
                 "description": description, "tags": _tags(tags), "metadata": _metadata(metadata), "kind": kind,
                 "expected_version": expected_version, "expires_at": expires_at},
                _one(SavedSecret.from_row))


def save_many(tenant: str, names: Sequence[str], values: Sequence[str], *, kind: str | None,
              tags: Iterable[str] | None, metadata: Mapping[str, Any] | None) -> Call[list[SavedSecret]]:
    return Call(f"SELECT {SAVED_COLS} FROM hush.save_secrets(CAST(%(tenant)s AS text), CAST(%(names)s AS text[]), "
                "CAST(%(values)s AS text[]), CAST(%(kind)s AS text), CAST(%(tags)s AS text[]), "
                "CAST(%(metadata)s AS jsonb))",
                {"tenant": tenant, "names": list(names), "values": list(values), "kind": kind, "tags": _tags(tags),
                 "metadata": _metadata(metadata)},
                lambda rows: [SavedSecret.from_row(r) for r in rows])


def save_batches(tenant: str, items: Mapping[str, str] | Iterable[tuple[str, str]], *, kind: str | None,
                 tags: Iterable[str] | None, metadata: Mapping[str, Any] | None,
                 batch_size: int = MAX_BATCH) -> list[Call[list[SavedSecret]]]:
    """save_many in statements of at most batch_size secrets, to run in one transaction."""
    seq = list(items.items()) if isinstance(items, Mapping) else list(items)
    names, values = [n for n, _ in seq], [v for _, v in seq]
    size = max(1, min(batch_size, MAX_BATCH))
    tags = _tags(tags)
    return [save_many(tenant, names[i:i + size], values[i:i + size], kind=kind, tags=tags,
                      metadata=metadata) for i in range(0, len(seq), size)]


def delete(tenant: str, name: str) -> Call[None]:
    return Call("SELECT hush.delete_secret(CAST(%(tenant)s AS text), CAST(%(name)s AS text))",
                {"tenant": tenant, "name": name}, _none)


def delete_by_id(tenant: str, id: Any) -> Call[None]:
    return Call("SELECT hush.delete_secret_by_id(CAST(%(tenant)s AS text), CAST(%(id)s AS uuid))",
                {"tenant": tenant, "id": str(id)}, _none)


def restore(tenant: str, name: str) -> Call[SecretMetadata]:
    return Call(f"SELECT {META_COLS} FROM hush.restore_secret(CAST(%(tenant)s AS text), CAST(%(name)s AS text))",
                {"tenant": tenant, "name": name}, _one(SecretMetadata.from_row))


def destroy(tenant: str, name: str, versions: Iterable[int] | None) -> Call[int]:
    return Call("SELECT hush.destroy_secret(CAST(%(tenant)s AS text), CAST(%(name)s AS text), "
                "CAST(%(versions)s AS integer[])) AS destroyed",
                {"tenant": tenant, "name": name, "versions": None if versions is None else list(versions)},
                lambda rows: int(rows[0]["destroyed"]))


def list_(tenant: str, *, page: int, per_page: int, prefix: str | None, tags: Iterable[str] | None,
          include_deleted: bool, after: str | None) -> Call[Page[SecretMetadata]]:
    return Call(f"SELECT {META_COLS} FROM hush.list_secrets(CAST(%(tenant)s AS text), CAST(%(page)s AS integer), "
                "CAST(%(per_page)s AS integer), CAST(%(prefix)s AS text), CAST(%(tags)s AS text[]), "
                "CAST(%(include_deleted)s AS boolean), CAST(%(after)s AS text))",
                {"tenant": tenant, "page": page, "per_page": per_page, "prefix": prefix, "tags": _tags(tags),
                 "include_deleted": include_deleted, "after": after},
                _meta_page(page, per_page), reads_only=True)


def search(tenant: str, query: str, *, page: int, per_page: int, after: str | None) -> Call[Page[SecretMetadata]]:
    return Call(f"SELECT {META_COLS} FROM hush.search_secrets(CAST(%(tenant)s AS text), CAST(%(query)s AS text), "
                "CAST(%(page)s AS integer), CAST(%(per_page)s AS integer), CAST(%(after)s AS text))",
                {"tenant": tenant, "query": query, "page": page, "per_page": per_page, "after": after},
                _meta_page(page, per_page), reads_only=True)


def exists(tenant: str, name: str) -> Call[bool]:
    return Call("SELECT hush.secret_exists(CAST(%(tenant)s AS text), CAST(%(name)s AS text)) AS found",
                {"tenant": tenant, "name": name}, lambda rows: bool(rows[0]["found"]), reads_only=True)


def exists_by_id(tenant: str, id: Any) -> Call[bool]:
    return Call("SELECT hush.secret_exists_by_id(CAST(%(tenant)s AS text), CAST(%(id)s AS uuid)) AS found",
                {"tenant": tenant, "id": str(id)}, lambda rows: bool(rows[0]["found"]), reads_only=True)


def versions(tenant: str, name: str) -> Call[list[SecretVersion]]:
    return Call(f"SELECT {VERSION_COLS} FROM hush.secret_versions(CAST(%(tenant)s AS text), CAST(%(name)s AS text))",
                {"tenant": tenant, "name": name}, lambda rows: [SecretVersion.from_row(r) for r in rows],
                reads_only=True)


# Tenants, root keys and the audit trail: _admin_calls.py.
