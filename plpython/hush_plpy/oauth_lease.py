"""The refresh lease as a credential, who may write token material through it,
and a refresh asked of the worker (docs/oauth.md).

A lease is not a name: a name is in audit rows every reader of the tenant
reads, and finish and release would believe any caller that named it with the
generation. claim() hands out a random token (LEASE_PREFIX and 256
random bits) and the connection row keeps only its SHA-256; finish() and
release() take the token in their `holder` argument and are accepted while it
is the current lease's, even past lease_until (a worker whose provider was
slow holds freshly rotated tokens, which must not be thrown away); a newer
claim, once the lease has run out, replaces the hash. The caller's label
stays in lease_holder: audit rows show it, so it proves nothing. The token is
never written anywhere: not in audit rows, events, errors, log lines or
NOTIFY payloads.

A refresh stores tokens the database cannot tell from forged ones. Whether a
role that is only a reader (neither hush_writer nor hush_oauth_worker) may do
that is the tenant's decision (hush.tenants.reader_refresh, true by default):
with false, its claim, finish and release fail with SH077 and it asks instead
(request_refresh below), which writes no token material and locks no
connection row. Either way a reader's release with needs_reauth only records
the failure and makes the connection due for the worker at once; the
connection turns needs_reauth when the worker or a writer gets invalid_grant
on its own attempt. With true, a reader's lease lasts at most
READER_LEASE_SECONDS a claim and its retry_after is ignored (the default
backoff applies): it cannot keep the worker off a connection for long.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from . import privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, OAUTH_LEASE_LOST, OAUTH_READER_REFRESH_DISABLED, OAUTH_REAUTH_REQUIRED, Fail, api
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

# Marks a lease token apart from a label: claim() given one renews that lease (or fails
# with SH075), never takes a new lease under it as a label (which audit rows would show).
LEASE_PREFIX = "hush_lease_"
# The longest lease a role that is only a reader gets from a claim (or renewal): a
# refresh request takes seconds; more would only keep the worker and writers waiting.
READER_LEASE_SECONDS = 120


def new_token() -> tuple[str, bytes]:
    """A fresh lease token and the hash the row keeps."""
    token = LEASE_PREFIX + secrets.token_urlsafe(32)
    return token, digest(token)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def is_token(holder: str) -> bool:
    return holder.startswith(LEASE_PREFIX)


def holds(row: dict, token: str) -> bool:
    """Whether `token` is the current lease of the (locked) connection row."""
    stored = row["lease_token_hash"]
    return stored is not None and hmac.compare_digest(bytes(stored), digest(token))


def check_args(holder: Any, lease_seconds: Any, required: bool = False) -> None:
    # the holder may be a lease token: the message never shows it
    if not isinstance(holder, str) or not 1 <= len(holder) <= 200:
        raise Fail(INVALID_ARGUMENT, "a lease holder is 1 to 200 characters")
    if (lease_seconds is not None or required) and (not isinstance(lease_seconds, int)
                                                    or not 1 <= lease_seconds <= 3600):
        raise Fail(INVALID_ARGUMENT, "lease_seconds must be between 1 and 3600")


def lost(tenant: str, provider_name: str, account: str) -> Fail:
    # One message whatever went: a wrong token, a superseded one, a generation moved on.
    return Fail(OAUTH_LEASE_LOST, "this call does not hold the refresh lease of account %r at OAuth provider %r "
                "(tenant %s): another call claimed it once it ran out, or stored tokens meanwhile"
                % (account, provider_name, tenant),
                hint="Read the token again; a lease is used with the lease_token its claim returned.")


# The tenant's choice, and whether the caller's own attempt counts (a writer, the worker;
# a superuser has every role). Membership with USAGE: the privileges it has, as EXECUTE does.
RIGHTS_SQL = f"""
SELECT COALESCE((SELECT t.reader_refresh FROM hush.tenants t WHERE t.tenant_id {EQ} $1), true) AS reader_refresh,
       (pg_catalog.pg_has_role($2, 'hush_writer'::pg_catalog.name, 'USAGE')
        OR pg_catalog.pg_has_role($2, 'hush_oauth_worker'::pg_catalog.name, 'USAGE')) AS confirms
"""


def rights(plpy: Any, caller: str, tenant: str, provider_name: str, account: str) -> bool:
    """In a lease step, after access.enter: SH077 for a role that is only a reader in a
    tenant that keeps readers from writing token material. Returns whether the caller's
    own failed attempt may mark the connection needs_reauth."""
    row = plpy.execute(plan(plpy, "oauth_lease.rights", RIGHTS_SQL, [T, "pg_catalog.name"]), [tenant, caller])[0]
    if not row["reader_refresh"] and not row["confirms"]:
        raise Fail(OAUTH_READER_REFRESH_DISABLED,
                   "tenant %s does not let readers refresh OAuth tokens: role %s may not take or use the refresh "
                   "lease of account %r at OAuth provider %r" % (tenant, caller, account, provider_name),
                   hint="Ask the worker with hush.oauth_request_refresh (hush.OAuth does), or refresh as a writer.")
    return bool(row["confirms"])


# A refresh asked of the worker is a row of hush.oauth_refresh_requests (18_oauth_requests.sql),
# never a write to the connection row: asking runs in the asker's transaction, and a lock
# on the connection held there (an UPDATE's, or a foreign key check's KEY SHARE) would
# make the worker's claim skip the row and its store and release wait, for every tenant,
# as long as the asker idles in its transaction. Inserted with ON CONFLICT DO NOTHING (an
# earlier request keeps its place; DO UPDATE would lock that row, which a store deletes);
# uncommitted, it is invisible to the worker, which therefore never waits for it. A store
# of tokens, a disconnect, a provider's removal delete it.
#
# At most one requested refresh per connection per REQUEST_INTERVAL seconds: a request
# for a connection refreshed (or stored) within that interval is ignored, and its asker
# reads the token stored then. A connection whose last attempt failed is the exception:
# the failure's backoff (next_attempt_at) paces the worker instead. The worker's scans
# apply the same rule again (REQUESTED_AT), for a request that slipped in all the same
# (asked in a transaction whose snapshot predates the last refresh, or committed after
# the store that would have deleted it): it falls due when the interval is over.
REQUEST_INTERVAL = 60
RECENT = f"""c.failures {EQ} 0 AND COALESCE(c.refreshed_at, c.created_at) OPERATOR(pg_catalog.>)
    (pg_catalog.statement_timestamp() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => {REQUEST_INTERVAL}))"""
REQUEST_SQL = f"""
WITH found AS (SELECT c.generation, {RECENT} AS recent FROM hush.oauth_connections c
                WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3),
     asked AS (INSERT INTO hush.oauth_refresh_requests (tenant_id, provider, account, requested_at)
               SELECT $1, $2, $3, pg_catalog.statement_timestamp() FROM found WHERE NOT found.recent
               ON CONFLICT DO NOTHING)
SELECT found.generation, NOT found.recent AS asked FROM found
"""
# In the worker's scans (oauth_worker.DUE_AT), with the connection as c: its request, as q.
REQUESTS_JOIN = f"""LEFT JOIN hush.oauth_refresh_requests q
    ON q.tenant_id {EQ} c.tenant_id AND q.provider {EQ} c.provider AND q.account {EQ} c.account"""
# When the request makes the connection due (NULL: no request).
REQUESTED_AT = f"""CASE WHEN q.requested_at IS NULL THEN NULL
                   WHEN c.failures OPERATOR(pg_catalog.>) 0 THEN q.requested_at
                   ELSE GREATEST(q.requested_at, COALESCE(c.refreshed_at, c.created_at) OPERATOR(pg_catalog.+)
                                 pg_catalog.make_interval(secs => {REQUEST_INTERVAL})) END"""


@api
def request_refresh(plpy: Any, tenant: str, provider_name: Any, account: Any) -> dict:
    """Ask the worker to refresh a connection now: no token material in or out, and no
    lock on the connection row. Returns the current generation (the refresh is done when
    it moves: hush.oauth_token shows it) and whether the request was recorded: not for a
    connection refreshed within the last REQUEST_INTERVAL seconds, whose stored token is
    that fresh (the caller reads it rather than wait)."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    return privileged.call(plpy, privileged.OWNER, _request_refresh, tenant, provider_name, account)


@privileged.step(privileged.OWNER)
def _request_refresh(plpy: Any, caller: str, tenant: str, provider_name: str, account: str) -> dict:
    from . import access, oauth_base, oauth_grants  # they import this module
    access.still_granted(plpy, oauth_grants.use(plpy, caller, tenant, provider_name))  # the request is a write
    row = oauth_base.connection_row(plpy, tenant, provider_name, account)
    if row["status"] == "needs_reauth" or not (row["has_refresh_token"] or row["grant_type"] == "client_credentials"):
        # Nobody could answer: say so now rather than after the caller's wait.
        raise Fail(OAUTH_REAUTH_REQUIRED, "account %r of tenant %s at OAuth provider %r must authorize again (%s)"
                   % (account, tenant, provider_name, "its refresh token was refused" if row["status"] ==
                      "needs_reauth" else "it has no refresh token"),
                   hint="Run the authorization again; connections() shows the last error.")
    rows = plpy.execute(plan(plpy, "oauth_lease.request", REQUEST_SQL, [T, T, T]), [tenant, provider_name, account])
    if not rows:  # disconnected since the row above was read: SH071
        oauth_base.connection_row(plpy, tenant, provider_name, account)
        return {"generation": row["generation"], "requested": False}
    if rows[0]["asked"]:
        plpy.execute(plan(plpy, "oauth.wakeup", oauth_base.WAKEUP_SQL, []))  # no payload: any role may LISTEN
    return {"generation": rows[0]["generation"], "requested": bool(rows[0]["asked"])}
