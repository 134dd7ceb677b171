"""The secret API: save, get, update, delete, restore, destroy, list, search.

Every call is a privileged step (privileged.py) run as hush_owner for the
caller its ticket names: the API functions are SECURITY INVOKER, and callers
hold no privilege on any table or view (a role that could query row-secured
relations itself could count other tenants' rows with EXPLAIN ANALYZE).
A read is one statement in the step (the dispatching statement set hush.tenant
for the owner_steps row policy): its WHERE holds the caller's grant
(access.may) and it brings the tenant's read-audit setting along; the read
record (audit.record_reads) follows before any value is opened. A write checks the grant (access.enter),
then one statement writes and inserts its audit row through a data-modifying
CTE. Values are encrypted and decrypted here, in the server; they never
appear in SQL text, errors or audit rows.
"""
from __future__ import annotations


from . import access, audit, crypto, keyring, privileged, validate
from .access import plan
from .errors import (DECRYPTION_FAILED, INVALID_ARGUMENT, SECRET_DELETED, SECRET_EXPIRED, SECRET_NOT_FOUND,
                     VERSION_CONFLICT, VERSION_DESTROYED, VERSION_NOT_FOUND, Fail, api)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

T = "pg_catalog.text"
KEYS = {"name": ("s.name", T), "id": ("s.id", "pg_catalog.uuid")}
EQ = "OPERATOR(pg_catalog.=)"

# -- reading -----------------------------------------------------------------


def not_found(by: str, key: Any, tenant: str) -> Fail:
    """SH010 for a secret the caller named: the name or id only as validate.show() gives it,
    since what was not found may be a value passed in its place."""
    return Fail(SECRET_NOT_FOUND, "secret %s %s not found in tenant %s" % (by, validate.show(key), tenant))

OWNER = privileged.OWNER
# $1 tenant, $2 the key, $3 the caller (a version, when asked, is $4). A row comes back only
# if the caller may read its name. Which grant allowed it is looked up for the read record
# only, where it commits (recheck.py): here, access.via's plan would be built on every read,
# ~5 µs each.
READ_SQL = f"""
SELECT s.id, s.name, s.kind, s.description, s.tags, s.metadata, s.created_at, s.updated_at, s.expires_at,
       (s.expires_at IS NOT NULL AND s.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS expired,
       v.version, v.key_id, v.wrapped_dek, v.ciphertext,
       COALESCE((SELECT {access.audit_reads("t")} FROM hush.tenants t WHERE t.tenant_id {EQ} $1), true) AS audit_reads
  FROM hush.secrets s
  LEFT JOIN hush.secret_versions v
         ON v.tenant_id {EQ} s.tenant_id AND v.secret_id {EQ} s.id AND v.version {EQ} {{version}}
 WHERE s.tenant_id {EQ} $1 AND {{where}} AND s.deleted_at IS NULL
   AND {access.may("$1", "$3", "'read'::pg_catalog.text", "s.name")}
"""
# One statement per shape: "latest" joins on the row's current_version, "given"
# on a parameter, so the version is an index condition either way (a COALESCE of
# both would read every version of the secret).
READS = {
    "name": (f"s.name {EQ} $2", "s.current_version", [T, T, "pg_catalog.name"]),
    "name@": (f"s.name {EQ} $2", "$4", [T, T, "pg_catalog.name", "pg_catalog.int4"]),
    "id": (f"s.id {EQ} $2", "s.current_version", [T, "pg_catalog.uuid", "pg_catalog.name"]),
    "id@": (f"s.id {EQ} $2", "$4", [T, "pg_catalog.uuid", "pg_catalog.name", "pg_catalog.int4"]),
    "names": (f"s.name {EQ} ANY ($2)", "s.current_version", [T, "pg_catalog.text[]", "pg_catalog.name"]),
}


def _read(plpy: Any, caller: str, tenant: str, by: str, key: Any, version: Any) -> list:
    """The rows asked for, if the caller may act on the tenant: one statement (the dispatch
    set hush.tenant: privileged.call(..., tenant=...))."""
    shape = by + ("@" if version is not None else "")
    p = access.cached_plan("read." + shape)  # before any SQL text is built: this is the hot path
    if p is None:
        where, ver, types = READS[shape]
        p = plan(plpy, "read." + shape, READ_SQL.format(where=where, version=ver), types)
    rows = plpy.execute(p, [tenant, key, caller] if version is None else [tenant, key, caller, version])
    if rows:
        access.admit(tenant)  # READ_SQL returns rows only to a caller granted the tenant
    elif by != "names":
        # Why nothing came back: SH020 for a tenant not the caller's or a name it may list but
        # not read; else not found, the same for a name outside its grants as for none at all.
        from . import scope
        scope.resolve(plpy, caller, tenant, by, key, "read")
        raise not_found(by, key, tenant)
    return list(rows)


def _release(plpy: Any, GD: dict, caller: str, tenant: str, rows: list) -> None:
    """Record the reads of the values about to be handed out (unless the tenant switched
    read auditing off), once _check passed and before any value is opened. Where the record
    commits, the caller's grants are asked again and the one allowing each read goes into
    its row (recheck.py): a grant revoked since READ_SQL ran refuses the read there."""
    if rows[0]["audit_reads"]:
        audit.record_reads(plpy, GD, caller, tenant, [(r["id"], r["name"], r["version"]) for r in rows],
                           [r["key_id"] for r in rows])


def _check(tenant: str, row: dict, asked_version: Any) -> None:
    """Why this row's value cannot be handed out, if it cannot (before anything is recorded)."""
    label = "secret %r of tenant %s" % (row["name"], tenant)
    if row["expired"]:
        raise Fail(SECRET_EXPIRED, "%s expired at %s" % (label, row["expires_at"]),
                   hint="Save a new value with a later expires_at, or clear it with update_secret(expires_at => 'infinity').")
    if row["version"] is None:
        raise Fail(VERSION_NOT_FOUND, "%s has no version %s" % (label, asked_version))
    if row["ciphertext"] is None:
        raise Fail(VERSION_DESTROYED, "version %s of %s was destroyed" % (row["version"], label))


def _open(plpy: Any, GD: dict, tenant: str, row: dict) -> dict:
    key = keyring.get(plpy, GD, row["key_id"])
    try:
        plain = crypto.open_(key, row["key_id"], tenant, row["id"], row["version"], row["wrapped_dek"], row["ciphertext"])
    except crypto.CryptoError:
        raise Fail(DECRYPTION_FAILED, "version %s of secret %r of tenant %s does not decrypt: its ciphertext or data "
                   "key does not belong to this row (tampered with or copied)"
                   % (row["version"], row["name"], tenant)) from None
    return {"id": row["id"], "tenant_id": tenant, "name": row["name"], "value": plain.decode("utf-8"),
            "kind": row["kind"], "description": row["description"], "tags": row["tags"],
            "metadata": row["metadata"], "version": row["version"], "created_at": row["created_at"],
            "updated_at": row["updated_at"], "expires_at": row["expires_at"]}


@privileged.step(OWNER)
def _get(plpy: Any, caller: str, GD: dict, tenant: str, by: str, key: Any, version: Any) -> dict:
    rows = _read(plpy, caller, tenant, by, key, version)
    _check(tenant, rows[0], version)
    _release(plpy, GD, caller, tenant, rows)
    return _open(plpy, GD, tenant, rows[0])


@api
def get_secret(plpy: Any, GD: dict, tenant: str, name: str, version: Any) -> dict:
    validate.tenant(tenant)
    validate.name(name)
    validate.version(version)
    return privileged.call(plpy, OWNER, _get, GD, tenant, "name", name, version, tenant=tenant)


@api
def get_secret_by_id(plpy: Any, GD: dict, tenant: str, secret_id: str, version: Any) -> dict:
    validate.tenant(tenant)
    validate.version(version)
    return privileged.call(plpy, OWNER, _get, GD, tenant, "id", secret_id, version, tenant=tenant)


@api
def get_secrets(plpy: Any, GD: dict, tenant: str, names: Any) -> list:
    validate.tenant(tenant)
    if names is None:
        raise Fail(INVALID_ARGUMENT, "names must not be NULL")
    wanted = list(dict.fromkeys(validate.name(n) for n in names))
    return privileged.call(plpy, OWNER, _get_many, GD, tenant, wanted, tenant=tenant)


@privileged.step(OWNER)
def _get_many(plpy: Any, caller: str, GD: dict, tenant: str, wanted: list) -> list:
    rows = _read(plpy, caller, tenant, "names", wanted, None)
    found = {r["name"]: r for r in rows}
    missing = [n for n in wanted if n not in found]
    if missing or not rows:  # SH020 for a tenant not the caller's, or names it may list but not read
        from . import scope
        refused = scope.refused(scope.check(plpy, caller, tenant, "names", missing, "read"), seen_only=True)
        if refused:
            raise scope.refuse_many(caller, tenant, "read", refused, len(wanted))
    if not wanted:
        return []
    if missing:
        raise Fail(SECRET_NOT_FOUND, "%d of %d secrets not found in tenant %s: %s"
                   % (len(missing), len(wanted), tenant, ", ".join(validate.show(n) for n in missing[:10])))
    for n in wanted:
        _check(tenant, found[n], None)
    _release(plpy, GD, caller, tenant, rows)
    # In the order asked for.
    return [_open(plpy, GD, tenant, found[n]) for n in wanted]


# -- writing -------------------------------------------------------------------
FIELDS_SET = f"""
       kind = COALESCE($3, s.kind),
       description = COALESCE($4, s.description),
       tags = COALESCE($5, s.tags),
       metadata = COALESCE($6, s.metadata),
       expires_at = CASE WHEN $7 IS NULL THEN s.expires_at
                         WHEN $7 {EQ} 'infinity'::pg_catalog.timestamptz THEN NULL ELSE $7 END,
       updated_at = pg_catalog.now()"""
FIELD_TYPES = [T, T, "pg_catalog.text[]", "pg_catalog.jsonb", "pg_catalog.timestamptz"]
RETURNING = "RETURNING s.id, s.name, s.current_version AS version, s.created_at, s.updated_at"

# save_secret without check-and-set (create, or add a version to a live secret),
# and with expected_version = 0 (create only): one statement that also checks the
# caller's grant ($8) and brings the tenant's limit and the active key along
# (hush.tenant was set by the dispatching statement: privileged.call(tenant=...)).
# Without `write` on $2 the INSERT sees no row: an upsert would hit the unique index of a
# secret the caller may not see, and tell it that the name exists.
SAVE_SQL = f"""
WITH ctx AS (
  SELECT {access.may_act("$1", "$8")} AS allowed,
         {access.via("$1", "$8", "'write'::pg_catalog.text", "$2")} AS via,
         COALESCE((SELECT t.max_value_bytes FROM hush.tenants t WHERE t.tenant_id {EQ} $1), 65536) AS max_value_bytes,
         COALESCE((SELECT t.audit_rows_per_second FROM hush.tenants t WHERE t.tenant_id {EQ} $1), 0) AS audit_limit,
         (SELECT k.key_id FROM hush.root_keys k WHERE k.state {EQ} 'active') AS active_key_id,
         {access.superuser("$8")} AS superuser,
         {access.SNAPSHOT} AS snapshot),
     s AS (
  INSERT INTO hush.secrets AS s (tenant_id, name, kind, description, tags, metadata, expires_at, created_by)
  SELECT $1, $2, COALESCE($3, 'generic'), $4, COALESCE($5, '{{{{}}}}'::pg_catalog.text[]),
         COALESCE($6, '{{{{}}}}'::pg_catalog.jsonb),
         CASE WHEN $7 {EQ} 'infinity'::pg_catalog.timestamptz THEN NULL ELSE $7 END, $8
    FROM ctx WHERE ctx.allowed AND (ctx.via IS NOT NULL OR ctx.superuser)
  ON CONFLICT (tenant_id, name) {{on_conflict}}
  {RETURNING})
SELECT ctx.allowed, ctx.via, ctx.max_value_bytes, ctx.active_key_id, ctx.superuser, ctx.audit_limit, ctx.snapshot,
       s.id, s.name, s.version, s.created_at, s.updated_at
  FROM ctx LEFT JOIN s ON true
"""
UPSERT_SQL = SAVE_SQL.format(on_conflict=f"""DO UPDATE SET current_version = s.current_version OPERATOR(pg_catalog.+) 1,
      {FIELDS_SET}
   WHERE s.deleted_at IS NULL""")
CREATE_SQL = SAVE_SQL.format(on_conflict="DO NOTHING")

# An existing, live secret: $9 = 1 adds a version, 0 changes metadata only;
# $10 = audit action for a metadata-only change (a new version is audited
# with its version row); $11, $12 = the audit row's role and detail.
UPDATE_SQL = f"""
WITH u AS (
  UPDATE hush.secrets s SET current_version = s.current_version OPERATOR(pg_catalog.+) $9, {FIELDS_SET}
   WHERE s.tenant_id {EQ} $1 AND {{col}} {EQ} $2 AND s.deleted_at IS NULL
     AND ($8 IS NULL OR s.current_version {EQ} $8)
  {RETURNING}),
     a AS (INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
           SELECT $1, $10, u.id, u.name, u.version, $11, $12 FROM u WHERE $10 IS NOT NULL)
SELECT * FROM u
"""

DIAGNOSE_SQL = f"""
SELECT s.name, s.deleted_at IS NOT NULL AS deleted, s.current_version
  FROM hush.secrets s WHERE s.tenant_id {EQ} $1 AND {{col}} {EQ} $2
"""

# $7 = the caller: the version's creator and the audit row's role.
VERSION_INSERT_SQL = """
WITH v AS (INSERT INTO hush.secret_versions (tenant_id, secret_id, version, key_id, wrapped_dek, ciphertext, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING secret_id, version)
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
SELECT $1, $8, v.secret_id, $9, v.version, $7, $10 FROM v
"""

def active_key(plpy: Any, GD: dict, ctx: dict) -> tuple[str, bytes]:
    """The active root key, checked against the keyring before anything is written.
    With no key registered at all, the keyring's first key becomes the active one."""
    kid = ctx["active_key_id"]
    if kid is None:
        from .keys import first_active  # keys imports this module
        kid = first_active(plpy, GD)
    return kid, keyring.get(plpy, GD, kid)


def _fail_write(plpy: Any, tenant: str, by: str, key: Any, expected: Any) -> None:
    col, typ = KEYS[by]
    rows = plpy.execute(plan(plpy, "diagnose." + by, DIAGNOSE_SQL.format(col=col), [T, typ]), [tenant, key])
    if not rows:
        if expected:
            raise Fail(VERSION_CONFLICT, "secret %s %s does not exist in tenant %s; expected version %s"
                       % (by, validate.show(key), tenant, expected))
        raise not_found(by, key, tenant)
    r = rows[0]
    if r["deleted"]:
        raise Fail(SECRET_DELETED, "secret %r of tenant %s is deleted" % (r["name"], tenant),
                   hint="Restore it with hush.restore_secret first.")
    raise Fail(VERSION_CONFLICT, "secret %r of tenant %s is at version %s, not the expected %s"
               % (r["name"], tenant, r["current_version"], expected),
               hint="Read the current version and retry.")


def _write_version(plpy: Any, tenant: str, ctx: dict, key: tuple[str, bytes], row: dict, raw: bytes,
                   action: str) -> None:
    kid, root = key
    wrapped, ciphertext = crypto.seal(root, kid, tenant, row["id"], row["version"], raw)
    p = plan(plpy, "version.insert", VERSION_INSERT_SQL,
             [T, "pg_catalog.uuid", "pg_catalog.int4", T, "pg_catalog.bytea", "pg_catalog.bytea", "pg_catalog.name",
              T, T, "pg_catalog.jsonb"])
    plpy.execute(p, [tenant, row["id"], row["version"], kid, wrapped, ciphertext, ctx["caller"], action, row["name"],
                     access.actor(ctx)])


def _saved(tenant: str, row: dict) -> dict:
    return {"id": row["id"], "tenant_id": tenant, "name": row["name"], "version": row["version"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _fields(kind: Any, description: Any, tags: Any, metadata: Any, expires_at: Any) -> list:
    return [validate.kind(kind), validate.description(description), validate.tags(tags),
            validate.metadata(metadata), expires_at]


@api
def save_secret(plpy: Any, GD: dict, tenant: str, name: str, value: Any, description: Any, tags: Any,
                metadata: Any, kind: Any, expected_version: Any, expires_at: Any) -> dict:
    validate.tenant(tenant)
    validate.name(name)
    fields = _fields(kind, description, tags, metadata, expires_at)
    validate.expected_version(expected_version)
    return privileged.call(plpy, OWNER, _save, GD, tenant, name, value, fields, expected_version, tenant=tenant)


@privileged.step(OWNER)
def _save(plpy: Any, caller: str, GD: dict, tenant: str, name: str, value: str, fields: list,
          expected_version: Any) -> dict:
    if expected_version:
        ctx = access.enter(plpy, caller, tenant, write=True, cap="write", name=name)
        raw = validate.value(value, ctx["max_value_bytes"])
        key = active_key(plpy, GD, ctx)
        rows = plpy.execute(_update_plan(plpy, "name"), [tenant, name, *fields, expected_version, 1, None, None, None])
        row = rows[0] if rows else None
    else:
        # An error after this statement (a value over the limit, no key) rolls it back with the step.
        p = plan(plpy, "save.upsert" if expected_version is None else "save.create",
                 UPSERT_SQL if expected_version is None else CREATE_SQL, [T, T, *FIELD_TYPES, "pg_catalog.name"])
        ctx = dict(plpy.execute(p, [tenant, name, *fields, caller])[0], caller=caller)
        if not ctx["allowed"]:
            access.deny(caller, tenant)
        if ctx["via"] is None and not ctx["superuser"]:
            raise access.refuse(caller, tenant, "write", name)
        access.admit(tenant)
        access.still_granted(plpy, ctx)  # after the upsert, which a 40001 here rolls back with the step
        if ctx["audit_limit"]:  # refused with the step: the upsert above is taken back with it
            audit.check_rate(plpy, tenant, ctx["audit_limit"])
        raw = validate.value(value, ctx["max_value_bytes"])
        key = active_key(plpy, GD, ctx)
        row = ctx if ctx["id"] is not None else None
    if row is None:
        _fail_write(plpy, tenant, "name", name, expected_version)
    _write_version(plpy, tenant, ctx, key, row, raw, "create" if row["version"] == 1 else "new_version")
    return _saved(tenant, row)


def _update_plan(plpy: Any, by: str) -> Any:
    col, typ = KEYS[by]
    return plan(plpy, "update." + by, UPDATE_SQL.format(col=col),
                [T, typ, *FIELD_TYPES, "pg_catalog.int4", "pg_catalog.int4", T, "pg_catalog.name", "pg_catalog.jsonb"])


def _update(plpy: Any, GD: dict, tenant: str, by: str, key: Any, value: Any, description: Any, tags: Any,
            metadata: Any, expected_version: Any, kind: Any, expires_at: Any) -> dict:
    fields = _fields(kind, description, tags, metadata, expires_at)
    validate.expected_version(expected_version)
    return privileged.call(plpy, OWNER, _update_step, GD, tenant, by, key, value, fields, expected_version)


@privileged.step(OWNER)
def _update_step(plpy: Any, caller: str, GD: dict, tenant: str, by: str, key: Any, value: Any, fields: list,
                 expected_version: Any) -> dict:
    from . import scope
    ctx = scope.enter(plpy, caller, tenant, by, key, "write", write=True)
    if value is None:
        rows = plpy.execute(_update_plan(plpy, by), [tenant, key, *fields, expected_version, 0, "update_metadata",
                                                     caller, access.actor(ctx)])
        if not rows:
            _fail_write(plpy, tenant, by, key, expected_version)
        return _saved(tenant, rows[0])
    raw = validate.value(value, ctx["max_value_bytes"])
    root = active_key(plpy, GD, ctx)
    rows = plpy.execute(_update_plan(plpy, by), [tenant, key, *fields, expected_version, 1, None, None, None])
    if not rows:
        _fail_write(plpy, tenant, by, key, expected_version)
    _write_version(plpy, tenant, ctx, root, rows[0], raw, "new_version")
    return _saved(tenant, rows[0])


@api
def update_secret(plpy: Any, GD: dict, tenant: str, name: str, value: Any, description: Any, tags: Any,
                  metadata: Any, expected_version: Any, kind: Any, expires_at: Any) -> dict:
    validate.tenant(tenant)
    return _update(plpy, GD, tenant, "name", validate.name(name), value, description, tags, metadata,
                   expected_version, kind, expires_at)


@api
def update_secret_by_id(plpy: Any, GD: dict, tenant: str, secret_id: str, value: Any, description: Any, tags: Any,
                        metadata: Any, expected_version: Any, kind: Any, expires_at: Any) -> dict:
    validate.tenant(tenant)
    return _update(plpy, GD, tenant, "id", secret_id, value, description, tags, metadata,
                   expected_version, kind, expires_at)


# -- delete, restore, destroy --------------------------------------------------

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
    plpy.execute(plan(plpy, "restore", sql, [T, T, *WHO_TYPES]), [tenant, name, caller, access.actor(ctx)])
    rows = _list(plpy, tenant, 1, 1, None, None, True, name)
    if not rows or rows[0]["deleted_at"] is not None:
        raise not_found("name", name, tenant)
    return rows[0]


DESTROY_FIND_SQL = f"""
SELECT s.id, (SELECT pg_catalog.array_agg(v.version) FROM hush.secret_versions v
               WHERE v.tenant_id {EQ} s.tenant_id AND v.secret_id {EQ} s.id) AS versions
  FROM hush.secrets s WHERE s.tenant_id {EQ} $1 AND s.name {EQ} $2
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
    rows = plpy.execute(plan(plpy, "destroy.find", DESTROY_FIND_SQL, [T, T]), [tenant, name])
    if not rows:
        raise not_found("name", name, tenant)
    missing = sorted(set(versions or []) - set(rows[0]["versions"] or []))
    if missing:
        # The first ten: the list is the caller's, up to 10,000 long.
        raise Fail(VERSION_NOT_FOUND, "secret %r of tenant %s has no version %s%s"
                   % (name, tenant, ", ".join(map(str, missing[:10])),
                      " (and %d more)" % (len(missing) - 10) if len(missing) > 10 else ""))
    p = plan(plpy, "destroy", DESTROY_SQL, [T, "pg_catalog.uuid", "pg_catalog.int4[]", T, *WHO_TYPES])
    return plpy.execute(p, [tenant, rows[0]["id"], versions, name, caller, access.actor(ctx)])[0]["n"]


# -- metadata: list, search, exists, versions -------------------------------------

# Totals are counted up to COUNT_CAP matches (a scan that stops there), so
# neither the count nor a keyset page costs O(n) in a large tenant.
COUNT_CAP = 1000
META_COLS = """s.id, s.tenant_id, s.name, s.kind, s.description, s.tags, s.metadata, s.current_version AS version,
       s.expires_at, s.created_at, s.updated_at, s.deleted_at"""
SEARCH_MATCH = """(pg_catalog.strpos(pg_catalog.lower({a}.name), $2) OPERATOR(pg_catalog.>) 0
        OR pg_catalog.strpos(pg_catalog.lower(COALESCE({a}.description, '')), $2) OPERATOR(pg_catalog.>) 0
        OR EXISTS (SELECT 1 FROM pg_catalog.unnest({a}.tags) AS t(tag)
                    WHERE pg_catalog.strpos(pg_catalog.lower(t.tag), $2) OPERATOR(pg_catalog.>) 0))"""
# The count is an uncorrelated scalar subquery: an InitPlan, run once per call
# (as a FROM item it could be rescanned for every row).
PAGE_SQL = f"""
SELECT p.*, LEAST(p.n, {COUNT_CAP}) AS total, p.n OPERATOR(pg_catalog.<=) {COUNT_CAP} AS total_exact
  FROM (SELECT {META_COLS},
               (SELECT pg_catalog.count(*)
                  FROM (SELECT 1 FROM hush.secrets c WHERE {{count_filter}} LIMIT {COUNT_CAP + 1}) AS capped) AS n
          FROM hush.secrets s
         WHERE {{filter}}{{after}}
         ORDER BY s.name
         LIMIT $5 OFFSET $6) AS p
"""
# Parameters, the same for every variant: $1 tenant, $2 prefix (list) or
# lower-cased query (search), $3 tags, $4 include_deleted, $5 limit, $6 offset,
# $7 exact name, $8 after, $9 the prefixes the caller may list under.
# The offset is int8: page x per_page may pass an int4's range (it reads an empty page).
PAGE_TYPES = [T, T, "pg_catalog.text[]", "pg_catalog.bool", "pg_catalog.int4", "pg_catalog.int8", T, T,
              "pg_catalog.text[]"]
# The caller's prefixes filter the page and its count alike; the scan starts at the first.
SCOPED = """{a}.name OPERATOR(pg_catalog.>=) (SELECT pg_catalog.min(p.p) FROM pg_catalog.unnest($9) AS p(p))
   AND {a}.name OPERATOR(pg_catalog.^@) ANY ($9)"""


def _page_plan(plpy: Any, search: bool, prefix: bool, tags: bool, deleted: bool, exact: bool, after: bool,
               scoped: bool = False) -> Any:
    """One prepared plan per combination of filters, each with only the conditions
    it needs: `name > $8` and `tenant_id = $1` then drive an index scan on
    (tenant_id, name) that stops after one page, which an `$8 IS NULL OR ...`
    form would not. `scoped`: the caller may list under some prefixes only (a
    whole-tenant grant, '', needs no filter)."""
    key = "page.%d%d%d%d%d%d%d" % (search, prefix, tags, deleted, exact, after, scoped)
    p = access.cached_plan(key)
    if p is None:
        conds = [f"{{a}}.tenant_id {EQ} $1"]
        if not deleted:
            conds.append("{a}.deleted_at IS NULL")
        if search:
            conds.append(SEARCH_MATCH)
        if prefix:
            conds.append("{a}.name OPERATOR(pg_catalog.>=) $2 AND pg_catalog.starts_with({a}.name, $2)")
        if tags:
            conds.append("{a}.tags OPERATOR(pg_catalog.@>) $3")
        if exact:
            conds.append(f"{{a}}.name {EQ} $7")
        if scoped:
            conds.append(SCOPED)
        where = "\n   AND ".join(conds)
        sql = PAGE_SQL.format(count_filter=where.format(a="c"), filter=where.format(a="s"),
                              after=" AND s.name OPERATOR(pg_catalog.>) $8" if after else "")
        p = plan(plpy, key, sql, PAGE_TYPES)
    return p


def _list(plpy: Any, tenant: str, page: int, per_page: int, prefix: Any, tags: Any, include_deleted: bool,
          exact: Any = None, after: Any = None, scope: Any = None) -> list:
    p = _page_plan(plpy, False, prefix is not None, tags is not None, bool(include_deleted), exact is not None,
                   after is not None, scope is not None)
    return list(plpy.execute(p, [tenant, prefix, tags, bool(include_deleted), per_page, (page - 1) * per_page,
                                 exact, after, scope]))


@api
def list_secrets(plpy: Any, tenant: str, page: Any, per_page: Any, name_prefix: Any, tags: Any,
                 include_deleted: Any, after: Any) -> list:
    """Sorted by name; tags match when the secret has all of them; `after` = keyset pagination."""
    validate.tenant(tenant)
    page, per_page = validate.page(page, per_page)
    if tags is not None:
        validate.tags(tags)
    return privileged.call(plpy, OWNER, _list_step, tenant, page, per_page, name_prefix, tags, include_deleted, after)


@privileged.step(OWNER)
def _list_step(plpy: Any, caller: str, tenant: str, page: int, per_page: int, prefix: Any, tags: Any,
               include_deleted: Any, after: Any) -> list:
    ctx = access.enter(plpy, caller, tenant, cap="list")
    if not ctx["prefixes"]:
        return []
    from . import scope
    return _list(plpy, tenant, page, per_page, prefix, tags, include_deleted, after=after, scope=scope.listed(ctx["prefixes"]))


@api
def search_secrets(plpy: Any, tenant: str, query: Any, page: Any, per_page: Any, after: Any) -> list:
    """Case-insensitive substring match on name, description and tags; live secrets only."""
    validate.tenant(tenant)
    page, per_page = validate.page(page, per_page)
    if not query:
        raise Fail(INVALID_ARGUMENT, "query must not be empty")
    return privileged.call(plpy, OWNER, _search, tenant, query.lower(), page, per_page, after)


@privileged.step(OWNER)
def _search(plpy: Any, caller: str, tenant: str, query: str, page: int, per_page: int, after: Any) -> list:
    ctx = access.enter(plpy, caller, tenant, cap="list")
    if not ctx["prefixes"]:
        return []
    from .scope import listed
    scoped = listed(ctx["prefixes"])
    p = _page_plan(plpy, True, False, False, False, False, after is not None, scoped is not None)
    return list(plpy.execute(p, [tenant, query, None, False, per_page, (page - 1) * per_page, None, after,
                                 scoped]))


# $3: the prefixes the caller may list under; a secret outside them does not exist for it.
EXISTS_SQL = f"""
SELECT EXISTS (SELECT 1 FROM hush.secrets s
                WHERE s.tenant_id {EQ} $1 AND {{col}} {EQ} $2 AND s.deleted_at IS NULL
                  AND s.name OPERATOR(pg_catalog.^@) ANY ($3)) AS e
"""


@api
def secret_exists(plpy: Any, tenant: str, name: str) -> bool:
    validate.tenant(tenant)
    validate.name(name)
    return privileged.call(plpy, OWNER, _exists, tenant, "name", name)


@api
def secret_exists_by_id(plpy: Any, tenant: str, secret_id: Any) -> bool:
    validate.tenant(tenant)
    if secret_id is None:
        raise Fail(INVALID_ARGUMENT, "id must not be NULL")
    return privileged.call(plpy, OWNER, _exists, tenant, "id", secret_id)


@privileged.step(OWNER)
def _exists(plpy: Any, caller: str, tenant: str, by: str, key: Any) -> bool:
    ctx = access.enter(plpy, caller, tenant, cap="list")
    col, typ = KEYS[by]
    p = plan(plpy, "exists." + by, EXISTS_SQL.format(col=col), [T, typ, "pg_catalog.text[]"])
    return bool(plpy.execute(p, [tenant, key, ctx["prefixes"]])[0]["e"])


VERSIONS_SQL = f"""
SELECT v.version, v.created_at, v.created_by, v.key_id, v.destroyed_at IS NOT NULL AS destroyed, v.destroyed_at,
       v.version {EQ} s.current_version AS is_current
  FROM hush.secrets s
  JOIN hush.secret_versions v ON v.tenant_id {EQ} s.tenant_id AND v.secret_id {EQ} s.id
 WHERE s.tenant_id {EQ} $1 AND s.name {EQ} $2
 ORDER BY v.version
"""


@api
def secret_versions(plpy: Any, tenant: str, name: str) -> list:
    """Every version, including those of a soft-deleted secret; metadata only."""
    validate.tenant(tenant)
    validate.name(name)
    return privileged.call(plpy, OWNER, _versions, tenant, name)


@privileged.step(OWNER)
def _versions(plpy: Any, caller: str, tenant: str, name: str) -> list:
    access.enter(plpy, caller, tenant, cap="list", name=name, missing=not_found("name", name, tenant))
    rows = plpy.execute(plan(plpy, "versions", VERSIONS_SQL, [T, T]), [tenant, name])
    if not rows:
        raise not_found("name", name, tenant)
    return list(rows)
