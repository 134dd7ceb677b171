"""Version retention: a secret keeps its newest max_versions versions and those younger
than destroy_versions_after (its own settings, else its tenant's; none by default). Older
ones are destroyed as destroy_secret destroys (ciphertext and data key erased, the row and
its metadata kept), with a 'destroy' audit row whose detail names the rule, by hush itself:
on every save of the secret (secret_writes.py, bulk.py), when a promotion or a rollback
unstages a version (lifecycle.py), and by hush.maintain_secrets() (upkeep.py) for what ages
out between saves. A save needs no `destroy` capability for it; setting a secret's own
retention does (secret_writes.py), so a writer cannot shorten it to erase others' values.
A version staged current, pending or previous is never destroyed by retention, and a
soft-deleted secret keeps its versions until it is purged.
"""
from __future__ import annotations

from .access import plan

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

EQ = "OPERATOR(pg_catalog.=)"

# The rows of hush.secrets ($1 the tenant) whose versions retention looks at: {secrets}
# narrows them (ids in $2, or every live secret of the tenant). $3 the role the audit rows
# name, $4 their detail besides the rule (the grant a save relied on; NULL: none). Runs
# under owner_steps: hush.tenant is $1.
# It never waits for a version row another transaction holds (SKIP LOCKED): one tenant's
# writer in an open transaction whose save destroyed old versions must not make
# maintain_secrets wait for it. A row skipped is destroyed by the next run, or by its
# holder's own save (whose retention locked it) when that commits. The secrets rows are read,
# not locked (OF v): a concurrent save only stages versions newer than those read here.
RETAIN_SQL = f"""
WITH c AS (
  SELECT v.secret_id, v.version, s.name,
         CASE WHEN v.version OPERATOR(pg_catalog.<=) (GREATEST(s.current_version, s.pending_version)
                                                       OPERATOR(pg_catalog.-) k.keep)
              THEN pg_catalog.jsonb_build_object('max_versions', k.keep)
              ELSE pg_catalog.jsonb_build_object('destroy_versions_after', k.ttl::pg_catalog.text) END AS rule
    FROM hush.secrets s
    LEFT JOIN hush.tenants t ON t.tenant_id {EQ} s.tenant_id
    CROSS JOIN LATERAL (SELECT COALESCE(s.max_versions, NULLIF(t.max_versions, 0)) AS keep,
                               COALESCE(s.destroy_versions_after,
                                        NULLIF(t.destroy_versions_after, '0'::pg_catalog.interval)) AS ttl) AS k
    JOIN hush.secret_versions v ON v.tenant_id {EQ} s.tenant_id AND v.secret_id {EQ} s.id
   WHERE s.tenant_id {EQ} $1 AND {{secrets}} AND s.deleted_at IS NULL
     AND (k.keep IS NOT NULL OR k.ttl IS NOT NULL)
     AND v.destroyed_at IS NULL
     AND v.version OPERATOR(pg_catalog.<>) s.current_version
     AND v.version IS DISTINCT FROM s.pending_version AND v.version IS DISTINCT FROM s.previous_version
     -- OPERATOR() forms all bind alike, left to right: the parentheses are needed
     AND (v.version OPERATOR(pg_catalog.<=) (GREATEST(s.current_version, s.pending_version)
                                             OPERATOR(pg_catalog.-) k.keep)
          OR v.created_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) k.ttl))
     FOR UPDATE OF v SKIP LOCKED),
     r AS (UPDATE hush.secret_versions v
              SET ciphertext = NULL, wrapped_dek = NULL, key_id = NULL, destroyed_at = pg_catalog.now()
             FROM c
            WHERE v.tenant_id {EQ} $1 AND v.secret_id {EQ} c.secret_id AND v.version {EQ} c.version
           RETURNING c.secret_id, c.version, c.name, c.rule),
     a AS (INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
           SELECT $1, 'destroy', r.secret_id, r.name, r.version, $3,
                  COALESCE($4, '{{{{}}}}'::pg_catalog.jsonb) OPERATOR(pg_catalog.||)
                  pg_catalog.jsonb_build_object('retention', r.rule)
             FROM r)
SELECT pg_catalog.count(*) AS n FROM r
"""
SHAPES = {"ids": f"s.id {EQ} ANY ($2)", "tenant": "$2::pg_catalog.uuid[] IS NULL"}
TYPES = ["pg_catalog.text", "pg_catalog.uuid[]", "pg_catalog.name", "pg_catalog.jsonb"]


def applies(ctx: dict, row: dict) -> bool:
    """Whether retention may destroy anything of a secret just written: `row` carries the
    secret's own max_versions and destroy_versions_after, `ctx` the tenant's (access.enter's
    write columns, or the save statement's). Cheap, so a save with no retention pays nothing."""
    return bool(row.get("max_versions") or row.get("destroy_versions_after") or ctx.get("tenant_max_versions")
                or ctx.get("tenant_destroy_versions_after") is not None)  # NULL there: none


def apply(plpy: Any, tenant: str, ids: Any, role: str, detail: Any = None) -> int:
    """Destroy what retention no longer keeps of the secrets `ids` (None: every live secret of
    the tenant), audited as `role` with `detail` (JSON text) beside the rule; how many
    versions. In a privileged step that set hush.tenant to `tenant`."""
    shape = "tenant" if ids is None else "ids"
    p = plan(plpy, "retention." + shape, RETAIN_SQL.format(secrets=SHAPES[shape]), TYPES)
    return plpy.execute(p, [tenant, ids, role, detail])[0]["n"]
