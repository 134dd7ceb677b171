"""Tamper evidence for the audit trail: seals chained by SHA-256.

A row's place in the trail is its position (txid, id). A seal covers the rows
after the previous seal's end up to its own end, in position order, and only
rows whose transaction is older than the oldest one still running: a row with
a smaller id can commit after a seal is taken, but no transaction can start
with a txid below the snapshot's xmin, so nothing ever lands in a sealed range
again. Each row is hashed in a canonical text form that no session setting
changes (UTC times with an explicit format, jsonb text, hex), and the seal's
hash covers its own fields and the previous seal's hash (hush._seal_digest).

An anchor is the seal retention writes after it removed rows: it re-seals what
survives from the start of the trail up to the end of the seal holding the
newest removed row, and chains to the seal before it like any other. From the
newest anchor on, verification checks rows against the anchor and the seals
after it; the seals it supersedes are checked as links of the chain only.
"""
from __future__ import annotations

import json

from . import privileged
from .access import plan
from .errors import AUDIT_TAMPERED, INVALID_ARGUMENT, MAINTENANCE_BUSY, Fail, api

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

T = "pg_catalog.text"
I8 = "pg_catalog.int8"
TS = "pg_catalog.timestamptz"
# Rows per seal: one seal's canonical text is aggregated in memory.
MAX_SEAL_ROWS = 100000

# The canonical form of a row: a JSON array whose text does not depend on
# TimeZone, DateStyle or bytea_output. docs/audit.md ("The canonical form") prints it.
CANON = """pg_catalog.jsonb_build_array(a.txid, a.id, a.tenant_id,
    pg_catalog.to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), a.action,
    CAST(a.secret_id AS pg_catalog.text), a.secret_name, a.version, CAST(a.db_role AS pg_catalog.text),
    CAST(a.session_role AS pg_catalog.text), a.application_name, CAST(a.client_addr AS pg_catalog.text),
    a.outcome, a.detail)::pg_catalog.text"""


def rows_hash(text: str, alias: str) -> str:
    """The rows hash of a range: SHA-256 of the rows' canonical texts in position order, joined by newlines."""
    return (f"pg_catalog.sha256(pg_catalog.convert_to(COALESCE(pg_catalog.string_agg({text}, E'\\n' "
            f"ORDER BY {alias}.txid, {alias}.id), ''), 'UTF8'))")


RANGE_AGG = f"pg_catalog.count(*) AS n, {rows_hash(CANON, 'a')} AS rows_hash"


def after(txid: str, id_: str) -> str:
    """SQL: whether the trail's row `a` comes after the position (txid, id_)."""
    return f"ROW(a.txid, a.id) OPERATOR(pg_catalog.>) ROW({txid}, {id_})"


def upto(txid: str, id_: str) -> str:
    """SQL: whether the trail's row `a` is at or before the position (txid, id_)."""
    return f"ROW(a.txid, a.id) OPERATOR(pg_catalog.<=) ROW({txid}, {id_})"


AFTER = after("$1", "$2")

# A batch to seal: the next rows (at most $4) after ($1, $2) below horizon $3.
NEXT_SQL = """
WITH b AS (SELECT a.txid, a.id, {canon} AS c FROM hush.audit_log a
            WHERE {after} a.txid OPERATOR(pg_catalog.<) $3
            ORDER BY a.txid, a.id LIMIT $4)
SELECT pg_catalog.count(*) AS n, {rows_hash} AS rows_hash,
       (SELECT ARRAY[l.txid, l.id] FROM b l ORDER BY l.txid DESC, l.id DESC LIMIT 1) AS last
  FROM b
"""
# The first seal starts at the beginning ($1 and $2 unused).
NEXT_FIRST_SQL = NEXT_SQL.format(canon=CANON, after="", rows_hash=rows_hash("b.c", "b"))
NEXT_AFTER_SQL = NEXT_SQL.format(canon=CANON, after=AFTER + " AND", rows_hash=rows_hash("b.c", "b"))

HORIZON_SQL = "SELECT pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot()) AS xmin"
# Maintenance runs one call at a time, or two sealers would fork the chain and a
# verifier could read seals and rows of different moments: SHARE UPDATE
# EXCLUSIVE on a table that only hush_retention may lock so, in a schema that
# no application role may use, so none can hold or queue any lock on it
# (sql/15_audit.sql). Secret calls take nothing it conflicts with. The advisory
# locks used before could be taken, and held, by any role at all.
MAINTENANCE_LOCK = "hush_private.maintenance_lock"
SERIALISE_SQL = "LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE" % MAINTENANCE_LOCK
# PostgreSQL's lock_not_available: a lock_timeout ran out.
LOCK_NOT_AVAILABLE = "55P03"
# How long maintenance waits for a lock when the caller's lock_timeout is 0
# (forever); the caller's own, when set, stands.
WAIT_MS = 5000
TIMEOUT_SQL = """
SELECT pg_catalog.current_setting('lock_timeout') AS setting, CAST(s.setting AS pg_catalog.int8) AS ms
  FROM pg_catalog.pg_settings s WHERE s.name OPERATOR(pg_catalog.=) 'lock_timeout'
"""
SET_TIMEOUT_SQL = "SELECT pg_catalog.set_config('lock_timeout', $1, true)"
# Sessions holding a lock on any of $1 (relation names), other than this one.
# Holders first, then waiters, each with its mode: a queued request blocks as
# surely as a granted one. By name through pg_class, not regclass: the caller
# may have no USAGE on hush_private, and a partition may be gone by now.
HOLDERS_SQL = """
SELECT l.pid, a.usename AS role, l.mode, l.granted,
       n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname AS rel
  FROM pg_catalog.pg_locks l
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) l.relation
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid OPERATOR(pg_catalog.=) l.pid
 WHERE l.locktype OPERATOR(pg_catalog.=) 'relation'
   AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                           WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
   AND n.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) c.relname OPERATOR(pg_catalog.=) ANY ($1)
   AND l.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
 ORDER BY l.granted DESC, l.pid LIMIT 6
"""
# The transaction the horizon stands at (hush._horizon_holder, superuser-owned:
# another role's state and transaction start are not visible to hush_retention).
HOLDER_SQL = """
SELECT h.pid, h.role, h.application_name, h.state, h.prepared_gid,
       pg_catalog.date_part('epoch', h.xact_age) AS age_s,
       h.pid IS NOT DISTINCT FROM pg_catalog.pg_backend_pid() AS mine
  FROM hush._horizon_holder($1) h LIMIT 1
"""
# A transaction that has held rows back this long gets a WARNING (the server
# log keeps it) rather than a NOTICE: sealing runs every minute.
HOLD_WARN_S = 60
HEAD_SQL = "SELECT s.id, s.hash FROM hush.audit_seals s ORDER BY s.id DESC LIMIT 1"
# Where sealed rows end: the furthest end of any seal (anchors never go past it).
COVERAGE_SQL = """
SELECT s.last_txid, s.last_id FROM hush.audit_seals s ORDER BY s.last_txid DESC, s.last_id DESC LIMIT 1
"""
UNSEALED_SQL = f"SELECT pg_catalog.count(*) AS n FROM hush.audit_log a WHERE {AFTER}"
ALL_UNSEALED_SQL = "SELECT pg_catalog.count(*) AS n FROM hush.audit_log a"

INSERT_SQL = """
INSERT INTO hush.audit_seals (id, kind, sealed_at, sealed_by, after_txid, after_id, last_txid, last_id,
                              row_count, rows_hash, prev_hash, hash)
SELECT s.id, s.kind, s.sealed_at, s.sealed_by, s.after_txid, s.after_id, s.last_txid, s.last_id,
       s.row_count, s.rows_hash, s.prev_hash,
       hush._seal_digest(s.id, s.kind, s.sealed_at, s.after_txid, s.after_id, s.last_txid, s.last_id,
                         s.row_count, s.rows_hash, s.prev_hash)
  FROM (SELECT pg_catalog.nextval('hush.audit_seals_id_seq'::pg_catalog.regclass) AS id, $1 AS kind,
               pg_catalog.clock_timestamp() AS sealed_at,
               $9 AS sealed_by,
               $2 AS after_txid, $3 AS after_id, $4 AS last_txid, $5 AS last_id, $6 AS row_count,
               $7 AS rows_hash, $8 AS prev_hash) s
RETURNING id, hash
"""
INSERT_TYPES = [T, I8, I8, I8, I8, I8, "pg_catalog.bytea", "pg_catalog.bytea", "pg_catalog.name"]


def _hex(b: Any) -> str | None:
    return None if b is None else bytes(b).hex()


def insert_seal(plpy: Any, caller: str, kind: str, after: Any, last: tuple, n: int, rows_hash: Any,
                prev_hash: Any) -> dict:
    p = plan(plpy, "seal.insert", INSERT_SQL, INSERT_TYPES)
    a_txid, a_id = after if after else (None, None)
    return plpy.execute(p, [kind, a_txid, a_id, last[0], last[1], n, rows_hash, prev_hash, caller])[0]


def coverage(plpy: Any) -> tuple | None:
    rows = plpy.execute(plan(plpy, "seal.coverage", COVERAGE_SQL, []))
    return (rows[0]["last_txid"], rows[0]["last_id"]) if rows else None


def unsealed(plpy: Any, end: tuple | None) -> int:
    if end is None:
        return plpy.execute(plan(plpy, "seal.all_unsealed", ALL_UNSEALED_SQL, []))[0]["n"]
    return plpy.execute(plan(plpy, "seal.unsealed", UNSEALED_SQL, [I8, I8]), [end[0], end[1]])[0]["n"]


# -- running maintenance ------------------------------------------------------------

def lock_timeout_ms(plpy: Any) -> tuple[str, int]:
    """The current lock_timeout: as set (to restore it), and in milliseconds (0: none)."""
    row = plpy.execute(plan(plpy, "maint.timeout", TIMEOUT_SQL, []))[0]
    return row["setting"], row["ms"]


def set_lock_timeout(plpy: Any, value: str) -> None:
    plpy.execute(plan(plpy, "maint.set_timeout", SET_TIMEOUT_SQL, [T]), [value])


def lock_rows(plpy: Any, relations: list[str]) -> list:
    return list(plpy.execute(plan(plpy, "maint.holders", HOLDERS_SQL, ["pg_catalog.text[]"]), [relations]))


def describe(rows: list) -> str:
    """For a message: "pid 123 (alice) holds AccessShareLock on hush.x, pid 124 (bob) waits for ..."."""
    return ", ".join("pid %d (%s) %s %s on %s" % (r["pid"], r["role"] or "?", "holds" if r["granted"] else
                                                  "waits for", r["mode"], r["rel"]) for r in rows)


def holders(plpy: Any, relations: list[str]) -> str:
    """Who else holds, or waits for, a lock on any of `relations` (names with their schema)."""
    return describe(lock_rows(plpy, relations))


def maintenance(plpy: Any, what: str, fn: Any, *args: Any) -> Any:
    """Run maintenance step `fn` as hush_retention, waiting for any lock at most the caller's
    lock_timeout (WAIT_MS when that is 0). When it runs out: MAINTENANCE_BUSY, nothing changed."""
    setting, ms = lock_timeout_ms(plpy)
    wait = ms if ms > 0 else WAIT_MS
    # Local to the transaction, and put back below: the caller's own setting is what it sees after.
    set_lock_timeout(plpy, "%dms" % wait)
    try:
        return privileged.call(plpy, privileged.RETENTION, fn, *args)
    except Fail as f:
        if f.code != LOCK_NOT_AVAILABLE:
            raise
        # Only maintenance steps can lock MAINTENANCE_LOCK at all: one holding it is
        # another call; anything else is a lock on a table the step needs.
        rows = lock_rows(plpy, [MAINTENANCE_LOCK])
        running = [r for r in rows if r["granted"]]
        raise Fail(MAINTENANCE_BUSY, "%s waited %d ms for a lock and gave up, so nothing was changed: %s" % (
            what, wait, "another maintenance call is running (%s)" % describe(rows) if running else
            "a session holds or waits for a lock on a table it needs (pg_locks shows which)"),
            hint="Run it again later. Maintenance waits at most the caller's lock_timeout (%d ms when it is 0); "
                 "pg_locks and pg_stat_activity show who holds what, and idle_in_transaction_session_timeout "
                 "ends sessions left idle in a transaction." % WAIT_MS) from None
    finally:
        set_lock_timeout(plpy, setting)


def serialise(plpy: Any) -> None:
    """Wait for any other maintenance call to finish (at most lock_timeout): the first thing every step does."""
    plpy.execute(plan(plpy, "maint.serialise", SERIALISE_SQL, []))


def _duration(seconds: float) -> str:
    s = int(seconds)
    return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) if s < 86400 else "%.1f days" % (s / 86400)


def held_back(plpy: Any, horizon: int, waiting: int) -> dict:
    """Name the transaction at the horizon, which keeps `waiting` rows unsealed: a NOTICE, or a
    WARNING once it has been open HOLD_WARN_S; and the result's horizon_* columns."""
    rows = plpy.execute(plan(plpy, "seal.holder", HOLDER_SQL, [I8]), [horizon])
    if not rows:  # it ended since: the next seal takes its rows
        return {}
    h = rows[0]
    age = float(h["age_s"] or 0)
    if h["prepared_gid"] is not None:
        who = "prepared transaction %s (owner %s)" % (json.dumps(h["prepared_gid"]), h["role"])
        todo = "COMMIT PREPARED or ROLLBACK PREPARED it"
    elif h["mine"]:
        who = "this session (pid %d), whose own transaction began before" % h["pid"]
        todo = "call hush.seal_audit() in a transaction of its own"
    else:
        who = "backend pid %d (role %s, application %s, %s)" % (
            h["pid"], h["role"], json.dumps(h["application_name"] or ""), h["state"] or "state unknown")
        todo = "end that transaction, or SELECT pg_terminate_backend(%d)" % h["pid"]
    msg = ("%d audit rows are not sealed yet: the oldest running transaction, open for %s, is %s; rows of "
           "transactions that got their id after it wait until it ends" % (waiting, _duration(age), who))
    hint = ("%s%s. idle_in_transaction_session_timeout ends sessions left idle in a transaction "
            "(docs/audit.md, \"Long transactions hold sealing back\")." % (todo[0].upper(), todo[1:]))
    (plpy.warning if age >= HOLD_WARN_S else plpy.notice)(msg, hint=hint)
    return {"horizon_pid": h["pid"], "horizon_role": h["role"], "horizon_age": "%.3f seconds" % age}


@api
def seal(plpy: Any) -> list[dict]:
    """Seal every row below the horizon that no seal covers yet, in seals of at most MAX_SEAL_ROWS."""
    return maintenance(plpy, "hush.seal_audit()", _seal)


@privileged.step(privileged.RETENTION)
def _seal(plpy: Any, caller: str) -> list[dict]:
    serialise(plpy)
    head = plpy.execute(plan(plpy, "seal.head", HEAD_SQL, []))
    prev_hash = head[0]["hash"] if head else None
    head_id = head[0]["id"] if head else None
    end = coverage(plpy)
    horizon = plpy.execute(plan(plpy, "seal.horizon", HORIZON_SQL, []))[0]["xmin"]
    first = plan(plpy, "seal.next_first", NEXT_FIRST_SQL, [I8, I8, I8, "pg_catalog.int4"])
    after = plan(plpy, "seal.next_after", NEXT_AFTER_SQL, [I8, I8, I8, "pg_catalog.int4"])
    seals, rows = 0, 0
    while True:
        batch = plpy.execute(first if end is None else after,
                             [None if end is None else end[0], None if end is None else end[1], horizon,
                              MAX_SEAL_ROWS])[0]
        if not batch["n"]:
            break
        last = (batch["last"][0], batch["last"][1])
        made = insert_seal(plpy, caller, "seal", end, last, batch["n"], batch["rows_hash"], prev_hash)
        prev_hash, head_id, end = made["hash"], made["id"], last
        seals += 1
        rows += batch["n"]
    result = {"seals_created": seals, "rows_sealed": rows, "unsealed_rows": unsealed(plpy, end),
              "head_seal_id": head_id, "head_hash": _hex(prev_hash),
              "horizon_pid": None, "horizon_role": None, "horizon_age": None}
    # Every row left is of a transaction at or after the horizon, held back by the one standing there.
    if result["unsealed_rows"]:
        result.update(held_back(plpy, horizon, result["unsealed_rows"]))
    return [result]


# -- verification ---------------------------------------------------------------

SEALS_SQL = """
SELECT s.id, s.kind, s.sealed_at OPERATOR(pg_catalog.>=) $1 OR $1 IS NULL AS recent,
       s.after_txid, s.after_id, s.last_txid, s.last_id, s.row_count, s.rows_hash, s.prev_hash, s.hash,
       s.hash OPERATOR(pg_catalog.=) hush._seal_digest(s.id, s.kind, s.sealed_at, s.after_txid, s.after_id,
                                                       s.last_txid, s.last_id, s.row_count, s.rows_hash,
                                                       s.prev_hash) AS intact
  FROM hush.audit_seals s ORDER BY s.id
"""
RANGE_SQL = f"SELECT {RANGE_AGG} FROM hush.audit_log a WHERE {AFTER} AND {upto('$3', '$4')}"
FROM_START_SQL = f"SELECT {RANGE_AGG} FROM hush.audit_log a WHERE {upto('$1', '$2')}"


def range_from_start(plpy: Any, last: tuple) -> dict:
    """Count and rows hash of every row up to `last` (a seal or anchor starting at the beginning)."""
    return plpy.execute(plan(plpy, "seal.from_start", FROM_START_SQL, [I8, I8]), [last[0], last[1]])[0]


def _pos(txid: Any, id_: Any) -> tuple | None:
    return None if txid is None else (txid, id_)


def _range_text(s: dict) -> str:
    start = _pos(s["after_txid"], s["after_id"])
    return "rows after position %s up to %s" % (
        "(start of trail)" if start is None else "(txid %d, id %d)" % start,
        "(txid %d, id %d)" % (s["last_txid"], s["last_id"]))


def check_rows(plpy: Any, seals: list[dict]) -> tuple[int, dict | None]:
    """Recompute the rows of `seals` (in position order); the rows counted and the first mismatch.
    One statement per seal: a range scan of the (txid, id) index of each partition."""
    checked = 0
    p = plan(plpy, "seal.range", RANGE_SQL, [I8, I8, I8, I8])
    for s in seals:
        if s["after_txid"] is None:
            got = range_from_start(plpy, (s["last_txid"], s["last_id"]))
        else:
            got = plpy.execute(p, [s["after_txid"], s["after_id"], s["last_txid"], s["last_id"]])[0]
        checked += got["n"]
        if got["n"] != s["row_count"] or bytes(got["rows_hash"]) != bytes(s["rows_hash"]):
            problem = ("rows_missing" if got["n"] < s["row_count"] else
                       "rows_added" if got["n"] > s["row_count"] else "rows_changed")
            return checked, {"bad_seal_id": s["id"], "problem": problem,
                             "detail": "%s %d: %s: sealed %d rows, found %d%s" % (
                                 s["kind"], s["id"], _range_text(s), s["row_count"], got["n"],
                                 "" if problem != "rows_changed" else ", and their hash differs")}
    return checked, None


def chain(plpy: Any, since: Any) -> tuple[list[dict], dict | None]:
    """Every seal, each link checked; the seals whose rows are to be checked; the first broken link."""
    seals = [dict(r) for r in plpy.execute(plan(plpy, "seal.all", SEALS_SQL, [TS]), [since])]
    prev: dict | None = None
    end: tuple | None = None
    for s in seals:
        if not s["intact"]:
            return seals, _bad(s, "seal_altered", "its hash does not match its fields")
        want = None if prev is None else bytes(prev["hash"])
        got = None if s["prev_hash"] is None else bytes(s["prev_hash"])
        if got != want:
            return seals, _bad(s, "chain_broken", "it does not link to seal %s: a seal was removed, inserted or "
                                                  "reordered" % (prev["id"] if prev else "(none)"))
        start, last = _pos(s["after_txid"], s["after_id"]), (s["last_txid"], s["last_id"])
        if s["kind"] == "seal":
            if start != end:
                return seals, _bad(s, "gap", "it starts at %s, but the previous seal ends at %s" % (start, end))
            end = last
        elif start is not None or end is None or last > end:
            return seals, _bad(s, "seal_altered", "an anchor must start at the beginning and end within the sealed rows")
        prev = s
    return seals, None


def _bad(s: dict, problem: str, why: str) -> dict:
    return {"bad_seal_id": s["id"], "problem": problem, "detail": "%s %d: %s" % (s["kind"], s["id"], why)}


def effective(seals: list[dict]) -> list[dict]:
    """The seals rows are checked against: the newest anchor and the seals after its end."""
    anchors = [s for s in seals if s["kind"] == "anchor"]
    if not anchors:
        return [s for s in seals if s["kind"] == "seal"]
    a = anchors[-1]
    a_end = (a["last_txid"], a["last_id"])
    return [a] + [s for s in seals if s["kind"] == "seal" and s["after_txid"] is not None
                  and (s["after_txid"], s["after_id"]) >= a_end]


@api
def verify(plpy: Any, since: Any, known_head: Any = None) -> list[dict]:
    if known_head is not None:
        known_head = known_head.strip().lower()
        if len(known_head) != 64 or any(c not in "0123456789abcdef" for c in known_head):
            raise Fail(INVALID_ARGUMENT, "known_head must be a seal's hash: 64 hex digits, as seal_audit() and "
                       "verify_audit() print it")
    return maintenance(plpy, "hush.verify_audit()", _verify, since, known_head)


# A head hash exported earlier names a seal the chain must still hold: seals are
# never deleted, so one missing was lost (a failover to a node that had not
# received it) or removed.
KNOWN_SQL = """
SELECT s.id FROM hush.audit_seals s WHERE s.hash OPERATOR(pg_catalog.=) pg_catalog.decode($1, 'hex')
"""


@privileged.step(privileged.RETENTION)
def _verify(plpy: Any, caller: str, since: Any, known_head: Any) -> list[dict]:
    serialise(plpy)
    seals, bad = chain(plpy, since)
    end = max(((s["last_txid"], s["last_id"]) for s in seals), default=None)
    result = {"ok": bad is None, "seals_checked": len(seals), "rows_checked": 0,
              "unsealed_rows": unsealed(plpy, end), "head_hash": _hex(seals[-1]["hash"]) if seals else None,
              "bad_seal_id": None, "problem": None, "detail": None}
    if bad is None:
        todo = [s for s in effective(seals) if s["recent"]]
        result["rows_checked"], bad = check_rows(plpy, todo)
        result["ok"] = bad is None
    if bad is None and known_head is not None and \
            not plpy.execute(plan(plpy, "seal.known", KNOWN_SQL, ["pg_catalog.text"]), [known_head]):
        result["ok"] = False
        bad = {"bad_seal_id": None, "problem": "seal_missing",
               "detail": "no seal has the head hash %s kept from an earlier seal or verify: seals (and the rows "
                         "they covered) were lost, as in a failover to a standby that had not received them, "
                         "or removed" % known_head}
    if bad is not None:
        result.update(bad)
    return [result]


def require_intact(plpy: Any, broken_link: dict | None, chosen: list[dict]) -> None:
    """Raise AUDIT_TAMPERED unless the chain (its first broken link, from chain()) and the rows of
    `chosen` verify: retention calls this before it re-seals what survives, so it never blesses an edit."""
    bad = broken_link
    if bad is None:
        _, bad = check_rows(plpy, chosen)
    if bad is not None:
        raise Fail(AUDIT_TAMPERED, "the audit trail does not match its seals (%s); nothing was removed" % bad["detail"],
                   hint="Run hush.verify_audit() and investigate before any retention run.",
                   detail=json.dumps(bad, sort_keys=True))
