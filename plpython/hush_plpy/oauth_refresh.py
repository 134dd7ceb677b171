"""Single-flight refresh of a connection's tokens, for a caller that refreshes on
demand (hush.OAuth): claim() takes the connection's lease in one committed UPDATE and
hands out the refresh token and the client secret, the client calls the token
endpoint with no transaction open, finish() stores the result over the generation it
claimed and frees the lease, release() frees it on failure, counting the failure. The
lease is a credential: a random token only its claimer has (oauth_lease.py)."""
from __future__ import annotations

from . import audit, oauth_grants, oauth_lease, privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api
from .oauth_base import (B, BOOL, CONN_COLS, I4, LE, MAX_ERROR_CHARS, OWNER, WAKEUP_SQL, announce, connection_row,
                         key_ids, open_tokens, provider_row, provider_secret, record)
from .oauth_tokens import split_response, store
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

# A new lease, under the caller's label ($4) and a new token's hash ($7): only when none is
# held or the one held has run out (whose token this then supersedes). A label is no claim
# to a lease: anyone who reads the audit trail knows it.
CLAIM_SQL = f"""
UPDATE hush.oauth_connections c
   SET lease_holder = $4, lease_until = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5),
       lease_token_hash = $7
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $6
   AND c.status {EQ} 'active'
   AND (c.lease_until IS NULL OR c.lease_until {LE} pg_catalog.now())
RETURNING {CONN_COLS}
"""
# The lease whose token's hash is $4, renewed for its holder (the worker's leases from
# oauth_worker_claim): still current even if it ran out, as long as nobody claimed since.
CLAIM_RENEW_SQL = f"""
UPDATE hush.oauth_connections c
   SET lease_until = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5)
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $6
   AND c.status {EQ} 'active' AND c.lease_token_hash {EQ} $4
RETURNING {CONN_COLS}
"""
# Without an error: only the lease goes (a worker stopping). With one: the
# failure is counted and the worker backs off until next_attempt_at: the
# provider's Retry-After when it gave one, else 30 s doubling up to an hour.
# $9: a reader reported invalid_grant, which only the worker or a writer may
# confirm: the connection is due for the worker at once instead (a refresh asked
# of it: oauth_lease.REQUEST_SQL; a failure since the last refresh makes it due at
# once). $5: the hash of the lease token, which must be the current one.
RELEASE_SQL = f"""
WITH asked AS (INSERT INTO hush.oauth_refresh_requests (tenant_id, provider, account, requested_at)
               SELECT $1, $2, $3, pg_catalog.statement_timestamp() WHERE $9
               ON CONFLICT DO NOTHING)
UPDATE hush.oauth_connections c
   SET lease_holder = NULL, lease_until = NULL, lease_token_hash = NULL,
       last_error = COALESCE($6, c.last_error),
       last_error_at = CASE WHEN $6 IS NULL THEN c.last_error_at ELSE pg_catalog.now() END,
       status = CASE WHEN $7 THEN 'needs_reauth' ELSE c.status END,
       failures = CASE WHEN $6 IS NULL THEN c.failures ELSE c.failures OPERATOR(pg_catalog.+) 1 END,
       next_attempt_at = CASE WHEN $9 THEN pg_catalog.now()
                              WHEN $6 IS NULL OR $7 THEN c.next_attempt_at
                              ELSE pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => COALESCE(
                                   $8, LEAST(pg_catalog.power(2, LEAST(c.failures, 7)) OPERATOR(pg_catalog.*) 30,
                                             3600))) END,
       updated_at = pg_catalog.now()
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $4
   AND c.lease_token_hash {EQ} $5
RETURNING c.id, c.failures
"""


@api
def claim(plpy: Any, tenant: str, provider_name: Any, account: Any, holder: Any, lease_seconds: Any,
          seen_generation: Any) -> dict:
    """Take the refresh lease of a connection still at seen_generation. Outcomes:
    'claimed' (with the refresh token, the client's secret and the lease token: refresh
    now, then finish or release with the token), 'fresh' (another call stored new tokens
    since: read them), 'leased' (another call is refreshing: wait, then try again),
    'needs_reauth'. `holder` is a label for a new lease, or the token of a lease the caller
    holds (oauth_worker_claim's), which is renewed: SH075 once another claim superseded it."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    oauth_lease.check_args(holder, lease_seconds, required=True)
    if not isinstance(seen_generation, int):
        raise Fail(INVALID_ARGUMENT, "seen_generation must be the generation last read")
    return privileged.call(plpy, OWNER, _claim, tenant, provider_name, account, holder, lease_seconds,
                           seen_generation)


@privileged.step(OWNER)
def _claim(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, holder: str,
           lease_seconds: Any, seen_generation: int) -> dict:
    ctx = oauth_grants.use(plpy, caller, tenant, provider_name, lease_account=account, audits=True)  # a lease is a write
    if not oauth_lease.rights(plpy, caller, tenant, provider_name, account):
        # Only a reader: a lease long enough for a refresh, not for keeping everyone else off.
        lease_seconds = min(lease_seconds, oauth_lease.READER_LEASE_SECONDS)
    renew = oauth_lease.is_token(holder)
    if renew:
        token, digest = holder, oauth_lease.digest(holder)
        p = plan(plpy, "oauth.claim_renew", CLAIM_RENEW_SQL, [T, T, T, B, I4, I4])
        rows = plpy.execute(p, [tenant, provider_name, account, digest, lease_seconds, seen_generation])
    else:
        token, digest = oauth_lease.new_token()
        p = plan(plpy, "oauth.claim", CLAIM_SQL, [T, T, T, T, I4, I4, B])
        rows = plpy.execute(p, [tenant, provider_name, account, holder, lease_seconds, seen_generation, digest])
    if not rows:
        row = connection_row(plpy, tenant, provider_name, account)
        outcome = ("needs_reauth" if row["status"] == "needs_reauth" else
                   "fresh" if row["generation"] != seen_generation else "leased")
        if renew and outcome == "leased":
            raise oauth_lease.lost(tenant, provider_name, account)
        return {"outcome": outcome, "account": account, "generation": row["generation"],
                "lease_until": row["lease_until"], "grant_type": row["grant_type"], "scopes": row["scopes"],
                "refresh_token": None, "config": None, "client_secret": None, "lease_token": None}
    row = rows[0]
    prov = provider_row(plpy, tenant, provider_name)
    if ctx["audit_reads"]:  # the refresh token and the client secret leave; the label, never the token
        audit.record_reads(plpy, caller, tenant,
                           [(row["id"], provider_name, row["generation"],
                             oauth_grants.granted(ctx, {"account": account, "holder": row["lease_holder"]}))],
                           key_ids(row, prov), action="oauth_refresh_claim")
    refresh_token = open_tokens(plpy, tenant, provider_name, row).get("refresh_token")
    return {"outcome": "claimed", "account": account, "generation": row["generation"],
            "lease_until": row["lease_until"], "grant_type": row["grant_type"], "scopes": row["scopes"],
            "refresh_token": refresh_token, "config": prov["config"],
            "client_secret": provider_secret(plpy, tenant, provider_name, prov), "lease_token": token}


@api
def finish(plpy: Any, tenant: str, provider_name: Any, account: Any, holder: Any, generation: Any,
           tokens: Any) -> dict:
    """Store a refresh's response over the generation claimed and free the lease (`holder`:
    its token); SH075 when it is not the current lease's (another call stored tokens since,
    or claimed the lease once it ran out: its result wins)."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    oauth_lease.check_args(holder, None)
    sealed, clear = split_response(tokens, refresh=True)
    return privileged.call(plpy, OWNER, _finish, tenant, provider_name, account, holder, generation, sealed, clear)


@privileged.step(OWNER)
def _finish(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, holder: str,
            generation: Any, sealed: dict, clear: dict) -> dict:
    ctx = oauth_grants.use(plpy, caller, tenant, provider_name, write=True, lease_account=account)
    oauth_lease.rights(plpy, caller, tenant, provider_name, account)
    row = connection_row(plpy, tenant, provider_name, account, lock=True)
    # The current lease's token, even past lease_until: a slow provider's rotated tokens are kept.
    if row["generation"] != generation or not oauth_lease.holds(row, holder):
        raise oauth_lease.lost(tenant, provider_name, account)
    config = provider_row(plpy, tenant, provider_name)["config"]
    out = store(plpy, ctx, tenant, provider_name, account, row["grant_type"], sealed, clear, row, config,
                refresh=True)
    # What the response had over a limit and was left out (names, never values): oauth_response.token_response.
    record(plpy, ctx, tenant, "oauth_refresh", out.pop("row_id"), provider_name, out["generation"], account=account,
           holder=row["lease_holder"], left_out=clear.get("left_out") or None)
    if row["failures"]:
        announce(plpy, tenant, provider_name, account, "recovered", failures=row["failures"])
    return out


def _error_text(error: Any) -> Any:
    """Cut first: nothing else (controls, redaction, a ticket) ever handles more of it."""
    if error is None:
        return None
    return validate.without_controls(str(error)[:MAX_ERROR_CHARS])


@api
def release(plpy: Any, tenant: str, provider_name: Any, account: Any, holder: Any, generation: Any, error: Any,
            needs_reauth: Any, retry_after: Any) -> bool:
    """Free a lease (`holder`: its token; SH075 if it is not the current one). With an error
    (a failed refresh): count it, back off (retry_after seconds when the provider said so),
    mark needs_reauth on invalid_grant (a reader's report makes the connection due for the
    worker instead), record the event."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    oauth_lease.check_args(holder, None)
    if retry_after is not None and (not isinstance(retry_after, int) or not 0 <= retry_after <= 86400):
        raise Fail(INVALID_ARGUMENT, "retry_after_seconds must be between 0 and 86400")
    error = _error_text(error)
    return privileged.call(plpy, OWNER, _release, tenant, provider_name, account, holder, generation, error,
                           needs_reauth, retry_after)


@privileged.step(OWNER)
def _release(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, holder: str, generation: Any,
             error: Any, needs_reauth: Any, retry_after: Any) -> bool:
    ctx = oauth_grants.use(plpy, caller, tenant, provider_name, lease_account=account, audits=True)
    confirms = oauth_lease.rights(plpy, caller, tenant, provider_name, account)
    row = connection_row(plpy, tenant, provider_name, account, lock=True)
    if row["generation"] != generation or not oauth_lease.holds(row, holder):
        raise oauth_lease.lost(tenant, provider_name, account)
    asked = bool(needs_reauth) and error is not None
    # A reader's word cannot strand a connection (anyone can say invalid_grant): the worker
    # or a writer confirms with an attempt of its own, which the reader's report brings forward.
    reauth, reported = asked and confirms, asked and not confirms
    if not confirms:  # a reader's Retry-After could keep the worker off for a day: the default backoff
        retry_after = None
    p = plan(plpy, "oauth.release", RELEASE_SQL, [T, T, T, I4, B, T, BOOL, I4, BOOL])
    rows = plpy.execute(p, [tenant, provider_name, account, generation, oauth_lease.digest(holder), error, reauth,
                            retry_after, reported])
    if rows and error is not None:
        record(plpy, ctx, tenant, "oauth_refresh_failed", rows[0]["id"], provider_name, generation, account=account,
               holder=row["lease_holder"], error=error, needs_reauth=reauth or None,
               reauth_reported=reported or None)
        if reauth:
            announce(plpy, tenant, provider_name, account, "needs_reauth", error=error)
        elif rows[0]["failures"] == 1:  # the first failure of a streak; `recovered` ends it
            announce(plpy, tenant, provider_name, account, "refresh_failed", error=error,
                     reauth_reported=reported or None)
    if reported:  # the worker's attempt, now
        plpy.execute(plan(plpy, "oauth.wakeup", WAKEUP_SQL, []))
    return bool(rows)
