"""Keeping the audit trail: monthly partitions ahead of time, retention by
dropping whole partitions, the purge of soft-deleted secrets whose
recovery window has passed, and of OAuth events past their retention and
pending authorizations past their expiry. Authority is EXECUTE on the API function; the
work is a privileged step (privileged.py) run as hush_retention, whose
dispatcher pins TimeZone to UTC and DateStyle to ISO (see
sql/50_functions/70_maintenance.sql), so month bounds and the text of a partition bound are UTC whatever the
caller set. Times are compared in SQL; the one exception, the oldest and
newest removed row across partitions, compares ISO text in UTC, which sorts in
time order.
"""
from __future__ import annotations

import json

from . import access, changes, privileged, seal
from .access import plan
from .errors import INVALID_ARGUMENT, MAINTENANCE_BUSY, Fail, api

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

T = "pg_catalog.text"
I8 = "pg_catalog.int8"
TS = "pg_catalog.timestamptz"
MAX_MONTHS_AHEAD = 60
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 36500

# Partition creation, retention and purge run one at a time, and never beside a
# sealer or a verifier (seal.serialise). Two locks they need are ones every
# audited call queues behind while they are waited for: dropping a partition
# takes ACCESS EXCLUSIVE on the trail's parent, attaching one takes it on the
# DEFAULT partition. Those are tried for at most ATTEMPT_MS at a time, with
# pauses between the tries in which secret calls go on, so that a session idle
# in its transaction costs other calls at most ATTEMPT_MS a try, never its
# whole idle time. DETACH PARTITION ... CONCURRENTLY, which would not need the
# parent's ACCESS EXCLUSIVE, is refused beside a DEFAULT partition and inside a
# function.
ATTEMPT_MS = 100
PAUSES_S = (0.1, 0.2, 0.4, 0.8, 1.6)
SLEEP_SQL = "SELECT pg_catalog.pg_sleep($1)"

# The monthly partitions, with bounds parsed from their text (UTC here).
PARTITIONS_SQL = """
SELECT n.nspname AS schema, c.relname AS name,
       CAST((pg_catalog.regexp_match(b.bound, 'FROM \\(''([^'']*)''\\)'))[1] AS pg_catalog.timestamptz) AS lo,
       CAST((pg_catalog.regexp_match(b.bound, 'TO \\(''([^'']*)''\\)'))[1] AS pg_catalog.timestamptz) AS hi
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 CROSS JOIN LATERAL (SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound) b
 WHERE i.inhparent OPERATOR(pg_catalog.=) 'hush.audit_log'::pg_catalog.regclass
   AND b.bound OPERATOR(pg_catalog.<>) 'DEFAULT'
 ORDER BY 3
"""
# The months to have: this one, $1 ahead, and any month whose rows wait in the
# DEFAULT partition (no empty partitions for the months in between).
MONTHS_SQL = """
SELECT b.lo, b.hi, b.name,
       -- the bounds as literals for ATTACH PARTITION (ISO, UTC: pinned by the function)
       pg_catalog.quote_literal(CAST(b.lo AS pg_catalog.text)) AS lo_literal,
       pg_catalog.quote_literal(CAST(b.hi AS pg_catalog.text)) AS hi_literal
  FROM (SELECT m.lo, m.lo OPERATOR(pg_catalog.+) '1 month'::pg_catalog.interval AS hi,
               'audit_log_' OPERATOR(pg_catalog.||) pg_catalog.to_char(m.lo, 'YYYY_MM') AS name
  FROM (SELECT g.m AS lo
          FROM pg_catalog.generate_series(pg_catalog.date_trunc('month', pg_catalog.now()),
                 pg_catalog.date_trunc('month', pg_catalog.now()) OPERATOR(pg_catalog.+) pg_catalog.make_interval(months => $1),
                 '1 month'::pg_catalog.interval) AS g(m)
        UNION
        SELECT DISTINCT pg_catalog.date_trunc('month', d.at) FROM hush.audit_log_default d) AS m) AS b
 ORDER BY b.lo
"""
IN_DEFAULT_SQL = """
SELECT pg_catalog.count(*) AS n FROM hush.audit_log_default d
 WHERE d.at OPERATOR(pg_catalog.>=) $1 AND d.at OPERATOR(pg_catalog.<) $2
"""
# A partition is built beside the parent and then attached: ATTACH PARTITION
# takes SHARE UPDATE EXCLUSIVE on the parent, which inserts do not wait for
# (CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE). Rows that waited
# in the DEFAULT partition move over first, ids and all, so seals still hold.
CREATE_SQL = "CREATE TABLE hush.{name} (LIKE hush.audit_log)"
LOCK_DEFAULT_SQL = "LOCK TABLE hush.audit_log_default IN ACCESS EXCLUSIVE MODE"
MOVE_SQL = """
WITH moved AS (DELETE FROM hush.audit_log_default d
                WHERE d.at OPERATOR(pg_catalog.>=) $1 AND d.at OPERATOR(pg_catalog.<) $2 RETURNING d.*)
INSERT INTO hush.{name} SELECT * FROM moved
"""
ATTACH_SQL = "ALTER TABLE hush.audit_log ATTACH PARTITION hush.{name} FOR VALUES FROM ({lo}) TO ({hi})"
# What every partition of the trail carries, the DEFAULT one included: the install and
# every update apply it to each partition there is (sql/idempotent/80_triggers.sql), so
# each statement leaves a partition that has it unchanged. A monthly partition belongs to
# hush_retention, the role that drops it when it expires; it keeps only the rights to read
# and delete, and no other role has any (rows come in through the parent).
SETUP_SQL = [
    "CREATE INDEX IF NOT EXISTS {name}_tenant_at ON hush.{name} (tenant_id, at)",
    "CREATE INDEX IF NOT EXISTS {name}_position ON hush.{name} (txid, id)",
    changes.INDEX_SQL,  # hush.changes(): a tenant's changes to secrets in seal order
    "CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON hush.{name}"
    " FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only()",
    "REVOKE ALL ON hush.{name} FROM PUBLIC",
    "REVOKE INSERT, UPDATE, TRUNCATE, REFERENCES, TRIGGER ON hush.{name} FROM hush_retention",
]


def briefly(plpy: Any, work: Any) -> bool:
    """Run work() in a subtransaction whose lock waits last at most ATTEMPT_MS (or the
    maintenance wait, if shorter); again after each pause of PAUSES_S while it times out.
    True once it is done; False (and nothing of it done) when every try timed out."""
    setting, wait = seal.lock_timeout_ms(plpy)
    brief = "%dms" % (min(ATTEMPT_MS, wait) if wait > 0 else ATTEMPT_MS)
    for pause in PAUSES_S + (None,):
        try:
            with plpy.subtransaction():
                seal.set_lock_timeout(plpy, brief)
                work()
                seal.set_lock_timeout(plpy, setting)
            return True
        except plpy.SPIError as e:
            if getattr(e, "sqlstate", None) != seal.LOCK_NOT_AVAILABLE:
                raise
        if pause is None:
            return False
        plpy.execute(plan(plpy, "maint.sleep", SLEEP_SQL, ["pg_catalog.float8"]), [pause])
    return False


def _log(plpy: Any, caller: str, task: str, detail_sql: str, types: list[str], args: list) -> None:
    """A maintenance_log row whose detail jsonb is built in SQL (timestamps in ISO form);
    the last parameter is the role that asked for the work."""
    p = plan(plpy, "maint.log." + task, "INSERT INTO hush.maintenance_log (task, detail, run_by) SELECT '%s', %s, $%d"
             % (task, detail_sql, len(types) + 1), types + ["pg_catalog.name"])
    plpy.execute(p, args + [caller])


def _partitions(plpy: Any) -> list[dict]:
    return list(plpy.execute(plan(plpy, "maint.partitions", PARTITIONS_SQL, [])))


@api
def create_partitions(plpy: Any, months_ahead: Any) -> list[dict]:
    """Create the missing monthly partitions up to `months_ahead` months from now; the new ones."""
    if months_ahead is None or not 0 <= months_ahead <= MAX_MONTHS_AHEAD:
        raise Fail(INVALID_ARGUMENT, "months_ahead must be between 0 and %d" % MAX_MONTHS_AHEAD)
    return seal.maintenance(plpy, "hush.create_audit_partitions()", _create_partitions, months_ahead)


@privileged.step(privileged.RETENTION)
def _create_partitions(plpy: Any, caller: str, months_ahead: int) -> list[dict]:
    # Serialised with sealers too: a sealer that planned before the attach and read after the
    # move would see the moved rows in neither partition, and seal past them.
    seal.serialise(plpy)
    have = {p["name"] for p in _partitions(plpy)}
    made = []
    for m in list(plpy.execute(plan(plpy, "maint.months", MONTHS_SQL, ["pg_catalog.int4"]), [months_ahead])):
        name = m["name"]
        if name in have:
            continue
        plpy.execute(CREATE_SQL.format(name=name))
        moved: list[int] = []

        def attach(m: Any = m, name: str = name) -> None:
            # The DEFAULT partition first, which ATTACH locks anyway: no row for the month can
            # land there between the move and the attach.
            plpy.execute(plan(plpy, "maint.lock_default", LOCK_DEFAULT_SQL, []))
            n = plpy.execute(plan(plpy, "maint.in_default", IN_DEFAULT_SQL, [TS, TS]), [m["lo"], m["hi"]])[0]["n"]
            if n:
                plpy.execute(plpy.prepare(MOVE_SQL.format(name=name), [TS, TS]), [m["lo"], m["hi"]])
            plpy.execute(ATTACH_SQL.format(name=name, lo=m["lo_literal"], hi=m["hi_literal"]))
            moved[:] = [n]
        if not briefly(plpy, attach):
            raise Fail(MAINTENANCE_BUSY, "hush.create_audit_partitions() could not attach hush.%s: "
                       "hush.audit_log_default stayed in use through every try (%s), so nothing was created" % (
                           name, seal.holders(plpy, ["hush.audit_log_default"]) or "no holder left"),
                       hint="Run it again later; idle_in_transaction_session_timeout ends sessions left idle in a "
                            "transaction. Rows go to the DEFAULT partition meanwhile, and move in then.")
        waiting = moved[0]
        for sql in SETUP_SQL:
            plpy.execute(sql.format(name=name))
        _log(plpy, caller, "create_audit_partition",
             "pg_catalog.jsonb_build_object('partition', $1, 'from', $2, 'to', $3, 'rows_moved', $4)",
             [T, TS, TS, I8], ["hush." + name, m["lo"], m["hi"], waiting])
        made.append({"partition": "hush." + name, "range_from": m["lo"], "range_to": m["hi"], "rows_moved": waiting})
    return made


# -- retention --------------------------------------------------------------------

CUTOFF_SQL = "SELECT pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => $1) AS cutoff"
# Facts about rows about to go: how many, their time span, the newest position.
GOING_SQL = """
SELECT pg_catalog.count(*) AS n, pg_catalog.min(a.at) AS oldest, pg_catalog.max(a.at) AS newest,
       (SELECT ARRAY[l.txid, l.id] FROM hush.{name} l WHERE {cond}
         ORDER BY l.txid DESC, l.id DESC LIMIT 1) AS last
  FROM hush.{name} a WHERE {cond_a}
"""
EXPIRING_SQL = f"""
SELECT p.name, p.hi OPERATOR(pg_catalog.<=) $1 AS whole FROM ({PARTITIONS_SQL}) p WHERE p.lo OPERATOR(pg_catalog.<) $1
"""
# The partitions themselves first, which audited calls do not touch: when one is
# in use, the try fails without ever queueing for the parent.
LOCK_DROPPED_SQL = "LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"
DROP_SQL = "DROP TABLE {names}"
DELETE_SQL = "DELETE FROM hush.{name} a WHERE a.at OPERATOR(pg_catalog.<) $1"
# What an anchor re-seals: the rows up to its end that survive, all of them at
# or after the cutoff (every row before it goes). Hashed before anything goes,
# so that the drops, whose lock secret calls wait for, are the last thing done.
KEPT_SQL = f"""
SELECT {seal.RANGE_AGG} FROM hush.audit_log a
 WHERE ROW(a.txid, a.id) OPERATOR(pg_catalog.<=) ROW($1, $2) AND a.at OPERATOR(pg_catalog.>=) $3
"""
# Rows that stay but sit at or below `last`: where an anchor must start checking.
FIRST_SURVIVOR_SQL = """
SELECT ARRAY[a.txid, a.id] AS pos FROM hush.audit_log a
 WHERE a.at OPERATOR(pg_catalog.>=) $1 AND ROW(a.txid, a.id) OPERATOR(pg_catalog.<=) ROW($2, $3)
 ORDER BY a.txid, a.id LIMIT 1
"""


def _going(plpy: Any, name: str, cutoff: Any, whole: bool) -> dict:
    cond = "true" if whole else "l.at OPERATOR(pg_catalog.<) $1"
    cond_a = "true" if whole else "a.at OPERATOR(pg_catalog.<) $1"
    sql = GOING_SQL.format(name=name, cond=cond, cond_a=cond_a)
    return plpy.execute(plpy.prepare(sql, [] if whole else [TS]), [] if whole else [cutoff])[0]


def _anchor_end(seals: list[dict], newest_removed: tuple) -> tuple:
    """The end of the seal holding the newest removed row (or of the last seal, if that row was unsealed)."""
    ends = sorted((s["last_txid"], s["last_id"]) for s in seals)
    return next((e for e in ends if e >= newest_removed), ends[-1])


@api
def cleanup(plpy: Any, retention_days: Any) -> list[dict]:
    """Remove audit rows older than `retention_days`: whole partitions are dropped, the one
    straddling the cutoff (and the DEFAULT partition) lose their expired rows. Logged, and anchored."""
    if retention_days is None or not MIN_RETENTION_DAYS <= retention_days <= MAX_RETENTION_DAYS:
        raise Fail(INVALID_ARGUMENT, "retention_days must be between %d and %d" % (MIN_RETENTION_DAYS,
                                                                                   MAX_RETENTION_DAYS))
    return seal.maintenance(plpy, "hush.cleanup_audit_logs()", _cleanup, retention_days)


class _Deferred(Exception):
    """Every try to drop the expired partitions timed out: undo the rest too."""


def _drop(plpy: Any, names: list[str]) -> None:
    quoted = ", ".join("hush." + plpy.quote_ident(n) for n in names)
    plpy.execute(LOCK_DROPPED_SQL.format(names=quoted))
    plpy.execute(DROP_SQL.format(names=quoted))


@privileged.step(privileged.RETENTION)
def _cleanup(plpy: Any, caller: str, retention_days: int) -> list[dict]:
    seal.serialise(plpy)
    cutoff = plpy.execute(plan(plpy, "maint.cutoff", CUTOFF_SQL, ["pg_catalog.int4"]), [retention_days])[0]["cutoff"]
    # What goes: partitions wholly before the cutoff (empty ones too), and expired rows of the rest.
    plans = [(p["name"], p["whole"]) for p in plpy.execute(plan(plpy, "maint.expiring", EXPIRING_SQL, [TS]), [cutoff])]
    plans.append(("audit_log_default", False))
    gone = [(name, whole, _going(plpy, name, cutoff, whole)) for name, whole in plans]
    gone = [g for g in gone if g[1] or g[2]["n"]]
    removed = sum(g[2]["n"] for g in gone)
    result = {"cutoff": cutoff, "partitions_dropped": sum(1 for g in gone if g[1]), "rows_removed": removed,
              "oldest_removed": min((g[2]["oldest"] for g in gone if g[2]["n"]), default=None),
              "newest_removed": max((g[2]["newest"] for g in gone if g[2]["n"]), default=None),
              "anchor_seal_id": None, "partitions_deferred": []}
    if not gone:
        return [result]
    seals, broken_link = seal.chain(plpy, None) if removed else ([], None)
    end = None
    if seals:
        end = _anchor_end(seals, max(tuple(g[2]["last"]) for g in gone if g[2]["n"]))
        # Check what will be re-sealed before anything goes, so an anchor never blesses an edit.
        first = plpy.execute(plan(plpy, "maint.first_survivor", FIRST_SURVIVOR_SQL, [TS, I8, I8]),
                             [cutoff, end[0], end[1]])
        start = tuple(first[0]["pos"]) if first else end
        seal.require_intact(plpy, broken_link, [s for s in seal.effective(seals) if first
                                   and (s["last_txid"], s["last_id"]) >= start
                                   and (s["after_txid"] is None or (s["after_txid"], s["after_id"]) < end)])
    kept = None if end is None else plpy.execute(plan(plpy, "maint.kept", KEPT_SQL, [I8, I8, TS]),
                                                 [end[0], end[1], cutoff])[0]
    dropping = [g[0] for g in gone if g[1]]
    try:
        with plpy.subtransaction():
            for name, whole, _facts in gone:
                if not whole:
                    plpy.execute(plpy.prepare(DELETE_SQL.format(name=name), [TS]), [cutoff])
            if dropping and not briefly(plpy, lambda: _drop(plpy, dropping)):
                raise _Deferred()
    except _Deferred:
        # All or nothing: an anchor must re-seal exactly what survives, checked above for this plan.
        deferred = ["hush." + n for n in dropping]
        result.update(partitions_dropped=0, rows_removed=0, oldest_removed=None, newest_removed=None,
                      partitions_deferred=deferred)
        plpy.warning("hush.cleanup_audit_logs() removed nothing: %s stayed in use through every try to drop %s "
                     "(held by %s); the next run tries again" % (
                         ", ".join(deferred), "them" if len(deferred) > 1 else "it",
                         seal.holders(plpy, deferred + ["hush.audit_log"]) or "no one now"),
                     hint="A session left idle in a transaction after an audited call keeps its lock on "
                          "hush.audit_log; idle_in_transaction_session_timeout ends such sessions.")
        removed = 0
    if not result["partitions_deferred"] and end is not None:
        made = seal.insert_seal(plpy, caller, "anchor", None, end, kept["n"], kept["rows_hash"], seals[-1]["hash"])
        result["anchor_seal_id"] = made["id"]
    _log(plpy, caller, "cleanup_audit_logs",
         "pg_catalog.jsonb_build_object('retention_days', $1, 'cutoff', $2, 'rows_removed', $3, "
         "'partitions_dropped', $4, 'oldest_removed', $5, 'newest_removed', $6, 'anchor_seal_id', $7, "
         "'partitions_deferred', $8)",
         ["pg_catalog.int4", TS, I8, "pg_catalog.text[]", TS, TS, I8, "pg_catalog.text[]"],
         [retention_days, cutoff, removed, [] if result["partitions_deferred"] else ["hush." + n for n in dropping],
          result["oldest_removed"], result["newest_removed"], result["anchor_seal_id"],
          result["partitions_deferred"]])
    return [result]


# -- purge of soft-deleted secrets -------------------------------------------------

# Soft-deleted secrets past their tenant's recovery window, every tenant (the
# purge_scan policy lets hush_retention see deleted rows of every tenant), and the
# tenant's change channel, told of the purge.
EXPIRED_SQL = """
SELECT s.tenant_id, pg_catalog.array_agg(s.id) AS ids, t.change_channel
  FROM hush.secrets s LEFT JOIN hush.tenants t ON t.tenant_id OPERATOR(pg_catalog.=) s.tenant_id
 WHERE s.deleted_at IS NOT NULL
   AND s.deleted_at OPERATOR(pg_catalog.<) (pg_catalog.now()
       OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => COALESCE(t.recovery_days, 30)))
 GROUP BY s.tenant_id, t.change_channel ORDER BY s.tenant_id
"""
# Versions go with the secret (ciphertext and wrapped data key included); one
# audit row per secret says how many.
PURGE_SQL = """
WITH v AS (DELETE FROM hush.secret_versions v
            WHERE v.tenant_id OPERATOR(pg_catalog.=) $1 AND v.secret_id OPERATOR(pg_catalog.=) ANY ($2)
           RETURNING v.secret_id),
     s AS (DELETE FROM hush.secrets s
            WHERE s.tenant_id OPERATOR(pg_catalog.=) $1 AND s.id OPERATOR(pg_catalog.=) ANY ($2)
              AND s.deleted_at IS NOT NULL
           RETURNING s.id, s.name, s.current_version, s.deleted_at),
     a AS (INSERT INTO hush.audit_log (tenant_id, action, secret_id, secret_name, version, detail, db_role)
           SELECT $1, 'purge', s.id, s.name, s.current_version,
                  pg_catalog.jsonb_build_object('deleted_at', s.deleted_at, 'versions',
                      (SELECT pg_catalog.count(*) FROM v WHERE v.secret_id OPERATOR(pg_catalog.=) s.id)), $3
             FROM s)
SELECT pg_catalog.count(*) AS n FROM s
"""


@api
def purge_deleted(plpy: Any) -> list[dict]:
    """Purge soft-deleted secrets whose tenant's recovery window has passed; per tenant, how many."""
    return seal.maintenance(plpy, "hush.purge_deleted_secrets()", _purge_deleted)


@privileged.step(privileged.RETENTION)
def _purge_deleted(plpy: Any, caller: str) -> list[dict]:
    seal.serialise(plpy)
    done = []
    for row in plpy.execute(plan(plpy, "maint.expired", EXPIRED_SQL, [])):
        access.act_in(plpy, row["tenant_id"])
        n = plpy.execute(plan(plpy, "maint.purge", PURGE_SQL, [T, "pg_catalog.uuid[]", "pg_catalog.name"]),
                         [row["tenant_id"], row["ids"], caller])[0]["n"]
        if n:
            changes.notify(plpy, row["change_channel"])
        done.append({"tenant_id": row["tenant_id"], "secrets_purged": n})
    if done:
        _log(plpy, caller, "purge_deleted_secrets", "pg_catalog.jsonb_build_object('tenants', $1::pg_catalog.jsonb)",
             [T], [json.dumps({d["tenant_id"]: d["secrets_purged"] for d in done}, sort_keys=True)])
    return done


# -- OAuth: old events and expired pending authorizations ---------------------------

# Both tables' rows of every tenant, in one statement each (a loop over tenants would
# give each its own subtransaction). hush_retention's row policies on them
# (retention_expired, retention_purge: sql/18_oauth.sql) admit expired pending rows and
# events older than a day, and nothing else; $1 is the cutoff.
OAUTH_CLEANUP_SQL = """
WITH e AS (DELETE FROM hush.oauth_events e WHERE e.at OPERATOR(pg_catalog.<) $1 RETURNING e.tenant_id),
     p AS (DELETE FROM hush.oauth_pending p WHERE p.expires_at OPERATOR(pg_catalog.<=) pg_catalog.now()
           RETURNING p.tenant_id)
SELECT u.tenant_id, pg_catalog.count(*) FILTER (WHERE u.events) AS events_removed,
       pg_catalog.count(*) FILTER (WHERE NOT u.events) AS pending_removed
  FROM (SELECT e.tenant_id, true AS events FROM e UNION ALL SELECT p.tenant_id, false FROM p) u
 GROUP BY u.tenant_id ORDER BY u.tenant_id
"""


@api
def cleanup_oauth(plpy: Any, event_days: Any) -> list[dict]:
    """Remove OAuth events older than `event_days` and expired pending authorizations, every
    tenant; per tenant, how many. Logged in hush.maintenance_log."""
    if event_days is None or not MIN_RETENTION_DAYS <= event_days <= MAX_RETENTION_DAYS:
        raise Fail(INVALID_ARGUMENT, "event_days must be between %d and %d" % (MIN_RETENTION_DAYS,
                                                                             MAX_RETENTION_DAYS))
    return seal.maintenance(plpy, "hush.cleanup_oauth()", _cleanup_oauth, event_days)


@privileged.step(privileged.RETENTION)
def _cleanup_oauth(plpy: Any, caller: str, event_days: int) -> list[dict]:
    seal.serialise(plpy)
    cutoff = plpy.execute(plan(plpy, "maint.cutoff", CUTOFF_SQL, ["pg_catalog.int4"]), [event_days])[0]["cutoff"]
    done = [dict(r) for r in plpy.execute(plan(plpy, "maint.oauth_cleanup", OAUTH_CLEANUP_SQL, [TS]), [cutoff])]
    _log(plpy, caller, "cleanup_oauth",
         "pg_catalog.jsonb_build_object('event_days', $1, 'cutoff', $2, 'events_removed', $3, "
         "'pending_removed', $4, 'tenants', $5::pg_catalog.jsonb)",
         ["pg_catalog.int4", TS, I8, I8, T],
         [event_days, cutoff, sum(d["events_removed"] for d in done), sum(d["pending_removed"] for d in done),
          json.dumps({d["tenant_id"]: [d["events_removed"], d["pending_removed"]] for d in done}, sort_keys=True)])
    return done
