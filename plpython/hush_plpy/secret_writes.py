"""The secret API, writing: save_secret, update_secret, update_secret_by_id. A write checks
the caller's grant (access.enter, or the save statement itself), then one statement writes
the secret's row and another its new version with the audit rows; retention (retention.py)
and the change notification (changes.py) follow in the same step (settle). Values are
sealed here, in the server (crypto.py), under the active root key.
"""
from __future__ import annotations

from . import access, audit, changes, crypto, keyring, privileged, retention, validate
from .access import plan
from .errors import INVALID_ARGUMENT, SECRET_DELETED, SECRET_NOT_FOUND, VERSION_CONFLICT, Fail, api
from .secrets import EQ, KEYS, OWNER, T, not_found

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any, NoReturn

FIELDS_SET = f"""
       kind = COALESCE($3, s.kind),
       description = COALESCE($4, s.description),
       tags = COALESCE($5, s.tags),
       metadata = COALESCE($6, s.metadata),
       expires_at = CASE WHEN $7 IS NULL THEN s.expires_at
                         WHEN $7 {EQ} 'infinity'::pg_catalog.timestamptz THEN NULL ELSE $7 END,
       updated_at = pg_catalog.now()"""
FIELD_TYPES = [T, T, "pg_catalog.text[]", "pg_catalog.jsonb", "pg_catalog.timestamptz"]
# The secret's own retention and rotation schedule ($9 max_versions, $10 destroy_versions_after,
# $11 rotate_every; _settings): NULL keeps what is set, 0 clears it (retention then follows the
# tenant's; no rotation schedule).
SETTINGS_SET = """
       max_versions = CASE WHEN $9 IS NULL THEN s.max_versions ELSE NULLIF($9, 0) END,
       destroy_versions_after = CASE WHEN $10 IS NULL THEN s.destroy_versions_after
                                     ELSE NULLIF($10, '0'::pg_catalog.interval) END,
       rotate_every = CASE WHEN $11 IS NULL THEN s.rotate_every ELSE NULLIF($11, '0'::pg_catalog.interval) END"""
SETTING_TYPES = ["pg_catalog.int4", "pg_catalog.interval", "pg_catalog.interval"]
# A new version's number: past a pending one too (which stays, as an unstaged version,
# when a direct save supersedes it).
NEXT_VERSION = "GREATEST(s.current_version, s.pending_version) OPERATOR(pg_catalog.+) 1"
# What a new version changes on the secret's row (an UPDATE's SET: the right-hand sides see the
# row as it was). "current": the old current version becomes the previous one and a staged
# rotation is superseded; "pending": the current, previous and rotated_at stay as they are.
NEW_VERSION_SET = {
    "current": f"""current_version = {NEXT_VERSION}, previous_version = s.current_version, pending_version = NULL,
       rotated_at = pg_catalog.now(),""",
    "pending": f"pending_version = {NEXT_VERSION},",
    "metadata": "",
}
# The secret as a write returns it: the version written (the current one when none was), its
# staged versions and its own retention settings (what retention needs: _retain_args).
RETURNING = """RETURNING s.id, s.name, s.{version} AS version, s.created_at, s.updated_at, s.max_versions,
            s.destroy_versions_after, s.current_version, s.pending_version, s.previous_version"""

# save_secret without check-and-set (create, or add a version to a live secret),
# and with expected_version = 0 (create only): one statement that also checks the
# caller's grant ($8) and brings the tenant's settings and the active key along
# (hush.tenant was set by the dispatching statement: privileged.call(tenant=...)).
# Without `write` on $2 the INSERT sees no row: an upsert would hit the unique index of a
# secret the caller may not see, and tell it that the name exists. Nor without `destroy` when
# the save sets the secret's own retention ($9, $10: _may_set_retention's rule); the CASE
# looks that grant up only then, so a plain save pays nothing for it.
SAVE_SQL = f"""
WITH ctx AS (
  SELECT {access.may_act("$1", "$8")} AS allowed,
         {access.via("$1", "$8", "'write'::pg_catalog.text", "$2")} AS via,
         CASE WHEN $9 IS NOT NULL OR $10 IS NOT NULL
              THEN {access.via("$1", "$8", "'destroy'::pg_catalog.text", "$2")} END AS retention_via,
         COALESCE(t.max_value_bytes, 65536) AS max_value_bytes,
         COALESCE(t.audit_rows_per_second, 0) AS audit_limit,
         COALESCE(t.max_versions, 0) AS tenant_max_versions,
         NULLIF(t.destroy_versions_after, '0'::pg_catalog.interval) AS tenant_destroy_versions_after,
         t.change_channel,
         (SELECT k.key_id FROM hush.root_keys k WHERE k.state {EQ} 'active') AS active_key_id,
         {access.superuser("$8")} AS superuser,
         {access.SNAPSHOT} AS snapshot
    FROM (SELECT 1) AS one LEFT JOIN hush.tenants t ON t.tenant_id {EQ} $1),
     s AS (
  INSERT INTO hush.secrets AS s (tenant_id, name, kind, description, tags, metadata, expires_at, created_by,
                                 max_versions, destroy_versions_after, rotate_every)
  SELECT $1, $2, COALESCE($3, 'generic'), $4, COALESCE($5, '{{{{}}}}'::pg_catalog.text[]),
         COALESCE($6, '{{{{}}}}'::pg_catalog.jsonb),
         CASE WHEN $7 {EQ} 'infinity'::pg_catalog.timestamptz THEN NULL ELSE $7 END, $8,
         NULLIF($9, 0), NULLIF($10, '0'::pg_catalog.interval), NULLIF($11, '0'::pg_catalog.interval)
    FROM ctx WHERE ctx.allowed AND (ctx.via IS NOT NULL OR ctx.superuser)
     AND (($9 IS NULL AND $10 IS NULL) OR ctx.retention_via IS NOT NULL OR ctx.superuser)
  ON CONFLICT (tenant_id, name) {{on_conflict}}
  {RETURNING.format(version="current_version")})
SELECT ctx.allowed, ctx.via, ctx.retention_via, ctx.max_value_bytes, ctx.active_key_id, ctx.superuser, ctx.audit_limit, ctx.snapshot,
       ctx.tenant_max_versions, ctx.tenant_destroy_versions_after, ctx.change_channel,
       s.id, s.name, s.version, s.created_at, s.updated_at, s.max_versions, s.destroy_versions_after,
       s.current_version, s.pending_version, s.previous_version
  FROM ctx LEFT JOIN s ON true
"""
SAVE_TYPES = [T, T, *FIELD_TYPES, "pg_catalog.name", *SETTING_TYPES]
UPSERT_SQL = SAVE_SQL.format(on_conflict=f"""DO UPDATE SET {NEW_VERSION_SET["current"]}
      {FIELDS_SET}, {SETTINGS_SET}
   WHERE s.deleted_at IS NULL""")
CREATE_SQL = SAVE_SQL.format(on_conflict="DO NOTHING")

# An existing, live secret, {set} one of NEW_VERSION_SET: $8 the expected current version
# (NULL: any); $12 = audit action for a metadata-only change (a new version is audited
# with its version row); $13, $14 = the audit row's role and detail.
UPDATE_SQL = f"""
WITH u AS (
  UPDATE hush.secrets s SET {{set}} {FIELDS_SET}, {SETTINGS_SET}
   WHERE s.tenant_id {EQ} $1 AND {{col}} {EQ} $2 AND s.deleted_at IS NULL
     AND ($8 IS NULL OR s.current_version {EQ} $8)
  {{returning}}),
     a AS (INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
           SELECT $1, $12, u.id, u.name, u.version, $13, $14 FROM u WHERE $12 IS NOT NULL)
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
# The same with the save's retention folded in (measured: as a statement of its own, retention
# made such a save a fifth slower; folded in, under a tenth): retention.RETAIN_SQL's rule for
# the one secret just written, whose staged versions and settings the write returned
# (_retain_args), so no other row is read. $11 the highest version it may destroy (an index
# bound: under max_versions alone a save reads only what it destroys), $12 the staged
# versions, $13 the max_versions cutoff (destroy up to it; NULL: none), $14
# destroy_versions_after (NULL: none), $15 max_versions, $16 the destroy rows' detail besides
# the rule. It waits for a version another transaction holds (only the maintenance job and a
# rewrap batch lock versions without the secret's row; both commit soon): a SKIP LOCKED
# subquery here measured a save with retention at half the speed. The UPDATE does not see the
# version the INSERT adds (one snapshot), which it would keep anyway.
VERSION_RETAIN_SQL = f"""
WITH v AS (INSERT INTO hush.secret_versions (tenant_id, secret_id, version, key_id, wrapped_dek, ciphertext, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING secret_id, version),
     r AS (UPDATE hush.secret_versions d
              SET ciphertext = NULL, wrapped_dek = NULL, key_id = NULL, destroyed_at = pg_catalog.now()
            WHERE d.tenant_id {EQ} $1 AND d.secret_id {EQ} $2 AND d.destroyed_at IS NULL
              AND d.version OPERATOR(pg_catalog.<=) $11 AND d.version OPERATOR(pg_catalog.<>) ALL ($12)
              AND (d.version OPERATOR(pg_catalog.<=) $13
                   OR d.created_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $14))
           RETURNING d.version,
                     CASE WHEN d.version OPERATOR(pg_catalog.<=) $13
                          THEN pg_catalog.jsonb_build_object('max_versions', $15)
                          ELSE pg_catalog.jsonb_build_object('destroy_versions_after', $14::pg_catalog.text)
                     END AS rule)
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
SELECT $1, $8, v.secret_id, $9, v.version, $7, $10 FROM v
UNION ALL
SELECT $1, 'destroy', $2, $9, r.version, $7,
       COALESCE($16, '{{}}'::pg_catalog.jsonb) OPERATOR(pg_catalog.||)
       pg_catalog.jsonb_build_object('retention', r.rule)
  FROM r
"""
VERSION_TYPES = [T, "pg_catalog.uuid", "pg_catalog.int4", T, "pg_catalog.bytea", "pg_catalog.bytea", "pg_catalog.name",
                 T, T, "pg_catalog.jsonb"]

def active_key(plpy: Any, ctx: dict) -> tuple[str, bytes]:
    """The active root key, checked against the keyring before anything is written.
    With no key registered at all, the keyring's first key becomes the active one."""
    kid = ctx["active_key_id"]
    if kid is None:
        from .keys import first_active  # keys imports this module
        kid = first_active(plpy)
    return kid, keyring.get(plpy, kid)


def _fail_write(plpy: Any, tenant: str, by: str, key: Any, expected: Any, pending: bool = False) -> NoReturn:
    col, typ = KEYS[by]
    rows = plpy.execute(plan(plpy, "diagnose." + by, DIAGNOSE_SQL.format(col=col), [T, typ]), [tenant, key])
    if not rows:
        if expected:
            raise Fail(VERSION_CONFLICT, "secret %s %s does not exist in tenant %s; expected version %s"
                       % (by, validate.show(key), tenant, expected))
        if pending:
            raise Fail(SECRET_NOT_FOUND, "secret %s %s not found in tenant %s" % (by, validate.show(key), tenant),
                       hint="A pending version stages the next value of an existing secret: save a first value "
                            "without stage.")
        raise not_found(by, key, tenant)
    r = rows[0]
    if r["deleted"]:
        raise Fail(SECRET_DELETED, "secret %r of tenant %s is deleted" % (r["name"], tenant),
                   hint="Restore it with hush.restore_secret first.")
    raise Fail(VERSION_CONFLICT, "secret %r of tenant %s is at version %s, not the expected %s"
               % (r["name"], tenant, r["current_version"], expected),
               hint="Read the current version and retry.")


def write_detail(ctx: dict, extra: Any = None, detail: Any = None) -> Any:
    """The audit detail (JSON text) of a write: access.actor's (`detail`, when computed already),
    with `extra` (a dict) added."""
    if detail is None:
        detail = access.actor(ctx)
    if not extra:
        return detail
    import json  # write paths only
    return json.dumps({**(json.loads(detail) if detail else {}), **extra}, sort_keys=True)


SETTING_NAMES = ("max_versions", "destroy_versions_after", "rotate_every")


def _settings_detail(settings: list) -> Any:
    """The settings a write gave, for its audit row's detail (intervals as the function's
    pinned IntervalStyle writes them): what later erases versions is on the record."""
    return {k: v for k, v in zip(SETTING_NAMES, settings) if v is not None} or None


def _retain_args(ctx: dict, row: dict, actor: Any) -> Any:
    """VERSION_RETAIN_SQL's $11..$16 for the version row["version"] just numbered (the secret's
    newest), or None when retention has nothing to destroy now. `row` as RETURNING gives it;
    `actor`: access.actor(ctx)."""
    keep = row["max_versions"] or ctx.get("tenant_max_versions") or None
    ttl = row["destroy_versions_after"] or ctx.get("tenant_destroy_versions_after") or None
    top = row["version"]
    cutoff = top - keep if keep else None
    bound = top - 1 if ttl else cutoff
    if bound is None or bound < 1:
        return None
    staged = [v for v in (row["current_version"], row["pending_version"], row["previous_version"]) if v is not None]
    return [bound, staged, cutoff, ttl, keep, actor]


def _write_version(plpy: Any, tenant: str, ctx: dict, key: tuple[str, bytes], row: dict, raw: bytes,
                   action: str, extra: Any = None) -> None:
    """Seal `raw` as version row["version"] of the secret row["id"] and insert it with its audit
    row (`action`; detail: the grant, and `extra`), and, in the same statement, destroy what
    retention no longer keeps (`row`: the secret's staged versions and settings, as RETURNING
    gives them), so that settle need not."""
    kid, root = key
    wrapped, ciphertext = crypto.seal(root, kid, tenant, row["id"], row["version"], raw)
    actor = access.actor(ctx)
    args = [tenant, row["id"], row["version"], kid, wrapped, ciphertext, ctx["caller"], action, row["name"],
            write_detail(ctx, extra, actor)]
    retain = _retain_args(ctx, row, actor)
    if retain is None:
        plpy.execute(plan(plpy, "version.insert", VERSION_INSERT_SQL, VERSION_TYPES), args)
        return
    p = plan(plpy, "version.insert.retain", VERSION_RETAIN_SQL,
             [*VERSION_TYPES, "pg_catalog.int4", "pg_catalog.int4[]", "pg_catalog.int4", "pg_catalog.interval",
              "pg_catalog.int4", "pg_catalog.jsonb"])
    plpy.execute(p, args + retain)


def settle(plpy: Any, tenant: str, ctx: dict, row: dict, retained: bool = False) -> None:
    """What follows every write of a secret, in its step: retention destroys what the secret
    no longer keeps (unless `retained`: _write_version saw to it; when any applies: `row`
    carries its own settings, `ctx` the tenant's, as access.enter(write=True) gives them),
    then the tenant's change channel is notified."""
    if not retained and retention.applies(ctx, row):
        retention.apply(plpy, tenant, [row["id"]], ctx["caller"], access.actor(ctx))
    changes.notify(plpy, ctx["change_channel"])


def saved(tenant: str, row: dict) -> dict:
    return {"id": row["id"], "tenant_id": tenant, "name": row["name"], "version": row["version"],
            "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _fields(plpy: Any, kind: Any, description: Any, tags: Any, metadata: Any, expires_at: Any) -> list:
    return [validate.kind(kind), validate.description(description), validate.tags(tags),
            validate.metadata(metadata), validate.expires_at(plpy, expires_at)]


# What a pending version must not carry: the write's SET applies them to the secret's row, so
# they would change the live, current value's metadata and settings before any promotion.
SECRET_ARGS = ("kind", "description", "tags", "metadata", "expires_at", "max_versions", "destroy_versions_after",
               "rotate_every")


def _value_only(pending: bool, *args: Any) -> None:
    """SH004 for a pending write that also gives any of SECRET_ARGS (`args`, in that order)."""
    if pending and any(a is not None for a in args):
        given = ", ".join(n for n, a in zip(SECRET_ARGS, args) if a is not None)
        raise Fail(INVALID_ARGUMENT, "a pending version carries a value only: change %s with update_secret "
                   "once it is promoted" % given,
                   hint="Settings given with stage => 'pending' would apply to the current value at once.")


def _may_set_retention(plpy: Any, caller: str, tenant: str, by: str, key: Any) -> Any:
    """The grant letting the caller set the secret's own max_versions or destroy_versions_after:
    `destroy` on its name as well as `write`, since max_versions => 1 destroys every unstaged
    version, other roles' values too (retention the tenant or a destroyer set needs no
    `destroy` from the writers it applies to). SH020 without it, before anything is written.
    One statement, on the writes that set retention only (save_secret's upsert makes the same
    check in its own statement: SAVE_SQL). Returns the grant (a `via`)."""
    from . import scope
    r = scope.check(plpy, caller, tenant, by, key, "destroy")[0]
    if r["name"] is None:  # by id: gone since the write's own check
        raise not_found(by, key, tenant)
    if r["via"] is None and not r["superuser"]:
        raise access.refuse(caller, tenant, "destroy", r["name"])
    return r["via"]


def _sets_retention(settings: list) -> bool:
    """Whether a write's settings (_settings) set the secret's own retention."""
    return settings[0] is not None or settings[1] is not None


def _settings(plpy: Any, max_versions: Any, destroy_versions_after: Any, rotate_every: Any) -> list:
    """The secret's own settings as the write statements take them ($9..$11)."""
    if max_versions is not None or destroy_versions_after is not None or rotate_every is not None:
        validate.max_versions(max_versions)
        validate.interval(plpy, destroy_versions_after, "destroy_versions_after", validate.MAX_RETENTION)
        validate.interval(plpy, rotate_every, "rotate_every", validate.MAX_RETENTION)
    return [max_versions, destroy_versions_after, rotate_every]


def _write_stage(stage: Any) -> bool:
    """Whether a write stages its value as pending (stage 'pending') or makes it current
    (NULL, 'current')."""
    if stage is None or stage == "current":
        return False
    if stage == "pending":
        return True
    raise Fail(INVALID_ARGUMENT, "stage must be 'current' or 'pending' (or NULL: current), not %s"
               % validate.show(stage),
               hint="promote_secret makes a pending version current.")


def _arguments(plpy: Any, stage: Any, kind: Any, description: Any, tags: Any, metadata: Any, expires_at: Any,
               expected_version: Any, max_versions: Any, destroy_versions_after: Any, rotate_every: Any) -> tuple:
    """A save's or an update's arguments, checked before the step: (pending, fields, settings)."""
    pending = _write_stage(stage)
    _value_only(pending, kind, description, tags, metadata, expires_at, max_versions, destroy_versions_after,
                rotate_every)
    fields = _fields(plpy, kind, description, tags, metadata, expires_at)
    validate.expected_version(expected_version)
    return pending, fields, _settings(plpy, max_versions, destroy_versions_after, rotate_every)


@api
def save_secret(plpy: Any, tenant: str, name: str, value: Any, description: Any, tags: Any,
                metadata: Any, kind: Any, expected_version: Any, expires_at: Any, max_versions: Any,
                destroy_versions_after: Any, rotate_every: Any, stage: Any) -> dict:
    validate.tenant(tenant)
    validate.name(name)
    pending, fields, settings = _arguments(plpy, stage, kind, description, tags, metadata, expires_at,
                                           expected_version, max_versions, destroy_versions_after, rotate_every)
    return privileged.call(plpy, OWNER, _save, tenant, name, value, fields, settings, expected_version, pending,
                           tenant=tenant)


@privileged.step(OWNER)
def _save(plpy: Any, caller: str, tenant: str, name: str, value: str, fields: list, settings: list,
          expected_version: Any, pending: bool) -> dict:
    if expected_version or pending:
        ctx = access.enter(plpy, caller, tenant, write=True, cap="write", name=name)
        if _sets_retention(settings):
            access.still_granted(plpy, ctx, [_may_set_retention(plpy, caller, tenant, "name", name)])
        raw = validate.value(value, ctx["max_value_bytes"])
        key = active_key(plpy, ctx)
        rows = plpy.execute(_update_plan(plpy, "name", "pending" if pending else "current"),
                            [tenant, name, *fields, expected_version, *settings, None, None, None])
        row = rows[0] if rows else None
    else:
        # An error after this statement (a value over the limit, no key) rolls it back with the step.
        p = plan(plpy, "save.upsert" if expected_version is None else "save.create",
                 UPSERT_SQL if expected_version is None else CREATE_SQL, SAVE_TYPES)
        ctx = dict(plpy.execute(p, [tenant, name, *fields, caller, *settings])[0], caller=caller)
        if not ctx["allowed"]:
            access.deny(caller, tenant)
        if ctx["via"] is None and not ctx["superuser"]:
            raise access.refuse(caller, tenant, "write", name)
        if ctx["retention_via"] is None and _sets_retention(settings) and not ctx["superuser"]:
            raise access.refuse(caller, tenant, "destroy", name)  # the upsert wrote nothing
        access.admit(tenant)
        # After the upsert, which a 40001 here rolls back with the step.
        access.still_granted(plpy, ctx, [ctx["via"], ctx["retention_via"]] if ctx["retention_via"] else None)
        if ctx["audit_limit"]:  # refused with the step: the upsert above is taken back with it
            audit.check_rate(plpy, tenant, ctx["audit_limit"])
        raw = validate.value(value, ctx["max_value_bytes"])
        key = active_key(plpy, ctx)
        row = ctx if ctx["id"] is not None else None
    if row is None:
        _fail_write(plpy, tenant, "name", name, expected_version, pending)
    _write_version(plpy, tenant, ctx, key, row, raw,
                   "pending_version" if pending else "create" if row["version"] == 1 else "new_version",
                   _settings_detail(settings))
    settle(plpy, tenant, ctx, row, retained=True)
    return saved(tenant, row)


def _update_plan(plpy: Any, by: str, mode: str) -> Any:
    """UPDATE_SQL by name or id; `mode` a key of NEW_VERSION_SET. Parameters: tenant, key, the five
    fields, expected version, the three settings, audit action, role, detail."""
    col, typ = KEYS[by]
    sql = UPDATE_SQL.format(col=col, set=NEW_VERSION_SET[mode],
                            returning=RETURNING.format(version="pending_version" if mode == "pending"
                                                       else "current_version"))
    return plan(plpy, "update.%s.%s" % (by, mode), sql,
                [T, typ, *FIELD_TYPES, "pg_catalog.int4", *SETTING_TYPES, T, "pg_catalog.name", "pg_catalog.jsonb"])


def _update(plpy: Any, tenant: str, by: str, key: Any, value: Any, description: Any, tags: Any,
            metadata: Any, expected_version: Any, kind: Any, expires_at: Any, max_versions: Any,
            destroy_versions_after: Any, rotate_every: Any, stage: Any) -> dict:
    pending, fields, settings = _arguments(plpy, stage, kind, description, tags, metadata, expires_at,
                                           expected_version, max_versions, destroy_versions_after, rotate_every)
    if pending and value is None:
        raise Fail(INVALID_ARGUMENT, "stage => 'pending' stages a new value: value must not be NULL")
    return privileged.call(plpy, OWNER, _update_step, tenant, by, key, value, fields, settings, expected_version,
                           pending)


@privileged.step(OWNER)
def _update_step(plpy: Any, caller: str, tenant: str, by: str, key: Any, value: Any, fields: list,
                 settings: list, expected_version: Any, pending: bool) -> dict:
    from . import scope
    ctx = scope.enter(plpy, caller, tenant, by, key, "write", write=True)
    if _sets_retention(settings):
        access.still_granted(plpy, ctx, [_may_set_retention(plpy, caller, tenant, by, key)])
    retained = False
    if value is None:
        rows = plpy.execute(_update_plan(plpy, by, "metadata"), [tenant, key, *fields, expected_version, *settings,
                                                                 "update_metadata", caller,
                                                                 write_detail(ctx, _settings_detail(settings))])
        if not rows:
            _fail_write(plpy, tenant, by, key, expected_version)
    else:
        raw = validate.value(value, ctx["max_value_bytes"])
        root = active_key(plpy, ctx)
        rows = plpy.execute(_update_plan(plpy, by, "pending" if pending else "current"),
                            [tenant, key, *fields, expected_version, *settings, None, None, None])
        if not rows:
            _fail_write(plpy, tenant, by, key, expected_version, pending)
        _write_version(plpy, tenant, ctx, root, rows[0], raw, "pending_version" if pending else "new_version",
                       _settings_detail(settings))
        retained = True
    settle(plpy, tenant, ctx, rows[0], retained)
    return saved(tenant, rows[0])


@api
def update_secret(plpy: Any, tenant: str, name: str, value: Any, description: Any, tags: Any,
                  metadata: Any, expected_version: Any, kind: Any, expires_at: Any, max_versions: Any,
                  destroy_versions_after: Any, rotate_every: Any, stage: Any) -> dict:
    validate.tenant(tenant)
    return _update(plpy, tenant, "name", validate.name(name), value, description, tags, metadata,
                   expected_version, kind, expires_at, max_versions, destroy_versions_after, rotate_every, stage)


@api
def update_secret_by_id(plpy: Any, tenant: str, secret_id: str, value: Any, description: Any, tags: Any,
                        metadata: Any, expected_version: Any, kind: Any, expires_at: Any, max_versions: Any,
                        destroy_versions_after: Any, rotate_every: Any, stage: Any) -> dict:
    validate.tenant(tenant)
    return _update(plpy, tenant, "id", secret_id, value, description, tags, metadata,
                   expected_version, kind, expires_at, max_versions, destroy_versions_after, rotate_every, stage)
