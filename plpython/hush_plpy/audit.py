"""Audit rows for changes that are not secret writes (grants, tenant settings,
keys, OAuth), the record of values read, and a tenant's own audit trail for
application roles (hush.audit_log()).

Secret writes insert their audit row inside the same statement as the change
(a data-modifying CTE in secret_writes.py): one round trip, one transaction. Every
row names the role the calling code ran as (db_role: the caller a privileged
step's ticket carries) beside the session's login role (session_role, a
column default), and says so in `detail` when a superuser acted as itself.
Everything here runs in privileged steps (privileged.py).
"""
from __future__ import annotations

from . import access, errors, keyring, privileged, recheck, recorder
from .access import plan
from .errors import AUDIT_RATE_LIMITED, INVALID_ARGUMENT, Fail, api

try:  # BLAKE2 is built into CPython; hashlib's import (OpenSSL) costs ~1 ms
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - another Python
    from hashlib import blake2b

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

# Every action hush writes, in one place: record() and record_reads() refuse
# any other, and the client's list (hush audit --action) is generated from it
# (tools/client_tables.py).
ACTIONS = (
    # secrets
    "read", "create", "new_version", "pending_version", "promote", "rollback", "update_metadata", "delete", "restore",
    "destroy", "purge",
    # tenants and root keys
    "grant_tenant", "revoke_tenant", "grant_access", "revoke_access", "configure_tenant",
    "add_root_key", "activate_root_key", "retire_root_key", "rewrap",
    # OAuth
    "oauth_provider_save", "oauth_provider_remove", "oauth_client_secret_read", "oauth_authorize", "oauth_callback",
    "oauth_callback_refused",
    "oauth_token_store", "oauth_token_read", "oauth_tokens_read", "oauth_refresh_claim", "oauth_refresh",
    "oauth_refresh_failed", "oauth_disconnect",
    "oauth_egress_allow", "oauth_egress_disallow",
)

# A superuser acting as itself says so in `detail`, whatever the step ({detail}: the
# statement's detail expression; r: the caller's pg_roles row).
MARKED_DETAIL = """CASE WHEN r.rolsuper THEN COALESCE({detail}, '{{}}'::pg_catalog.jsonb)
                                 OPERATOR(pg_catalog.||) '{{"superuser": true}}'::pg_catalog.jsonb
            ELSE {detail} END"""
RECORD_SQL = f"""
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, detail, db_role)
SELECT $1, $2, $3, $4, $5, {MARKED_DETAIL.format(detail="$6")}, $7
  FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) $7
"""


def record(plpy: Any, who: dict, tenant: str, action: str, secret_id: Any = None, secret_name: Any = None,
           version: Any = None, detail: Any = None) -> None:
    """In a privileged step: one audit row naming the caller. `who` is the step's context
    (access.enter's row, or {"caller": ...} for steps that act on no tenant). A tenant's
    rate limit, when it has one, is checked once per step (admins' steps carry none)."""
    import json  # here: the read path records through record_reads and needs none
    assert action in ACTIONS, action
    _rate_once(plpy, who, tenant)
    p = plan(plpy, "audit.record", RECORD_SQL,
             ["pg_catalog.text", "pg_catalog.text", "pg_catalog.uuid", "pg_catalog.text", "pg_catalog.int4",
              "pg_catalog.jsonb", "pg_catalog.name"])
    plpy.execute(p, [tenant, action, secret_id, secret_name, version,
                     None if detail is None else json.dumps(detail, sort_keys=True), who["caller"]])


def _rate_once(plpy: Any, who: dict, tenant: str) -> None:
    """A tenant's rate limit, when it has one, checked once per step (admins' steps carry none)."""
    if who.get("audit_limit") and not who.get("rate_checked"):
        check_rate(plpy, tenant, who["audit_limit"])
        who["rate_checked"] = True


# record() for many rows of one action: one statement, in the order given.
RECORD_MANY_SQL = f"""
INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, detail, db_role)
SELECT $1, $2, u.id, u.name, u.version, {MARKED_DETAIL.format(detail="u.detail")}, $7
  FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6))
       WITH ORDINALITY AS u(id, name, version, detail, n)
  LEFT JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) $7
 ORDER BY u.n
"""


def record_many(plpy: Any, who: dict, tenant: str, action: str, rows: list) -> None:
    """record() of many rows, (secret_id, secret_name, version, detail dict or None) each, in
    one statement (a statement per row is a subtransaction per row in PL/Python)."""
    import json
    assert action in ACTIONS, action
    if not rows:
        return
    _rate_once(plpy, who, tenant)
    p = plan(plpy, "audit.record_many", RECORD_MANY_SQL,
             ["pg_catalog.text", "pg_catalog.text", "pg_catalog.uuid[]", "pg_catalog.text[]", "pg_catalog.int4[]",
              "pg_catalog.jsonb[]", "pg_catalog.name"])
    plpy.execute(p, [tenant, action, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                     [None if r[3] is None else json.dumps(r[3], sort_keys=True) for r in rows], who["caller"]])


# Who read, and from where, taken in the reading backend (the step runs in the
# caller's session and transaction): never from an argument anyone could pass.
# And the tenant's audit rate limit, in the same round trip.
WHO_SQL = f"""
SELECT {errors.columns(errors.SESSION)},
       pg_catalog.inet_client_addr()::pg_catalog.text AS client_addr, pg_catalog.pg_backend_pid() AS pid,
       pg_catalog.txid_current_if_assigned() AS txid, pg_catalog.pg_is_in_recovery() AS standby,
       pg_catalog.pg_conf_load_time()::pg_catalog.text AS conf, {access.superuser("$1")} AS superuser,
       (SELECT t.audit_rows_per_second FROM hush.tenants t WHERE t.tenant_id OPERATOR(pg_catalog.=) $2) AS audit_limit
"""


def record_reads(plpy: Any, caller: str, tenant: str, rows: list[tuple], key_ids: Any,
                 action: str = "read") -> None:
    """In a reading step, before any value is opened: the record that `caller` read these
    (row id, name, version[, detail dict]), committed on the primary apart from the caller's
    transaction (recorder.py); SH022, and no value, when it cannot be; SH020 when the caller's
    grants no longer allow it there (recheck.py). The one place a read is recorded. key_ids:
    the root keys that will open the values, checked first, so that a read this node cannot
    serve (SH030) is refused before anything is recorded."""
    assert action in ACTIONS and action in recheck.CAPS, action
    for kid in set(key_ids):
        keyring.get(plpy, kid)
    who = plpy.execute(plan(plpy, "audit.who", WHO_SQL, ["pg_catalog.name", "pg_catalog.text"]),
                       [caller, tenant])[0]
    # caller_txid: whether the reading transaction committed is read off it later
    # (hush.caller_xact); null when it had written nothing, so had no id yet.
    extra: dict = {"pid": who["pid"], "caller_txid": who["txid"]}
    if who["standby"]:
        extra["standby"] = True
    if who["superuser"]:
        extra["superuser"] = True
    payload = {
        "tenant": tenant, "db_role": caller, "session_role": who["session_role"],
        "application_name": who["application_name"], "client_addr": who["client_addr"],
        "rows": [(action, r[0], r[1], r[2], dict(r[3] if len(r) > 3 and r[3] else {}, **extra)) for r in rows],
    }
    # The rate limit is checked where the records are committed (hush._record, a fresh
    # snapshot): they are committed apart from this transaction, so a REPEATABLE READ or
    # SERIALIZABLE reader's snapshot would never see its own earlier ones.
    if who["audit_limit"]:
        payload["audit_limit"] = who["audit_limit"]
    try:
        recorder.record(plpy, payload, who)
    except recorder.RateLimited:
        raise rate_refusal(tenant, who["audit_limit"]) from None
    except recorder.Revoked as e:  # the grants, asked again where the record commits (recheck.py)
        raise recheck.refused(caller, tenant, action, rows, e) from None


# -- the tenant's audit rate limit (hush.configure_tenant(audit_rows_per_second => n)) -------

# The tenant's rows of the last second, counted up to the limit: the committed ones and the
# caller's own transaction's. $2, the second's start, is a parameter so that the partitions
# of other months are pruned. Concurrent transactions that have not committed are not
# seen: each may go over by what it writes before it commits. Read records are counted by
# hush._record, which commits them (recorder.store), in a statement of its own: a fresh
# snapshot whatever the reader's isolation level. A write's rows are counted in the
# writer's transaction, which sees its own rows at any isolation level; a REPEATABLE READ
# writer does not see rows committed by others since its snapshot, so, like a concurrent
# transaction, it may go over by what it writes itself.
RECENT_SQL = """
SELECT pg_catalog.count(*) AS n
  FROM (SELECT FROM hush.audit_log a
         WHERE a.tenant_id OPERATOR(pg_catalog.=) $1 AND a.at OPERATOR(pg_catalog.>=) pg_catalog.to_timestamp($2)
         LIMIT $3) recent
"""


def check_rate(plpy: Any, tenant: str, limit: int) -> None:
    """In a tenant's step that is about to write audit rows: SH023, and nothing written, when the
    tenant has written `limit` rows in the last second. Refused, not dropped: an audit trail
    with silent gaps is worth less than a call that fails and can be retried. A call is never
    refused for its own size (get_secrets of many names), so the limit may be passed by one call."""
    import time  # here: only a tenant with a limit pays for it
    p = plan(plpy, "audit.recent", RECENT_SQL, ["pg_catalog.text", "pg_catalog.float8", "pg_catalog.int8"])
    if plpy.execute(p, [tenant, time.time() - 1.0, limit])[0]["n"] >= limit:
        raise rate_refusal(tenant, limit)


def rate_refusal(tenant: str, limit: int) -> Fail:
    return Fail(AUDIT_RATE_LIMITED, "tenant %s has written %d audit rows in the last second, its limit: "
                "call refused, nothing written" % (tenant, limit),
                hint="Retry in a moment, or have an admin raise the limit: hush.configure_tenant(tenant, "
                     "audit_rows_per_second => n), 0 for none.")


# -- cursors: a tenant's place in its trail, without the trail's global numbers --------------

# The trail's order is (txid, id): the writing transaction and a sequence every tenant
# shares, so both count what other tenants did between two of one's own rows. An
# application role gets a cursor instead: that position sealed under a key only hush_owner
# reads (hush_private.audit_cursor_key), bound to the tenant, in the manner of SIV: tag =
# BLAKE2b-MAC(tenant, position), then the position XOR a BLAKE2b pad of the tag. The same
# row always gets the same cursor; a cursor says nothing about the position; one forged,
# altered or made for another tenant is refused (SH004).
CURSOR_KEY_SQL = "SELECT k.key FROM hush_private.audit_cursor_key k"
CURSOR_CHARS = 43  # 32 bytes, base64url without padding
_B64URL = str.maketrans("+/", "-_")
_B64STD = str.maketrans("-_", "+/")


def _cursor_tag(key: bytes, tenant: str, body: bytes) -> bytes:
    return blake2b(tenant.encode() + b"\0" + body, key=key, digest_size=16, person=b"hush-cursor-tag").digest()


def _cursor_pad(key: bytes, tag: bytes) -> bytes:
    return blake2b(tag, key=key, digest_size=16, person=b"hush-cursor-pad").digest()


def cursor_key(plpy: Any) -> bytes:
    return bytes(plpy.execute(plan(plpy, "audit.cursor_key", CURSOR_KEY_SQL, []))[0]["key"])


def opaque_id(key: bytes, tenant: str, row_id: int) -> int:
    """A row's id that says nothing of the sequence it came from: a positive 63-bit keyed hash
    of (tenant, id), the same every time (hush.oauth_events(): events keep their order in the
    listing, not in their ids)."""
    digest = blake2b(tenant.encode() + b"\0" + row_id.to_bytes(8, "big"), key=key, digest_size=8,
                     person=b"hush-opaque-id").digest()
    return int.from_bytes(digest, "big") >> 1


def seal_cursor(key: bytes, tenant: str, txid: int, row_id: int) -> str:
    import binascii
    body = txid.to_bytes(8, "big") + row_id.to_bytes(8, "big")
    tag = _cursor_tag(key, tenant, body)
    sealed = tag + bytes(a ^ b for a, b in zip(body, _cursor_pad(key, tag)))
    return binascii.b2a_base64(sealed, newline=False).decode().translate(_B64URL).rstrip("=")


def open_cursor(key: bytes, tenant: str, cursor: Any) -> tuple[int, int]:
    """(txid, id) of a cursor seal_cursor made for this tenant; SH004 for anything else."""
    import binascii
    from _operator import _compare_digest
    raw = b""
    if isinstance(cursor, str) and len(cursor) == CURSOR_CHARS:
        try:
            raw = binascii.a2b_base64((cursor + "=").translate(_B64STD).encode(), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            pass
    if len(raw) == 32:
        tag = raw[:16]
        body = bytes(a ^ b for a, b in zip(raw[16:], _cursor_pad(key, tag)))
        if _compare_digest(_cursor_tag(key, tenant, body), tag):
            return int.from_bytes(body[:8], "big"), int.from_bytes(body[8:], "big")
    raise _bad_cursor()


def _bad_cursor() -> Fail:
    return Fail(INVALID_ARGUMENT, "after is not a cursor hush.audit_log() returned for this tenant",
                hint="Pass the cursor of a row this function returned, unchanged, with the same tenant.")


# -- a tenant's own trail, for application roles (hush.audit_log()) -----------------------

MAX_LOG_ROWS = 10000
# The owner_steps row policy (hush.tenant, set by access.enter) confines this to the tenant as well.
# Newest first, or (oldest_first) in the trail's order and only below the oldest transaction
# still running, so that a reader going on after its last cursor never skips a row that
# commits late. The position leaves only as a cursor; the caller's own txid, which read
# records keep in `detail` for caller_xact, leaves out too.
LOG_SQL = """
SELECT a.txid, a.id, a.at, a.action, a.secret_id, a.secret_name, a.version, a.db_role, a.session_role,
       a.application_name, a.client_addr, a.outcome,
       a.detail OPERATOR(pg_catalog.-) 'caller_txid'::pg_catalog.text AS detail,
       hush.caller_xact(a.detail) AS caller_xact
  FROM hush.audit_log a
 WHERE a.tenant_id OPERATOR(pg_catalog.=) $1
   AND ($2 IS NULL OR a.at OPERATOR(pg_catalog.>=) $2) AND ($3 IS NULL OR a.at OPERATOR(pg_catalog.<) $3)
   AND ($4 IS NULL OR a.action OPERATOR(pg_catalog.=) $4)
   AND ($5 IS NULL OR a.secret_name OPERATOR(pg_catalog.=) $5)
   AND ($9 IS NULL OR COALESCE(a.secret_name, '') OPERATOR(pg_catalog.^@) ANY ($9))
   AND ($7 IS NULL OR (a.txid, a.id) OPERATOR(pg_catalog.{cmp}) ($7, $8)){horizon}
 ORDER BY a.txid {order}, a.id {order}
 LIMIT $6
"""
LOGS = {
    False: LOG_SQL.format(cmp="<", order="DESC", horizon=""),
    True: LOG_SQL.format(cmp=">", order="ASC", horizon="""
   AND a.txid OPERATOR(pg_catalog.<) pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())"""),
}


@api
def read_log(plpy: Any, tenant: Any, since: Any, until: Any, action: Any, secret_name: Any, max_rows: Any,
             after: Any, oldest_first: Any) -> list:
    """A tenant's audit rows, for a role that may act on it, newest first (or oldest first),
    each with its cursor: `after` one of them, the rows that follow it. Not itself audited."""
    if max_rows is None or not 1 <= max_rows <= MAX_LOG_ROWS:
        raise Fail(INVALID_ARGUMENT, "max_rows must be between 1 and %d" % MAX_LOG_ROWS)
    if after is not None and (not isinstance(after, str) or len(after) != CURSOR_CHARS):
        raise _bad_cursor()  # before the step, which opens the cursor itself
    return privileged.call(plpy, privileged.OWNER, _read_log, tenant, since, until, action, secret_name, max_rows,
                           after, bool(oldest_first))


@privileged.step(privileged.OWNER)
def _read_log(plpy: Any, caller: str, tenant: Any, since: Any, until: Any, action: Any, secret_name: Any,
              max_rows: int, after: Any, oldest_first: bool) -> list:
    # The rows about names under the caller's `audit` prefixes ($9; None: the whole tenant);
    # a row about no secret (a grant, a setting) only with the whole tenant's.
    prefixes = access.enter(plpy, caller, tenant, cap="audit")["prefixes"]
    key = cursor_key(plpy)
    at = open_cursor(key, tenant, after) if after is not None else (None, None)
    if not prefixes:
        return []
    p = plan(plpy, "audit.log" + (".oldest" if oldest_first else ""), LOGS[oldest_first],
             ["pg_catalog.text", "pg_catalog.timestamptz", "pg_catalog.timestamptz", "pg_catalog.text",
              "pg_catalog.text", "pg_catalog.int4", "pg_catalog.int8", "pg_catalog.int8", "pg_catalog.text[]"])
    out = []
    from .scope import listed
    for r in plpy.execute(p, [tenant, since, until, action, secret_name, max_rows, *at,
                              listed(prefixes)]):
        row = dict(r)
        row["cursor"] = seal_cursor(key, tenant, row.pop("txid"), row.pop("id"))
        out.append(row)
    return out
