"""The secret API, reading: get_secret, get_secret_by_id, get_secrets; and what the
other parts of the API share (secret_writes.py: save and update; secret_removal.py:
delete, restore, destroy; secret_listing.py: list, search, exists, versions).

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
from .errors import (DECRYPTION_FAILED, INVALID_ARGUMENT, SECRET_EXPIRED, SECRET_NOT_FOUND, VERSION_DESTROYED,
                     VERSION_NOT_FOUND, Fail, api)

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
STAGES = ("current", "pending", "previous")


def stage_of(version: str, s: str = "s") -> str:
    """SQL: the stage the version `version` holds in the row `s` of hush.secrets: 'current',
    'pending', 'previous' or NULL. The three never coincide: a pending version is newer than
    the current one, the previous one older."""
    return (f"CASE WHEN {version} {EQ} {s}.current_version THEN 'current'::pg_catalog.text"
            f" WHEN {version} {EQ} {s}.pending_version THEN 'pending'"
            f" WHEN {version} {EQ} {s}.previous_version THEN 'previous' END")


# $1 tenant, $2 the key, $3 the caller (a version, when asked, is $4). A row comes back only
# if the caller may read its name. Which grant allowed it is looked up for the read record
# only, where it commits (recheck.py): here, access.via's plan would be built on every read,
# ~5 µs each.
READ_SQL = f"""
SELECT s.id, s.name, s.kind, s.description, s.tags, s.metadata, s.created_at, s.updated_at, s.expires_at,
       (s.expires_at IS NOT NULL AND s.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()) AS expired,
       v.version, {{stage}} AS stage, v.key_id, v.wrapped_dek, v.ciphertext,
       COALESCE((SELECT {access.audit_reads("t")} FROM hush.tenants t WHERE t.tenant_id {EQ} $1), true) AS audit_reads
  FROM hush.secrets s
  LEFT JOIN hush.secret_versions v
         ON v.tenant_id {EQ} s.tenant_id AND v.secret_id {EQ} s.id AND v.version {EQ} {{version}}
 WHERE s.tenant_id {EQ} $1 AND {{where}} AND s.deleted_at IS NULL
   AND {access.may("$1", "$3", "'read'::pg_catalog.text", "s.name")}
"""
# One statement per shape: "latest" joins on the row's current_version, "given"
# on a parameter, a stage's on the row's pending_version or previous_version, so the
# version is an index condition every time (a COALESCE of them would read every
# version of the secret). (where, version, stage, parameter types)
_BY = {"name": (f"s.name {EQ} $2", T), "id": (f"s.id {EQ} $2", "pg_catalog.uuid")}
READS = {
    "names": (f"s.name {EQ} ANY ($2)", "s.current_version", "'current'::pg_catalog.text",
              [T, "pg_catalog.text[]", "pg_catalog.name"]),
}
for _by, (_where, _typ) in _BY.items():
    READS[_by] = (_where, "s.current_version", "'current'::pg_catalog.text", [T, _typ, "pg_catalog.name"])
    READS[_by + "@"] = (_where, "$4", stage_of("$4"), [T, _typ, "pg_catalog.name", "pg_catalog.int4"])
    for _stage in ("pending", "previous"):
        READS[_by + ":" + _stage] = (_where, "s.%s_version" % _stage, "'%s'::pg_catalog.text" % _stage,
                                     [T, _typ, "pg_catalog.name"])


def _read(plpy: Any, caller: str, tenant: str, by: str, key: Any, version: Any, stage: Any = None) -> list:
    """The rows asked for, if the caller may act on the tenant: one statement (the dispatch
    set hush.tenant: privileged.call(..., tenant=...)). `stage`: 'pending' or 'previous'
    (the current version is the one read without)."""
    shape = by + ("@" if version is not None else ":" + stage if stage else "")
    p = access.cached_plan("read." + shape)  # before any SQL text is built: this is the hot path
    if p is None:
        where, ver, stage_sql, types = READS[shape]
        p = plan(plpy, "read." + shape, READ_SQL.format(where=where, version=ver, stage=stage_sql), types)
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


def _release(plpy: Any, caller: str, tenant: str, rows: list) -> None:
    """Record the reads of the values about to be handed out (unless the tenant switched
    read auditing off), once _check passed and before any value is opened. Where the record
    commits, the caller's grants are asked again and the one allowing each read goes into
    its row (recheck.py): a grant revoked since READ_SQL ran refuses the read there."""
    if rows[0]["audit_reads"]:
        audit.record_reads(plpy, caller, tenant, [(r["id"], r["name"], r["version"]) for r in rows],
                           [r["key_id"] for r in rows])


def _check(tenant: str, row: dict, asked_version: Any, stage: Any = None) -> None:
    """Why this row's value cannot be handed out, if it cannot (before anything is recorded)."""
    label = "secret %r of tenant %s" % (row["name"], tenant)
    if row["expired"]:
        raise Fail(SECRET_EXPIRED, "%s expired at %s" % (label, row["expires_at"]),
                   hint="Save a new value with a later expires_at, or clear it with update_secret(expires_at => 'infinity').")
    if row["version"] is None:
        if stage:
            raise Fail(VERSION_NOT_FOUND, "%s has no %s version" % (label, stage),
                       hint="save_secret(..., stage => 'pending') stages one." if stage == "pending" else
                            "A secret has a previous version once a second value became current.")
        raise Fail(VERSION_NOT_FOUND, "%s has no version %s" % (label, asked_version))
    if row["ciphertext"] is None:
        raise Fail(VERSION_DESTROYED, "version %s of %s was destroyed" % (row["version"], label))


def decrypt(plpy: Any, tenant: str, row: dict) -> bytes:
    """The value of the version `row` holds (id, name, version, key_id, wrapped_dek,
    ciphertext); SH031 for a seal that does not belong to its row (copied or tampered with)."""
    key = keyring.get(plpy, row["key_id"])
    try:
        return crypto.open_(key, row["key_id"], tenant, row["id"], row["version"], row["wrapped_dek"],
                            row["ciphertext"])
    except crypto.CryptoError:
        raise Fail(DECRYPTION_FAILED, "version %s of secret %r of tenant %s does not decrypt: its ciphertext or data "
                   "key does not belong to this row (tampered with or copied)"
                   % (row["version"], row["name"], tenant)) from None


def _open(plpy: Any, tenant: str, row: dict) -> dict:
    plain = decrypt(plpy, tenant, row)
    return {"id": row["id"], "tenant_id": tenant, "name": row["name"], "value": plain.decode("utf-8"),
            "kind": row["kind"], "description": row["description"], "tags": row["tags"],
            "metadata": row["metadata"], "version": row["version"], "created_at": row["created_at"],
            "updated_at": row["updated_at"], "expires_at": row["expires_at"], "stage": row["stage"]}


@privileged.step(OWNER)
def _get(plpy: Any, caller: str, tenant: str, by: str, key: Any, version: Any, stage: Any) -> dict:
    rows = _read(plpy, caller, tenant, by, key, version, stage)
    _check(tenant, rows[0], version, stage)
    _release(plpy, caller, tenant, rows)
    return _open(plpy, tenant, rows[0])


def _read_stage(version: Any, stage: Any) -> Any:
    """The stage get_secret reads by: None for the current version (the plain read's shape)."""
    if stage not in STAGES:
        raise Fail(INVALID_ARGUMENT, "stage must be 'current', 'pending' or 'previous', not %s" % validate.show(stage))
    if version is not None:
        raise Fail(INVALID_ARGUMENT, "give version or stage, not both")
    return None if stage == "current" else stage


@api
def get_secret(plpy: Any, tenant: str, name: str, version: Any, stage: Any) -> dict:
    validate.tenant(tenant)
    validate.name(name)
    validate.version(version)
    if stage is not None:
        stage = _read_stage(version, stage)
    return privileged.call(plpy, OWNER, _get, tenant, "name", name, version, stage, tenant=tenant)


@api
def get_secret_by_id(plpy: Any, tenant: str, secret_id: str, version: Any, stage: Any) -> dict:
    validate.tenant(tenant)
    validate.version(version)
    if stage is not None:
        stage = _read_stage(version, stage)
    return privileged.call(plpy, OWNER, _get, tenant, "id", secret_id, version, stage, tenant=tenant)


@api
def get_secrets(plpy: Any, tenant: str, names: Any) -> list:
    validate.tenant(tenant)
    if names is None:
        raise Fail(INVALID_ARGUMENT, "names must not be NULL")
    wanted = list(dict.fromkeys(validate.name(n) for n in names))
    return privileged.call(plpy, OWNER, _get_many, tenant, wanted, tenant=tenant)


@privileged.step(OWNER)
def _get_many(plpy: Any, caller: str, tenant: str, wanted: list) -> list:
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
    _release(plpy, caller, tenant, rows)
    # In the order asked for.
    return [_open(plpy, tenant, found[n]) for n in wanted]
