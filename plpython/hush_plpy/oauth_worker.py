"""What hush oauth-worker leases, and when: the connections due for a refresh in every
tenant the worker's role serves, leased in one committed statement (each with a lease
token of its own, oauth_lease.py), and how long it may sleep until the next falls due.
The worker opens its leases and stores its refreshes by the batch (oauth_batch.py)."""
from __future__ import annotations

from . import access, oauth_grants, oauth_lease, privileged
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api
from .oauth_base import I4, LE, NM, REFRESHER, TA
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

# When a connection falls due: `window` before it expires, or half its lifetime
# before when that is shorter (tokens that live less than twice the window are
# not refreshed round after round); with a keepalive, that long after its last
# refresh; when someone asked for one (oauth_request_refresh: at once, or once the
# connection's last refresh is a minute old; q is its row of hush.oauth_refresh_requests,
# oauth_lease.REQUESTS_JOIN). NULL: never (a token without expiry, no keepalive, no
# request). $1 = window, $2 = keepalive.
DUE_AT = f"""LEAST(c.expires_at OPERATOR(pg_catalog.-) LEAST(pg_catalog.make_interval(secs => $1),
                    (c.expires_at OPERATOR(pg_catalog.-) COALESCE(c.refreshed_at, c.created_at))
                    OPERATOR(pg_catalog./) 2),
              CASE WHEN $2 IS NOT NULL AND c.has_refresh_token
                   THEN COALESCE(c.refreshed_at, c.created_at)
                        OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $2) END,
              {oauth_lease.REQUESTED_AT})"""
REFRESHABLE = f"""c.status {EQ} 'active' AND (c.has_refresh_token OR c.grant_type {EQ} 'client_credentials')"""
# What the worker may lease now: refreshable, unleased, not backing off, due.
WORKER_DUE = f"""{REFRESHABLE}
     AND (c.lease_until IS NULL OR c.lease_until {LE} pg_catalog.now())
     AND (c.next_attempt_at IS NULL OR c.next_attempt_at {LE} pg_catalog.now())
     AND {DUE_AT} {LE} pg_catalog.now()"""
# Due connections of every tenant the calling worker serves, leased in one
# committed statement (SKIP LOCKED: workers side by side take different rows).
# Fair across tenants: each tenant's due connections are numbered (those a reader
# asked for, oauth_request_refresh, first: it is waiting; then by expiry), and a
# batch takes every tenant's first before anyone's second, so one tenant with
# thousands due (or whose provider never answers) cannot fill every batch. The
# numbering reads the snapshot; the locking scan checks WORKER_DUE again on the
# row it locks (a row another worker leased, or a caller refreshed, meanwhile is
# passed over), and LIMIT counts only rows it could lock.
# Run as hush_refresher, whose row policy shows it every tenant's connections:
# oauth_grants.SERVES, keyed on the caller the step's ticket names, is what confines it.
WORKER_CLAIM_SQL = f"""
WITH ranked AS MATERIALIZED (
  SELECT c.tenant_id, c.provider, c.account,
         pg_catalog.row_number() OVER (PARTITION BY c.tenant_id
                                       ORDER BY q.requested_at IS NULL, c.expires_at NULLS LAST,
                                                c.provider, c.account) AS turn
    FROM hush.oauth_connections c {oauth_lease.REQUESTS_JOIN}
   WHERE {WORKER_DUE}
     AND {oauth_grants.SERVES.format(caller="$6")}),
due AS (
  SELECT c.tenant_id, c.provider, c.account FROM hush.oauth_connections c
    JOIN ranked r ON c.tenant_id {EQ} r.tenant_id AND c.provider {EQ} r.provider AND c.account {EQ} r.account
    {oauth_lease.REQUESTS_JOIN}
   WHERE {WORKER_DUE}
   ORDER BY r.turn, q.requested_at IS NULL, c.expires_at NULLS LAST
   LIMIT $3
   FOR UPDATE OF c SKIP LOCKED)
UPDATE hush.oauth_connections c
   SET lease_holder = $4,
       lease_until = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5)
  FROM due
 WHERE c.tenant_id {EQ} due.tenant_id AND c.provider {EQ} due.provider AND c.account {EQ} due.account
RETURNING c.tenant_id, c.provider, c.account, c.generation, c.expires_at
"""
# Each leased row gets a lease token of its own (oauth_lease.py), of which the row keeps the
# hash: a second statement of the same step, every row at once.
WORKER_TOKENS_SQL = f"""
UPDATE hush.oauth_connections c SET lease_token_hash = u.h
  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))
       AS u(t, p, a, h)
 WHERE c.tenant_id {EQ} u.t AND c.provider {EQ} u.p AND c.account {EQ} u.a
"""
# Seconds until the next connection the worker serves falls due (0 when one is
# due now, NULL when none ever will): how long the worker may sleep.
NEXT_DUE_SQL = f"""
SELECT GREATEST(0, pg_catalog.date_part('epoch', pg_catalog.min(d.at) OPERATOR(pg_catalog.-) pg_catalog.now()))
       AS seconds
  FROM (SELECT CASE WHEN {DUE_AT} IS NOT NULL THEN GREATEST({DUE_AT}, c.next_attempt_at, c.lease_until) END AS at
          FROM hush.oauth_connections c {oauth_lease.REQUESTS_JOIN}
         WHERE {REFRESHABLE} AND {oauth_grants.SERVES.format(caller="$3")}) d
"""


def check_args(window_seconds: Any, keepalive_seconds: Any) -> None:
    for name, v, optional in (("window_seconds", window_seconds, False),
                              ("keepalive_seconds", keepalive_seconds, True)):
        if (v is not None or not optional) and (not isinstance(v, int) or not 1 <= v <= 31536000):
            raise Fail(INVALID_ARGUMENT, "%s must be between 1 and 31536000" % name)


@api
def worker_next_due(plpy: Any, window_seconds: Any, keepalive_seconds: Any) -> Any:
    """Seconds until a connection the caller serves falls due (0: now; NULL: none will)."""
    check_args(window_seconds, keepalive_seconds)
    return privileged.call(plpy, REFRESHER, _worker_next_due, window_seconds, keepalive_seconds)


@privileged.step(REFRESHER)
def _worker_next_due(plpy: Any, caller: str, window_seconds: int, keepalive_seconds: Any) -> Any:
    p = plan(plpy, "oauth.worker_next_due", NEXT_DUE_SQL, [I4, I4, NM])
    return plpy.execute(p, [window_seconds, keepalive_seconds, caller])[0]["seconds"]


@api
def worker_claim(plpy: Any, holder: Any, batch_size: Any, window_seconds: Any, lease_seconds: Any,
                 keepalive_seconds: Any) -> list:
    """Lease up to batch_size connections due for a refresh (expiring within window_seconds, or
    within half their lifetime if that is less; or idle for keepalive_seconds) in the tenants
    the caller serves; no token is read. Each row comes with its lease token."""
    oauth_lease.check_args(holder, lease_seconds, required=True)
    check_args(window_seconds, keepalive_seconds)
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 10000:
        raise Fail(INVALID_ARGUMENT, "batch_size must be between 1 and 10000")
    return privileged.call(plpy, REFRESHER, lease_due, holder, batch_size, window_seconds, lease_seconds,
                           keepalive_seconds)


@privileged.step(REFRESHER)
def lease_due(plpy: Any, caller: str, holder: str, batch_size: int, window_seconds: int, lease_seconds: Any,
              keepalive_seconds: Any) -> list:
    """In a step: lease up to batch_size due connections the caller serves (worker_claim;
    oauth_batch.worker_lease opens them in the same statement)."""
    # SERVES sees the grants of the statement's snapshot, and the leases it writes take no
    # grant's row: in a snapshot older than a revoke, a revoked worker would lease (and stall)
    # connections it no longer serves. The worker runs each call in a transaction of its own.
    if plpy.execute(plan(plpy, "oauth.isolation", "SELECT %s AS snapshot" % access.SNAPSHOT, []))[0]["snapshot"]:
        raise Fail(INVALID_ARGUMENT, "oauth_worker_claim and oauth_worker_lease run in READ COMMITTED only",
                   hint="Call them in autocommit or in a READ COMMITTED transaction, as hush oauth-worker does.")
    p = plan(plpy, "oauth.worker_claim", WORKER_CLAIM_SQL, [I4, I4, I4, T, I4, NM])
    rows = [dict(r) for r in plpy.execute(p, [window_seconds, keepalive_seconds, batch_size, holder, lease_seconds,
                                              caller])]
    if rows:
        tokens = [oauth_lease.new_token() for _ in rows]
        p = plan(plpy, "oauth.worker_tokens", WORKER_TOKENS_SQL, [TA, TA, TA, "pg_catalog.bytea[]"])
        plpy.execute(p, [[r["tenant_id"] for r in rows], [r["provider"] for r in rows], [r["account"] for r in rows],
                         [h for _, h in tokens]])
        for r, (token, _) in zip(rows, tokens):
            r["lease_token"] = token
    return rows
