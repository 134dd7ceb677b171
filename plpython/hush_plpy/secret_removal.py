"""The secret API, removing: delete_secret (soft, undone by restore_secret) and
destroy_secret (the versions' ciphertext and data keys erased for good). Each checks its
capability on the name, writes and audits in one statement, then notifies the tenant's
change channel.
"""
from __future__ import annotations

from . import access, changes, privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, VERSION_NOT_FOUND, Fail, api
from .secret_listing import _list
from .secrets import EQ, KEYS, OWNER, T, not_found

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

SET_DELETED_SQL = f"""
WITH u AS (
  UPDATE hush.secrets s SET deleted_at = {{new}}, updated_at = pg_catalog.now()
   WHERE s.tenant_id {EQ} $1 AND {{col}} {EQ} $2 AND s.deleted_at IS {{old}}
  RETURNING s.id, s.name, s.current_version),
     a AS (INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
           SELECT $1, '{{action}}', u.id, u.name, u.current_version, $3, $4 FROM u)
SELECT * FROM u
"""
WHO_TYPES = ["pg_catalog.name", "pg_catalog.jsonb"]


@privileged.step(OWNER)
def _delete(plpy: Any, caller: str, tenant: str, by: str, key: Any) -> None:
    from . import scope
    ctx = scope.enter(plpy, caller, tenant, by, key, "delete", audits=True)
    col, typ = KEYS[by]
    sql = SET_DELETED_SQL.format(new="pg_catalog.now()", old="NULL", col=col, action="delete")
    if not plpy.execute(plan(plpy, "delete." + by, sql, [T, typ, *WHO_TYPES]),
                        [tenant, key, caller, access.actor(ctx)]):
        raise not_found(by, key, tenant)
    changes.notify(plpy, ctx["change_channel"])


@api
def delete_secret(plpy: Any, tenant: str, name: str) -> None:
    validate.tenant(tenant)
    privileged.call(plpy, OWNER, _delete, tenant, "name", validate.name(name))


@api
def delete_secret_by_id(plpy: Any, tenant: str, secret_id: str) -> None:
    validate.tenant(tenant)
    privileged.call(plpy, OWNER, _delete, tenant, "id", secret_id)


@api
def restore_secret(plpy: Any, tenant: str, name: str) -> dict:
    """Restoring a live secret is a no-op that returns it."""
    validate.tenant(tenant)
    validate.name(name)
    return privileged.call(plpy, OWNER, _restore, tenant, name)


@privileged.step(OWNER)
def _restore(plpy: Any, caller: str, tenant: str, name: str) -> dict:
    ctx = access.enter(plpy, caller, tenant, audits=True, cap="delete", name=name)
    sql = SET_DELETED_SQL.format(new="NULL", old="NOT NULL", col="s.name", action="restore")
    restored = plpy.execute(plan(plpy, "restore", sql, [T, T, *WHO_TYPES]), [tenant, name, caller, access.actor(ctx)])
    rows = _list(plpy, tenant, 1, 1, None, None, True, name)
    if not rows or rows[0]["deleted_at"] is not None:
        raise not_found("name", name, tenant)
    if restored:
        changes.notify(plpy, ctx["change_channel"])
    return rows[0]


# Locks the secret's row, as every write of a version does first (saves, promote_secret,
# rollback_secret): a destroy of all versions beside a rollback that copies an old value
# waits for it, and in READ COMMITTED its next statement (DESTROY_SQL) destroys the copy too.
# `versions` is read with this statement's snapshot, from before any such wait (_destroy).
DESTROY_FIND_SQL = f"""
SELECT s.id, (SELECT pg_catalog.array_agg(v.version) FROM hush.secret_versions v
               WHERE v.tenant_id {EQ} s.tenant_id AND v.secret_id {EQ} s.id) AS versions
  FROM hush.secrets s WHERE s.tenant_id {EQ} $1 AND s.name {EQ} $2
   FOR UPDATE OF s
"""
DESTROY_SQL = f"""
WITH d AS (
  UPDATE hush.secret_versions v
     SET ciphertext = NULL, wrapped_dek = NULL, key_id = NULL, destroyed_at = pg_catalog.now()
   WHERE v.tenant_id {EQ} $1 AND v.secret_id {EQ} $2 AND v.destroyed_at IS NULL
     AND ($3 IS NULL OR v.version {EQ} ANY ($3))
  RETURNING v.version),
     a AS (INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
           SELECT $1, 'destroy', $2, $4, d.version, $5, $6 FROM d)
SELECT pg_catalog.count(*) AS n FROM d
"""


@api
def destroy_secret(plpy: Any, tenant: str, name: str, versions: Any) -> int:
    """Erase the ciphertext and data key of the given versions (all when NULL),
    live or soft-deleted; returns how many versions were destroyed now."""
    validate.tenant(tenant)
    validate.name(name)
    if versions is not None and any(v is None for v in versions):
        raise Fail(INVALID_ARGUMENT, "versions must not contain NULL")
    return privileged.call(plpy, OWNER, _destroy, tenant, name, versions)


@privileged.step(OWNER)
def _destroy(plpy: Any, caller: str, tenant: str, name: str, versions: Any) -> int:
    ctx = access.enter(plpy, caller, tenant, audits=True, cap="destroy", name=name)
    find = plan(plpy, "destroy.find", DESTROY_FIND_SQL, [T, T])
    rows = plpy.execute(find, [tenant, name])
    if not rows:
        raise not_found("name", name, tenant)
    missing = sorted(set(versions or []) - set(rows[0]["versions"] or []))
    if missing:
        # A version committed while the lock was awaited is not in that snapshot; the row is
        # ours now, and a new statement sees it (READ COMMITTED; in a snapshot transaction
        # such a wait ended in 40001 instead).
        rows = plpy.execute(find, [tenant, name])
        missing = sorted(set(versions) - set(rows[0]["versions"] or []))
    if missing:
        # The first ten: the list is the caller's, up to 10,000 long.
        raise Fail(VERSION_NOT_FOUND, "secret %r of tenant %s has no version %s%s"
                   % (name, tenant, ", ".join(map(str, missing[:10])),
                      " (and %d more)" % (len(missing) - 10) if len(missing) > 10 else ""))
    p = plan(plpy, "destroy", DESTROY_SQL, [T, "pg_catalog.uuid", "pg_catalog.int4[]", T, *WHO_TYPES])
    n = plpy.execute(p, [tenant, rows[0]["id"], versions, name, caller, access.actor(ctx)])[0]["n"]
    if n:
        changes.notify(plpy, ctx["change_channel"])
    return n
