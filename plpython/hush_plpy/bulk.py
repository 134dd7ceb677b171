"""hush.save_secrets: many secrets in one call, set-based.

A privileged step (privileged.py), run as hush_owner for the caller. Three
round trips whatever the batch size (access.enter, one upsert of every
secret, one insert of every version with its audit row) instead of three per
secret: each plpy.execute runs in its own subtransaction, and more than 64
subtransactions in one transaction slow every backend's snapshot checks.
All or nothing: any bad row fails the whole call before anything is written,
and a soft-deleted name fails it after (the statement's writes roll back).
"""
from __future__ import annotations

from collections import Counter

from . import access, crypto, privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, SECRET_DELETED, Fail, api
from .secrets import EQ, T, active_key

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

MAX_BATCH = 10000

UPSERT_MANY_SQL = """
INSERT INTO hush.secrets AS s (tenant_id, name, kind, tags, metadata, created_by)
SELECT $1, n.name, COALESCE($3, 'generic'), COALESCE($4, '{}'::pg_catalog.text[]),
       COALESCE($5, '{}'::pg_catalog.jsonb), $6
  FROM pg_catalog.unnest($2) AS n(name)
ON CONFLICT (tenant_id, name) DO UPDATE
   SET current_version = s.current_version OPERATOR(pg_catalog.+) 1,
       kind = COALESCE($3, s.kind), tags = COALESCE($4, s.tags), metadata = COALESCE($5, s.metadata),
       updated_at = pg_catalog.now()
 WHERE s.deleted_at IS NULL
RETURNING s.id, s.name, s.current_version AS version, s.created_at, s.updated_at
"""

VERSIONS_MANY_SQL = f"""
WITH v AS (
  INSERT INTO hush.secret_versions (tenant_id, secret_id, version, key_id, wrapped_dek, ciphertext, created_by)
  SELECT $1, u.id, u.version, $6, u.dek, u.ct, $7
    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4),
                   pg_catalog.unnest($5)) AS u(id, version, dek, ct)
  RETURNING secret_id, version)
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
SELECT $1, CASE WHEN v.version {EQ} 1 THEN 'create' ELSE 'new_version' END, v.secret_id, n.name, v.version, $7, $9
  FROM v JOIN ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($8)) AS n(id, name) ON n.id {EQ} v.secret_id
"""


@api
def save_secrets(plpy: Any, GD: dict, tenant: str, names: Any, values: Any, kind: Any, tags: Any,
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
        raise Fail(INVALID_ARGUMENT, "names repeat in one call: %s" % ", ".join(repr(n) for n in dupes[:10]))
    validate.kind(kind)
    tags = validate.tags(tags)
    validate.metadata(metadata)
    return privileged.call(plpy, privileged.OWNER, _save_many, GD, tenant, names, values, kind, tags, metadata)


@privileged.step(privileged.OWNER)
def _save_many(plpy: Any, caller: str, GD: dict, tenant: str, names: list, values: list, kind: Any, tags: Any,
               metadata: Any) -> list:
    ctx = access.enter(plpy, caller, tenant, write=True)
    raws = {}
    for i, (n, v) in enumerate(zip(names, values)):
        try:
            raws[n] = validate.value(v, ctx["max_value_bytes"])
        except Fail as f:
            raise Fail(f.code, "secret %r (element %d): %s" % (n, i + 1, f.message), hint=f.hint) from None
    kid, root = active_key(plpy, GD, ctx)

    rows = plpy.execute(plan(plpy, "bulk.upsert", UPSERT_MANY_SQL,
                             [T, "pg_catalog.text[]", T, "pg_catalog.text[]", "pg_catalog.jsonb", "pg_catalog.name"]),
                        [tenant, names, kind, tags, metadata, caller])
    if len(rows) != len(names):
        written = {r["name"] for r in rows}
        deleted = [n for n in names if n not in written]
        raise Fail(SECRET_DELETED, "%d secrets of tenant %s are deleted: %s" % (
            len(deleted), tenant, ", ".join(repr(n) for n in deleted[:10])),
            hint="Restore them with hush.restore_secret first; nothing was saved.")
    ids, versions, deks, cts, row_names = [], [], [], [], []
    for r in rows:
        dek, ct = crypto.seal(root, kid, tenant, r["id"], r["version"], raws[r["name"]])
        ids.append(r["id"])
        versions.append(r["version"])
        deks.append(dek)
        cts.append(ct)
        row_names.append(r["name"])
    plpy.execute(plan(plpy, "bulk.versions", VERSIONS_MANY_SQL,
                      [T, "pg_catalog.uuid[]", "pg_catalog.int4[]", "pg_catalog.bytea[]", "pg_catalog.bytea[]", T,
                       "pg_catalog.name", "pg_catalog.text[]", "pg_catalog.jsonb"]),
                 [tenant, ids, versions, deks, cts, kid, caller, row_names, access.actor(ctx)])
    return [{"id": r["id"], "tenant_id": tenant, "name": r["name"], "version": r["version"],
             "created_at": r["created_at"], "updated_at": r["updated_at"]} for r in rows]
