"""hush.save_secrets: many secrets in one call, set-based.

A privileged step (privileged.py), run as hush_owner for the caller. A few
round trips whatever the batch size (access.enter, one upsert of every
secret, one insert of versions with their audit rows per 4 MiB of
ciphertext) instead of three per secret: each plpy.execute runs in its own
subtransaction, and more than 64 subtransactions in one transaction slow
every backend's snapshot checks.
All or nothing: any bad row fails the whole call before anything is written,
and a soft-deleted name fails it after (the statement's writes roll back).

Memory: the values arrive twice, as PostgreSQL's array (the argument, checked
against its limits before PL/Python converts it: sql/25_limits.sql) and as
Python strings. Nothing here holds a third copy of them all: each string is
dropped once its value is sealed, the ciphertexts go to the server in
CHUNK_BYTES statements, and the memory freed meanwhile goes back to the
operating system (the table's pages take as much again in shared buffers,
which the backend's resident size counts too). docs/reference.md, "Limits".
"""
from __future__ import annotations

from collections import Counter

from . import access, changes, crypto, privileged, retention, scope, validate
from .access import plan
from .errors import INVALID_ARGUMENT, SECRET_DELETED, Fail, api
from .secret_writes import NEW_VERSION_SET, active_key
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

MAX_BATCH = 10000
# Ciphertext per versions statement: 64 MiB of values, the most one call takes, is 16
# statements (and subtransactions); each holds its chunk about three times at once.
CHUNK_BYTES = 4 << 20

# A new current version of each, numbered and staged as save_secret's (secret_writes.NEW_VERSION_SET).
# `retained`: whether the secret has retention settings of its own (the tenant's are in ctx).
UPSERT_MANY_SQL = f"""
INSERT INTO hush.secrets AS s (tenant_id, name, kind, tags, metadata, created_by)
SELECT $1, n.name, COALESCE($3, 'generic'), COALESCE($4, '{{}}'::pg_catalog.text[]),
       COALESCE($5, '{{}}'::pg_catalog.jsonb), $6
  FROM pg_catalog.unnest($2) AS n(name)
ON CONFLICT (tenant_id, name) DO UPDATE
   SET {NEW_VERSION_SET["current"]}
       kind = COALESCE($3, s.kind), tags = COALESCE($4, s.tags), metadata = COALESCE($5, s.metadata),
       updated_at = pg_catalog.now()
 WHERE s.deleted_at IS NULL
RETURNING s.id, s.name, s.current_version AS version, s.created_at, s.updated_at,
          s.max_versions IS NOT NULL OR s.destroy_versions_after IS NOT NULL AS retained
"""

# The ciphertexts come as one bytea ($5) cut at the offsets $10 (1-based) and lengths $11:
# a bytea[] would be copied element by element into an array, twice the memory.
VERSIONS_MANY_SQL = f"""
WITH v AS (
  INSERT INTO hush.secret_versions (tenant_id, secret_id, version, key_id, wrapped_dek, ciphertext, created_by)
  SELECT $1, u.id, u.version, $6, u.dek, pg_catalog.substr($5, u.start, u.len), $7
    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4),
                   pg_catalog.unnest($10), pg_catalog.unnest($11)) AS u(id, version, dek, start, len)
  RETURNING secret_id, version)
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
SELECT $1, CASE WHEN v.version {EQ} 1 THEN 'create' ELSE 'new_version' END, v.secret_id, n.name, v.version, $7,
       n.detail
  FROM v JOIN ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($8), pg_catalog.unnest($9))
                   AS n(id, name, detail) ON n.id {EQ} v.secret_id
"""


@api
def save_secrets(plpy: Any, tenant: str, names: Any, values: Any, kind: Any, tags: Any,
                 metadata: Any) -> list:
    validate.tenant(tenant)
    if names is None or values is None or len(names) != len(values):
        raise Fail(INVALID_ARGUMENT, "names and values must be arrays of the same length")
    if not names:
        return []
    if len(names) > MAX_BATCH:
        raise Fail(INVALID_ARGUMENT, "at most %d secrets per call; split the batch" % MAX_BATCH)
    for n in names:
        validate.name(n)
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        raise Fail(INVALID_ARGUMENT, "names repeat in one call: %s" % ", ".join(validate.show(n) for n in dupes[:10]))
    validate.kind(kind)
    tags = validate.tags(tags)
    validate.metadata(metadata)
    return privileged.call(plpy, privileged.OWNER, _save_many, tenant, names, values, kind, tags, metadata)


@privileged.step(privileged.OWNER)
def _save_many(plpy: Any, caller: str, tenant: str, names: list, values: list, kind: Any, tags: Any,
               metadata: Any) -> list:
    ctx = access.enter(plpy, caller, tenant, write=True)
    # `write` on every name, decided from the names before the upsert looks at any row; and
    # the grant that allowed each, for its audit row.
    checked = scope.check(plpy, caller, tenant, "names", names, "write")
    refused = scope.refused(checked)
    if refused:
        raise scope.refuse_many(caller, tenant, "write", refused, len(names))
    # One audit detail per grant (a batch holds few), not a JSON text per name.
    per_grant: dict = {}
    for r in checked:
        g = tuple(r["via"] or ())
        if g not in per_grant:
            per_grant[g] = access.actor({"via": r["via"], "superuser": ctx["superuser"]})
    details = {r["name"]: per_grant[tuple(r["via"] or ())] for r in checked}
    access.still_granted(plpy, ctx, [r["via"] for r in checked])
    for i, (n, v) in enumerate(zip(names, values)):
        try:
            validate.value_size(v, ctx["max_value_bytes"])
        except Fail as f:
            raise Fail(f.code, "secret %s (element %d): %s" % (validate.show(n), i + 1, f.message),
                       hint=f.hint) from None
    kid, root = active_key(plpy, ctx)

    rows = plpy.execute(plan(plpy, "bulk.upsert", UPSERT_MANY_SQL,
                             [T, "pg_catalog.text[]", T, "pg_catalog.text[]", "pg_catalog.jsonb", "pg_catalog.name"]),
                        [tenant, names, kind, tags, metadata, caller])
    if len(rows) != len(names):
        written = {r["name"] for r in rows}
        deleted = [n for n in names if n not in written]
        raise Fail(SECRET_DELETED, "%d secrets of tenant %s are deleted: %s" % (
            len(deleted), tenant, ", ".join(repr(n) for n in deleted[:10])),
            hint="Restore them with hush.restore_secret first; nothing was saved.")
    p = plan(plpy, "bulk.versions", VERSIONS_MANY_SQL,
             [T, "pg_catalog.uuid[]", "pg_catalog.int4[]", "pg_catalog.bytea[]", "pg_catalog.bytea", T,
              "pg_catalog.name", "pg_catalog.text[]", "pg_catalog.jsonb[]", "pg_catalog.int4[]", "pg_catalog.int4[]"])
    at = {n: i for i, n in enumerate(names)}
    chunk: list = []
    size = 0
    for r in rows:
        i = at[r["name"]]
        raw = values[i].encode("utf-8")
        # `values` is this call's argument list, which holds the only other reference to
        # the string: dropped now, it frees its memory before the next value is sealed.
        values[i] = None
        chunk.append((r, crypto.seal(root, kid, tenant, r["id"], r["version"], raw)))
        del raw
        size += len(chunk[-1][1][1])
        if size >= CHUNK_BYTES:
            _insert_versions(plpy, p, tenant, kid, caller, details, chunk)
            chunk, size = [], 0
            _give_back_memory()
    if chunk:
        _insert_versions(plpy, p, tenant, kid, caller, details, chunk)
    _retain(plpy, tenant, ctx, rows, details)
    changes.notify(plpy, ctx["change_channel"])
    return [{"id": r["id"], "tenant_id": tenant, "name": r["name"], "version": r["version"],
             "created_at": r["created_at"], "updated_at": r["updated_at"]} for r in rows]


def _retain(plpy: Any, tenant: str, ctx: dict, rows: Any, details: dict) -> None:
    """Retention for the secrets just saved that have any (all of them when the tenant has
    some): one statement per grant that allowed their writes (a batch holds few), whose
    detail their audit rows carry, as a single save's do."""
    whole = retention.applies(ctx, {})
    by_detail: dict = {}
    for r in rows:
        if whole or r["retained"]:
            by_detail.setdefault(details[r["name"]], []).append(r["id"])
    for detail, ids in by_detail.items():
        retention.apply(plpy, tenant, ids, ctx["caller"], detail)


def _insert_versions(plpy: Any, p: Any, tenant: str, kid: str, caller: str, details: dict, chunk: list) -> None:
    """One statement: the versions of `chunk`, [(upserted row, (wrapped DEK, ciphertext))], with their audit rows
    (`details`: each name's audit detail)."""
    starts, lens, at = [], [], 1
    for _, (_, ct) in chunk:
        starts.append(at)
        lens.append(len(ct))
        at += len(ct)
    blob = b"".join(ct for _, (_, ct) in chunk)
    chunk_rows = [r for r, _ in chunk]
    deks = [dek for _, (dek, _) in chunk]
    del chunk[:]  # the ciphertexts live on in the blob only
    plpy.execute(p, [tenant, [r["id"] for r in chunk_rows], [r["version"] for r in chunk_rows], deks, blob, kid,
                     caller, [r["name"] for r in chunk_rows], [details[r["name"]] for r in chunk_rows], starts, lens])


_malloc_trim: Any = None


def _give_back_memory() -> None:
    """Return the memory of the strings and ciphertexts freed so far to the operating system.
    Python frees a string into the C heap, which keeps it resident (and counted in the
    backend's size) until malloc_trim; without it the freed strings and the shared buffers
    the ciphertexts fill would add up to a third copy of the values. glibc only (elsewhere
    a no-op); ctypes is imported by calls of more than one chunk only."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes
            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (ImportError, OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)
