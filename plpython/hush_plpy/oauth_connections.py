"""A tenant's OAuth connections as a listing (never a token), a disconnect, and the
events of its connections (refresh_failed, needs_reauth, recovered). The listings keep
the providers under the caller's oauth_use or oauth_manage prefixes (oauth_grants.py)."""
from __future__ import annotations

from . import access, audit, oauth_grants, privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api
from .oauth_base import ASKED_DONE, I4, NM, OWNER, TS, record
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

CONNECTIONS_SQL = f"""
SELECT c.provider, c.account, c.grant_type, c.status, c.token_type, c.scopes, c.expires_at, c.has_refresh_token,
       c.last_error, c.last_error_at, c.refreshed_at, c.lease_until, c.created_at, c.updated_at, c.failures,
       c.next_attempt_at, c.fields
  FROM hush.oauth_connections c
 WHERE c.tenant_id {EQ} $1 AND ($2 IS NULL OR c.provider {EQ} $2)
   AND {oauth_grants.visible("$1", "$3", "c.provider")}
 ORDER BY c.provider, c.account
"""
CONN_DELETE_SQL = f"""{ASKED_DONE}
DELETE FROM hush.oauth_connections c
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 RETURNING c.id
"""
EVENTS_SQL = f"""
SELECT e.id, e.at, e.provider, e.account, e.event, e.detail FROM hush.oauth_events e
 WHERE e.tenant_id {EQ} $1 AND ($2 IS NULL OR e.at OPERATOR(pg_catalog.>=) $2)
   AND {oauth_grants.visible("$1", "$4", "e.provider")}
 ORDER BY e.id LIMIT $3
"""


@api
def connections(plpy: Any, tenant: str, provider_name: Any) -> list:
    """Connections with status, expiry, scopes and last error; never a token."""
    validate.tenant(tenant)
    if provider_name is not None:
        validate.name(provider_name, "provider name")
    return privileged.call(plpy, OWNER, _connections, tenant, provider_name)


@privileged.step(OWNER)
def _connections(plpy: Any, caller: str, tenant: str, provider_name: Any) -> list:
    access.enter(plpy, caller, tenant)
    return list(plpy.execute(plan(plpy, "oauth.connections", CONNECTIONS_SQL, [T, T, NM]),
                             [tenant, provider_name, caller]))


@api
def delete_connection(plpy: Any, tenant: str, provider_name: Any, account: Any) -> bool:
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    return privileged.call(plpy, OWNER, _delete_connection, tenant, provider_name, account)


@privileged.step(OWNER)
def _delete_connection(plpy: Any, caller: str, tenant: str, provider_name: str, account: str) -> bool:
    ctx = oauth_grants.manage(plpy, caller, tenant, provider_name, audits=True)
    rows = plpy.execute(plan(plpy, "oauth.conn_delete", CONN_DELETE_SQL, [T, T, T]), [tenant, provider_name, account])
    if rows:
        record(plpy, ctx, tenant, "oauth_disconnect", rows[0]["id"], provider_name, account=account)
    return bool(rows)


@api
def events(plpy: Any, tenant: str, since: Any, max_rows: Any) -> list:
    """A tenant's OAuth events (refresh_failed, needs_reauth, recovered), oldest first."""
    validate.tenant(tenant)
    if not isinstance(max_rows, int) or not 1 <= max_rows <= 10000:
        raise Fail(INVALID_ARGUMENT, "max_rows must be between 1 and 10000")
    return privileged.call(plpy, OWNER, _events, tenant, since, max_rows)


@privileged.step(OWNER)
def _events(plpy: Any, caller: str, tenant: str, since: Any, max_rows: int) -> list:
    access.enter(plpy, caller, tenant)
    rows = [dict(r) for r in plpy.execute(plan(plpy, "oauth.events", EVENTS_SQL, [T, TS, I4, NM]),
                                          [tenant, since, max_rows, caller])]
    if rows:  # the table's ids count every tenant's events: each leaves as an opaque id of its own
        key = audit.cursor_key(plpy)
        for r in rows:
            r["id"] = audit.opaque_id(key, tenant, r["id"])
    return rows
