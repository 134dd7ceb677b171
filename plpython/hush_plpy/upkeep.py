"""Secrets' upkeep by maintenance, and the reminders it leaves.

hush.maintain_secrets() (run hourly by the 'hush-secret-upkeep' job) does, for every
tenant that has something to do, what no save of a secret does in between: version
retention for versions that aged out since their secret's last save (retention.py), and
a reminder in hush.secret_events for each expiry and rotation falling due within the
tenant's expiry_warning (the reasons of hush.due_for_rotation, written once per secret,
reason and due time, so an hourly job reminds once). It removes reminders older than
event_days, logs one hush.maintenance_log row (task 'maintain_secrets': what monitoring
reads) and notifies the change channel of each tenant whose versions it destroyed. Each
tenant's part runs in a subtransaction of its own, and never waits for a version row
another session holds (retention skips it): a tenant whose part fails is named with its
SQLSTATE in the log row's detail ('failed') and a WARNING, and the others' is done.

It runs as hush_retention (maintenance.py's pattern): the lifecycle_scan policy shows it
which live secrets have an expiry, a schedule or retention of their own in any tenant,
hush.tenants which tenants keep versions for a limited time, the retention policies of
sql/12_lifecycle.sql the old reminders of every tenant; everything else tenant by tenant
with hush.tenant set, under owner_steps.

hush.secret_events() reads a tenant's reminders for a role that may list their names.
"""
from __future__ import annotations

import json

from . import access, audit, changes, lifecycle, maintenance, privileged, retention, seal, validate
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

EQ = "OPERATOR(pg_catalog.=)"
T = "pg_catalog.text"
TS = "pg_catalog.timestamptz"
MAX_EVENT_ROWS = 10000
COUNTS = ("versions_destroyed", "expiring", "rotation_due", "events_removed")

# The tenants with something to do, their change channels, and whether retention applies
# to any of their secrets (else it is not run: its scan covers every secret of the tenant):
# those whose own settings make retention apply to every secret, and those with a live
# secret the lifecycle_scan policy shows (an expiry, a rotation schedule, retention of its
# own). The conditions are written out as well: rows other policies show hush_retention
# are no concern here.
TENANTS_SQL = f"""
SELECT w.tenant_id, t.change_channel, pg_catalog.bool_or(w.retains) AS retains
  FROM (SELECT t.tenant_id, true AS retains FROM hush.tenants t
         WHERE t.max_versions OPERATOR(pg_catalog.>) 0
            OR t.destroy_versions_after OPERATOR(pg_catalog.>) '0'::pg_catalog.interval
        UNION ALL
        SELECT s.tenant_id, s.max_versions IS NOT NULL OR s.destroy_versions_after IS NOT NULL FROM hush.secrets s
         WHERE s.deleted_at IS NULL
           AND (s.expires_at IS NOT NULL OR s.rotate_every IS NOT NULL
                OR s.max_versions IS NOT NULL OR s.destroy_versions_after IS NOT NULL)) AS w
  LEFT JOIN hush.tenants t ON t.tenant_id {EQ} w.tenant_id
 GROUP BY w.tenant_id, t.change_channel
 ORDER BY w.tenant_id
"""
# The reminders of tenant $1 due within its expiry_warning of now(), by the reasons of
# hush.due_for_rotation: 'rotation_overdue' / 'rotation_due' about rotated_at + rotate_every,
# 'expired' / 'expiring' about expires_at. One row per (secret, event, due time): an
# expiring secret gets 'expiring' once, then 'expired' once; a rotation moves the due time.
# Ids in the order the reminders fall due, which is the order secret_events() lists them.
EVENTS_SQL = f"""
WITH d AS (SELECT d.id, d.name, d.reason AS event, d.due_at,
                  pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                      'version', d.version, 'pending_version', d.pending_version)) AS detail
             FROM ({lifecycle.due_rows("pg_catalog.now()", "NULL::pg_catalog.interval")}) AS d),
     i AS (INSERT INTO hush.secret_events (tenant_id, secret_id, name, event, due_at, detail)
           SELECT $1, d.id, d.name, d.event, d.due_at, d.detail FROM d ORDER BY d.due_at, d.name, d.event
           ON CONFLICT (tenant_id, secret_id, event, due_at) DO NOTHING
           RETURNING event)
SELECT pg_catalog.count(*) FILTER (WHERE i.event OPERATOR(pg_catalog.=) ANY ('{{expiring,expired}}')) AS expiring,
       pg_catalog.count(*) FILTER (WHERE i.event OPERATOR(pg_catalog.=) ANY ('{{rotation_due,rotation_overdue}}'))
           AS rotation_due
  FROM i
"""
# Reminders older than the cutoff $1, every tenant, in one statement (the retention
# policies of sql/12_lifecycle.sql admit those a day old at least, and nothing else).
REMOVE_SQL = """
WITH e AS (DELETE FROM hush.secret_events e WHERE e.at OPERATOR(pg_catalog.<) $1 RETURNING e.tenant_id)
SELECT e.tenant_id, pg_catalog.count(*) AS events_removed FROM e GROUP BY e.tenant_id
"""


@api
def maintain_secrets(plpy: Any, event_days: Any) -> list[dict]:
    """Retention, expiry and rotation reminders, and the removal of old reminders, every
    tenant; per tenant where anything was done, how much. Logged in hush.maintenance_log."""
    if event_days is None or not maintenance.MIN_RETENTION_DAYS <= event_days <= maintenance.MAX_RETENTION_DAYS:
        raise Fail(INVALID_ARGUMENT, "event_days must be between %d and %d" % (maintenance.MIN_RETENTION_DAYS,
                                                                             maintenance.MAX_RETENTION_DAYS))
    return seal.maintenance(plpy, "hush.maintain_secrets()", _maintain, event_days)


# SQLSTATE classes that end the whole job rather than one tenant's part: a cancel or a
# statement_timeout (57014), a shutdown, is meant for the call, not for the tenant it hit.
STOPS_THE_JOB = ("57",)


def _tenant_upkeep(plpy: Any, caller: str, t: dict) -> dict:
    """One tenant's retention and reminders, and its change channel told of what retention
    destroyed; the counts."""
    tenant = t["tenant_id"]
    access.act_in(plpy, tenant)
    written = plpy.execute(plan(plpy, "upkeep.events", EVENTS_SQL, [T]), [tenant])[0]
    # Last: the version rows it locks stay locked until the job commits.
    destroyed = retention.apply(plpy, tenant, None, caller) if t["retains"] else 0
    if destroyed:
        changes.notify(plpy, t["change_channel"])
    return {"tenant_id": tenant, "versions_destroyed": destroyed, "expiring": written["expiring"],
            "rotation_due": written["rotation_due"], "events_removed": 0}


def _failure(e: Exception) -> str:
    """The SQLSTATE of a tenant's failed upkeep; re-raises what must end the whole job."""
    code = e.code if isinstance(e, Fail) else privileged._error_data(e)[0]
    if code.startswith(STOPS_THE_JOB):
        raise e
    return code


@privileged.step(privileged.RETENTION)
def _maintain(plpy: Any, caller: str, event_days: int) -> list[dict]:
    seal.serialise(plpy)
    cutoff = plpy.execute(plan(plpy, "maint.cutoff", maintenance.CUTOFF_SQL, ["pg_catalog.int4"]),
                          [event_days])[0]["cutoff"]
    done: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for t in list(plpy.execute(plan(plpy, "upkeep.tenants", TENANTS_SQL, []))):
        # Each tenant on its own: whatever one tenant's rows (or a session holding them) make
        # fail undoes that tenant's part only, and the others' upkeep goes on.
        try:
            with plpy.subtransaction():
                done[t["tenant_id"]] = _tenant_upkeep(plpy, caller, t)
        except (plpy.SPIError, Fail) as e:
            failed[t["tenant_id"]] = _failure(e)
    for r in plpy.execute(plan(plpy, "upkeep.remove", REMOVE_SQL, [TS]), [cutoff]):
        row = done.setdefault(r["tenant_id"], {"tenant_id": r["tenant_id"], "versions_destroyed": 0,
                                               "expiring": 0, "rotation_due": 0})
        row["events_removed"] = r["events_removed"]
    result = [done[k] for k in sorted(done) if any(done[k][c] for c in COUNTS)]
    totals = [sum(r[c] for r in result) for c in COUNTS]
    if failed:
        plpy.warning("hush.maintain_secrets() could not do the upkeep of %d tenant(s): %s; the others' was done"
                     % (len(failed), ", ".join("%s (SQLSTATE %s)" % (k, failed[k]) for k in sorted(failed))),
                     hint="hush.maintenance_log's row (task 'maintain_secrets', detail 'failed') names them; "
                          "the next run tries again.")
    maintenance._log(plpy, caller, "maintain_secrets",
                     "pg_catalog.jsonb_build_object('event_days', $1, 'cutoff', $2, 'versions_destroyed', $3, "
                     "'expiring', $4, 'rotation_due', $5, 'events_removed', $6, 'tenants', $7::pg_catalog.jsonb, "
                     "'failed', $8::pg_catalog.jsonb)",
                     ["pg_catalog.int4", TS, "pg_catalog.int8", "pg_catalog.int8", "pg_catalog.int8",
                      "pg_catalog.int8", T, T],
                     [event_days, cutoff, *totals,
                      json.dumps({r["tenant_id"]: {c: r[c] for c in COUNTS} for r in result}, sort_keys=True),
                      json.dumps(failed, sort_keys=True)])
    return result


# A tenant's reminders ($1) since $2, oldest first, about names under the prefixes $4 the
# caller may list (NULL: the whole tenant).
LIST_SQL = f"""
SELECT e.id, e.at, e.name, e.event, e.due_at, e.detail FROM hush.secret_events e
 WHERE e.tenant_id {EQ} $1 AND ($2 IS NULL OR e.at OPERATOR(pg_catalog.>=) $2)
   AND ($4 IS NULL OR e.name OPERATOR(pg_catalog.^@) ANY ($4))
 ORDER BY e.id LIMIT $3
"""


@api
def secret_events(plpy: Any, tenant: str, since: Any, max_rows: Any) -> list:
    """A tenant's expiry and rotation reminders (expiring, expired, rotation_due,
    rotation_overdue), oldest first, about the names the caller may list."""
    validate.tenant(tenant)
    if not isinstance(max_rows, int) or not 1 <= max_rows <= MAX_EVENT_ROWS:
        raise Fail(INVALID_ARGUMENT, "max_rows must be between 1 and %d" % MAX_EVENT_ROWS)
    return privileged.call(plpy, privileged.OWNER, _secret_events, tenant, since, max_rows)


@privileged.step(privileged.OWNER)
def _secret_events(plpy: Any, caller: str, tenant: str, since: Any, max_rows: int) -> list:
    prefixes = access.enter(plpy, caller, tenant, cap="list")["prefixes"]
    if not prefixes:
        return []
    from .scope import listed
    rows = [dict(r) for r in plpy.execute(plan(plpy, "upkeep.list", LIST_SQL, [T, TS, "pg_catalog.int4",
                                                                             "pg_catalog.text[]"]),
                                          [tenant, since, max_rows, listed(prefixes)])]
    if rows:  # the table's ids count every tenant's reminders: each leaves as an opaque id of its own
        key = audit.cursor_key(plpy)
        for r in rows:
            r["id"] = audit.opaque_id(key, tenant, r["id"])
    return rows
