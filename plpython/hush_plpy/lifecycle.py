"""Staged rotation, rollback and what falls due.

A secret has up to three staged versions (hush.secrets): current_version, the one reads
get; pending_version, a value saved with stage => 'pending' that nothing reads by default
until promote_secret makes it current; previous_version, the current one before the last
change of current_version, kept readable (get_secret(stage => 'previous')) so a client
caching the old value keeps working until the next rotation. A rotation that fails
between staging and promotion leaves current untouched.

rollback_secret makes a new current version with an old version's value: the value is
opened and sealed again here, in the server, under a fresh data key and the active root
key (its associated data names the new version), so it never leaves the server and is not
a read of the secret. Both are writes of capability `write`, audited in the statement that
makes them ('promote', 'rollback'), followed by retention (retention.py) and a change
notification (changes.py).

due_for_rotation lists the secrets whose rotation schedule (rotated_at + rotate_every) or
expiry falls within a window of a given time: decided from its arguments and the rows
alone, so a test or a monitor asks about any moment it likes and nothing in a session can
move the clock.
"""
from __future__ import annotations

from . import access, crypto, privileged, validate
from .access import plan
from .errors import (INVALID_ARGUMENT, SECRET_DELETED, VERSION_CONFLICT, VERSION_DESTROYED,
                     VERSION_NOT_FOUND, Fail, api)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

OWNER = privileged.OWNER
T = "pg_catalog.text"
EQ = "OPERATOR(pg_catalog.=)"
# What a write returns (hush.saved_secret) and what retention.applies needs of the secret.
RETURNING = """RETURNING s.id, s.name, s.current_version AS version, s.created_at, s.updated_at,
            s.max_versions, s.destroy_versions_after"""
JSONB_EMPTY = "'{}'::pg_catalog.jsonb"

# Why a promotion or rollback of $2 (a name) cannot go ahead, in two statements. LOCK_SQL
# locks the secret's row until the step's statement commits or fails, so the stage numbers
# checked are the ones the write after it changes (a concurrent save waits; in REPEATABLE
# READ one that came first makes this 40001, retry). VERSION_SQL then reads the version
# those numbers name ($3), sealed value included, FOR SHARE, as a statement of its own: in
# READ COMMITTED its snapshot is taken after the lock was granted (a version staged or
# destroyed by the transaction waited for is seen), and a destroy_secret or retention that
# changed the version after a REPEATABLE READ snapshot makes it 40001 rather than hand back
# a value that was erased (the destroy touches the version's row only, never the secret's).
LOCK_SQL = f"""
SELECT s.id, s.name, s.deleted_at IS NOT NULL AS deleted, s.current_version, s.pending_version
  FROM hush.secrets s
 WHERE s.tenant_id {EQ} $1 AND s.name {EQ} $2
   FOR UPDATE OF s
"""
VERSION_SQL = f"""
SELECT v.version, v.key_id, v.wrapped_dek, v.ciphertext, v.destroyed_at IS NOT NULL AS destroyed
  FROM hush.secret_versions v
 WHERE v.tenant_id {EQ} $1 AND v.secret_id {EQ} $2 AND v.version {EQ} $3
   FOR SHARE
"""

# $1 tenant, $2 secret id, $3 the role, $4 the grant's audit detail (access.actor).
# The pending version becomes current: the row was locked and checked (LOCK_SQL, VERSION_SQL).
PROMOTE_SQL = f"""
WITH u AS (
  UPDATE hush.secrets s
     SET previous_version = s.current_version, current_version = s.pending_version, pending_version = NULL,
         rotated_at = pg_catalog.now(), updated_at = pg_catalog.now()
   WHERE s.tenant_id {EQ} $1 AND s.id {EQ} $2 AND s.pending_version IS NOT NULL
  {RETURNING}, s.previous_version),
     a AS (INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
           SELECT $1, 'promote', u.id, u.name, u.version, $3,
                  pg_catalog.jsonb_build_object('previous', u.previous_version)
                  OPERATOR(pg_catalog.||) COALESCE($4, {JSONB_EMPTY})
             FROM u)
SELECT * FROM u
"""
PROMOTE_TYPES = [T, "pg_catalog.uuid", "pg_catalog.name", "pg_catalog.jsonb"]

# A new current version $3 (GREATEST(current, pending) + 1 of the locked row, which the
# seal's associated data names) with the value re-sealed in $4..$6, in one statement with
# its version row and audit row: $7 the role, $8 the version rolled back to, $9 the grant.
# OPERATOR() forms all bind alike, left to right: hence the parentheses.
ROLLBACK_SQL = f"""
WITH u AS (
  UPDATE hush.secrets s
     SET previous_version = s.current_version, current_version = $3, pending_version = NULL,
         rotated_at = pg_catalog.now(), updated_at = pg_catalog.now()
   WHERE s.tenant_id {EQ} $1 AND s.id {EQ} $2
     AND $3 {EQ} (GREATEST(s.current_version, s.pending_version) OPERATOR(pg_catalog.+) 1)
  {RETURNING}),
     v AS (INSERT INTO hush.secret_versions (tenant_id, secret_id, version, key_id, wrapped_dek, ciphertext, created_by)
           SELECT $1, u.id, u.version, $4, $5, $6, $7 FROM u),
     a AS (INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, db_role, detail)
           SELECT $1, 'rollback', u.id, u.name, u.version, $7,
                  pg_catalog.jsonb_build_object('from_version', $8::pg_catalog.int4)
                  OPERATOR(pg_catalog.||) COALESCE($9, {JSONB_EMPTY})
             FROM u)
SELECT * FROM u
"""
ROLLBACK_TYPES = [T, "pg_catalog.uuid", "pg_catalog.int4", T, "pg_catalog.bytea", "pg_catalog.bytea",
                  "pg_catalog.name", "pg_catalog.int4", "pg_catalog.jsonb"]


def _label(tenant: str, row: dict) -> str:
    return "secret %r of tenant %s" % (row["name"], tenant)


def _expected(v: Any, what: str) -> Any:
    if v is not None and v < 1:
        raise Fail(INVALID_ARGUMENT, "expected_version must be a positive version (%s)" % what)
    return v


def _find(plpy: Any, tenant: str, name: str, version: Any) -> dict:
    """The locked row of a live secret, with `version` (None: the pending one) read after
    the lock (its columns None when there is no such version)."""
    from .secrets import not_found  # secrets imports much; only the write steps need it
    rows = plpy.execute(plan(plpy, "lifecycle.lock", LOCK_SQL, [T, T]), [tenant, name])
    if not rows:
        raise not_found("name", name, tenant)
    row = dict(rows[0])
    if row["deleted"]:
        raise Fail(SECRET_DELETED, "%s is deleted" % _label(tenant, row),
                   hint="Restore it with hush.restore_secret first.")
    wanted = row["pending_version"] if version is None else version
    found = [] if wanted is None else plpy.execute(
        plan(plpy, "lifecycle.version", VERSION_SQL, [T, "pg_catalog.uuid", "pg_catalog.int4"]),
        [tenant, row["id"], wanted])
    row.update(found[0] if found else
               {"version": None, "key_id": None, "wrapped_dek": None, "ciphertext": None, "destroyed": False})
    return row


def _check_version(tenant: str, row: dict, expected: Any, compared: Any, what: str) -> None:
    """The version asked for exists (SH011), the check-and-set holds (SH013: `compared`, the
    secret's `what` version, is not `expected`), and the version still has its value (SH015)."""
    label = _label(tenant, row)
    if row["version"] is None:
        if what == "pending":
            raise Fail(VERSION_NOT_FOUND, "%s has no pending version" % label,
                       hint="Stage one with hush.save_secret(..., stage => 'pending').")
        raise Fail(VERSION_NOT_FOUND, "%s has no version %s" % (label, row["asked"]))
    if expected is not None and compared != expected:
        raise Fail(VERSION_CONFLICT, "%s has %s version %s, not the expected %s" % (label, what, compared, expected),
                   hint="Read the secret's versions (hush.secret_versions) and retry.")
    if row["destroyed"]:
        raise Fail(VERSION_DESTROYED, "version %s of %s was destroyed" % (row["version"], label))


def _after_write(plpy: Any, tenant: str, ctx: dict, rows: Any) -> dict:
    """Retention on the secret just written, the change notification, and the saved_secret."""
    if not rows:  # not after LOCK_SQL; a guard, should the locking ever change
        raise Fail(VERSION_CONFLICT, "secret of tenant %s changed while this call ran; nothing was written" % tenant,
                   hint="Retry.")
    from .secret_writes import saved, settle  # it imports much; only the write steps need it
    settle(plpy, tenant, ctx, rows[0])
    return saved(tenant, rows[0])


# -- promote -------------------------------------------------------------------------


@api
def promote_secret(plpy: Any, tenant: str, name: str, expected_version: Any) -> dict:
    """Make the pending version current; expected_version, when given, is the pending
    version the caller staged (a promotion of someone else's staging is refused)."""
    validate.tenant(tenant)
    validate.name(name)
    _expected(expected_version, "the pending version to promote")
    return privileged.call(plpy, OWNER, _promote, tenant, name, expected_version)


@privileged.step(OWNER)
def _promote(plpy: Any, caller: str, tenant: str, name: str, expected_version: Any) -> dict:
    ctx = access.enter(plpy, caller, tenant, write=True, cap="write", name=name)
    row = _find(plpy, tenant, name, None)
    _check_version(tenant, row, expected_version, row["pending_version"], "pending")
    rows = plpy.execute(plan(plpy, "lifecycle.promote", PROMOTE_SQL, PROMOTE_TYPES),
                        [tenant, row["id"], caller, access.actor(ctx)])
    return _after_write(plpy, tenant, ctx, rows)


# -- rollback ------------------------------------------------------------------------


@api
def rollback_secret(plpy: Any, tenant: str, name: str, to_version: Any, expected_version: Any) -> dict:
    """A new current version with to_version's value; expected_version, when given, is the
    current version the caller saw."""
    validate.tenant(tenant)
    validate.name(name)
    if to_version is None or to_version < 1:
        raise Fail(INVALID_ARGUMENT, "to_version must be a version of the secret (1 or more)")
    _expected(expected_version, "the current version")
    return privileged.call(plpy, OWNER, _rollback, tenant, name, to_version, expected_version)


@privileged.step(OWNER)
def _rollback(plpy: Any, caller: str, tenant: str, name: str, to_version: int,
              expected_version: Any) -> dict:
    ctx = access.enter(plpy, caller, tenant, write=True, cap="write", name=name)
    row = dict(_find(plpy, tenant, name, to_version), asked=to_version)
    _check_version(tenant, row, expected_version, row["current_version"], "current")
    from .secrets import decrypt  # secrets imports much; only the write steps need it
    plain = decrypt(plpy, tenant, row)
    from .secret_writes import active_key  # it imports much; only the write steps need it
    kid, root = active_key(plpy, ctx)
    new = max(row["current_version"], row["pending_version"] or 0) + 1
    wrapped, ciphertext = crypto.seal(root, kid, tenant, row["id"], new, plain)
    rows = plpy.execute(plan(plpy, "lifecycle.rollback", ROLLBACK_SQL, ROLLBACK_TYPES),
                        [tenant, row["id"], new, kid, wrapped, ciphertext, caller, to_version, access.actor(ctx)])
    return _after_write(plpy, tenant, ctx, rows)


# -- what falls due ------------------------------------------------------------------

DEFAULT_WARNING = "14 days"


def due_rows(at: str, within: str) -> str:
    """SQL: what falls due among the live secrets of tenant $1 as of `at`, looking `within`
    ahead (SQL expressions; `within` NULL: the tenant's expiry_warning), one row per secret
    and reason, with the secret's columns. due_for_rotation and hush.maintain_secrets' reminders
    (upkeep.py) decide with this one text. The WHERE repeats the secrets_due index's
    predicate, so the scan is the index's: only secrets with a schedule or an expiry."""
    return f"""
SELECT s.id, s.name, r.reason, d.due_at, s.rotate_every, s.rotated_at, s.expires_at,
       s.current_version AS version, s.pending_version
  FROM hush.secrets s
 CROSS JOIN LATERAL (VALUES (true, s.rotated_at OPERATOR(pg_catalog.+) s.rotate_every),
                            (false, s.expires_at)) AS d(rotation, due_at)
 CROSS JOIN LATERAL (SELECT CASE WHEN d.due_at OPERATOR(pg_catalog.<=) {at}
                                 THEN CASE WHEN d.rotation THEN 'rotation_overdue' ELSE 'expired' END
                                 WHEN d.due_at OPERATOR(pg_catalog.<=) ({at} OPERATOR(pg_catalog.+) COALESCE(
                                      {within}, (SELECT t.expiry_warning FROM hush.tenants t
                                                  WHERE t.tenant_id {EQ} $1),
                                      '{DEFAULT_WARNING}'::pg_catalog.interval))
                                 THEN CASE WHEN d.rotation THEN 'rotation_due' ELSE 'expiring' END
                            END AS reason) AS r
 WHERE s.tenant_id {EQ} $1 AND s.deleted_at IS NULL AND (s.rotate_every IS NOT NULL OR s.expires_at IS NOT NULL)
   AND r.reason IS NOT NULL"""


# $1 tenant, $2 within (NULL: the tenant's expiry_warning), $3 at, $4 the prefixes the
# caller may list under (NULL: the whole tenant). No now(): `at` is the only clock.
DUE_SQL = f"""
SELECT d.name, d.reason, d.due_at, d.rotate_every, d.rotated_at, d.expires_at, d.version, d.pending_version
  FROM ({due_rows("$3", "$2")}) AS d
 WHERE ($4::pg_catalog.text[] IS NULL OR d.name OPERATOR(pg_catalog.^@) ANY ($4))
 ORDER BY d.due_at, d.name, d.reason
"""
DUE_TYPES = [T, "pg_catalog.interval", "pg_catalog.timestamptz", "pg_catalog.text[]"]


@api
def due_for_rotation(plpy: Any, tenant: str, within: Any, at: Any) -> list:
    """Rotations due or overdue and expiries near or past, as of `at`, looking `within` ahead."""
    validate.tenant(tenant)
    if at is None:
        raise Fail(INVALID_ARGUMENT, "at must not be NULL", hint="Leave it out for now().")
    validate.interval(plpy, within, "within", validate.MAX_RETENTION)  # NULL: the tenant's expiry_warning
    return privileged.call(plpy, OWNER, _due, tenant, within, at)


@privileged.step(OWNER)
def _due(plpy: Any, caller: str, tenant: str, within: Any, at: Any) -> list:
    ctx = access.enter(plpy, caller, tenant, cap="list")
    if not ctx["prefixes"]:
        return []
    from .scope import listed
    p = plan(plpy, "lifecycle.due", DUE_SQL, DUE_TYPES)
    return list(plpy.execute(p, [tenant, within, at, listed(ctx["prefixes"])]))
