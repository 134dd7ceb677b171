"""Change notifications: how an application learns that a tenant's secret changed,
without polling values.

notify() is called by every step that changes a secret (save, update, bulk save, delete,
restore, destroy, promote, rollback, retention and purge by maintenance): when the tenant
has a change channel (hush.tenants.change_channel, made by the first change_channel()
call), it sends NOTIFY on it with an empty payload, delivered at commit and dropped on
rollback. The payload stays empty because PostgreSQL lets any role LISTEN on any channel
name it knows: what a listener learns is that something changed, when. For the same
reason only a role that may list the whole tenant gets the name (a prefix-scoped one reads
changes()), and a revoke of any grant on the tenant renames the channel (grants.py) with
one last empty NOTIFY on the old name: listeners then call change_channel() again.

changes() is the same news for applications that cannot LISTEN (behind a transaction
pooler): the tenant's audit rows of the actions that change a secret (CHANGE_ACTIONS),
metadata only, in the trail's order and only below the oldest transaction still running,
so that a reader going on from its last cursor never skips a change that commits late.
"""
from __future__ import annotations

from . import access, audit, privileged
from .access import plan
from .errors import INVALID_ARGUMENT, TENANT_ACCESS_DENIED, Fail, api

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

OWNER = privileged.OWNER

# The audit actions that change a secret: what changes() returns, and the predicate of the
# partial index every audit partition has for it ({name}_changes, maintenance.SETUP_SQL),
# written out here once.
CHANGE_ACTIONS = ("create", "new_version", "pending_version", "promote", "rollback", "update_metadata", "delete",
                  "restore", "destroy", "purge")
# The index's predicate and the query's condition: the same constant, so the planner sees
# that the query's rows are the index's (a parameter in its place would hide it).
IS_CHANGE = "action OPERATOR(pg_catalog.=) ANY (ARRAY[%s]::pg_catalog.text[])" % ", ".join(
    "'%s'" % a for a in CHANGE_ACTIONS)
INDEX_SQL = "CREATE INDEX IF NOT EXISTS {name}_changes ON hush.{name} (tenant_id, txid, id) WHERE " + IS_CHANGE

NOTIFY_SQL = "SELECT pg_catalog.pg_notify($1, '')"


def notify(plpy: Any, channel: Any) -> None:
    """NOTIFY the tenant's change channel (access.enter's `change_channel`), if it has one."""
    if channel:
        plpy.execute(plan(plpy, "changes.notify", NOTIFY_SQL, ["pg_catalog.text"]), [channel])


def _not_listed(caller: str, tenant: str) -> Fail:
    """SH020 for a role that holds a grant on the tenant but may list none of its names: it
    would learn of changes to secrets it cannot know exist."""
    return Fail(TENANT_ACCESS_DENIED, "role %s may not list any secret in tenant %s" % (caller, tenant),
                hint="An admin grants it with hush.grant(role, tenant, prefix, ARRAY['list']); "
                     "hush.effective_access(role, tenant) shows what the role holds.")


def _not_whole(caller: str, tenant: str) -> Fail:
    """SH020 for a role that may list some of the tenant's names only: the channel tells of a
    change to any secret of the tenant, which it would learn of outside its prefixes."""
    return Fail(TENANT_ACCESS_DENIED, "role %s may list only names under some prefixes in tenant %s, and the "
                "change channel tells of changes to every secret of the tenant" % (caller, tenant),
                hint="hush.changes(tenant, since) returns the changes to the names a role may list, for "
                     "prefix-scoped roles; the channel needs `list` on the whole tenant (prefix '').")


def _enter(plpy: Any, caller: str, tenant: str) -> dict:
    ctx = access.enter(plpy, caller, tenant, cap="list")
    if not ctx["prefixes"]:
        raise _not_listed(caller, tenant)
    return ctx


# -- the channel ------------------------------------------------------------------

# The first call makes the channel; concurrent first calls meet on the tenant's row (the
# second waits for the first's row, then keeps its channel). A tenant no admin configured
# gets its row here, with the defaults.
CHANNEL_SQL = """
INSERT INTO hush.tenants AS t (tenant_id, change_channel) VALUES ($1, $2)
ON CONFLICT (tenant_id) DO UPDATE SET change_channel = COALESCE(t.change_channel, EXCLUDED.change_channel)
RETURNING t.change_channel
"""


LOCK_GRANTS_SQL = "LOCK TABLE hush.tenant_grants IN SHARE MODE"


@api
def change_channel(plpy: Any, tenant: Any) -> str:
    """The tenant's change channel, made on the first call, for a role that may list the whole
    tenant. Not audited: it hands out no value, and a name to LISTEN on is worth what the
    grant check already decided. A revoke on the tenant gives it a new name (grants.py), so a
    role whose grant ended cannot go on listening to the name it was given."""
    return privileged.call(plpy, OWNER, _channel, tenant)


def new_channel() -> str:
    """A fresh channel name: 128 bits from the kernel's CSPRNG, a name no other role can guess."""
    import os
    return "hush_changes_" + os.urandom(16).hex()


@privileged.step(OWNER)
def _channel(plpy: Any, caller: str, tenant: Any) -> str:
    ctx = _enter(plpy, caller, tenant)
    # Whole-tenant `list` only: anyone who knows the name may LISTEN, whatever its grants.
    if "" not in ctx["prefixes"]:
        raise _not_whole(caller, tenant)
    if ctx["change_channel"]:
        return ctx["change_channel"]  # no write: works read-only and on a standby
    # Making it: in turn with grant changes (grants.py locks hush.tenant_grants SHARE ROW
    # EXCLUSIVE), then the grant checked again. A revoke that committed since the check above
    # is seen (READ COMMITTED: SH020) or makes this 40001 (a snapshot taken before it); one that
    # comes later waits for this transaction, then renames the channel it made.
    plpy.execute(plan(plpy, "changes.lock_grants", LOCK_GRANTS_SQL, []))
    access.still_granted(plpy, access.enter(plpy, caller, tenant, cap="list", name=""))
    return plpy.execute(plan(plpy, "changes.channel", CHANNEL_SQL, ["pg_catalog.text", "pg_catalog.text"]),
                        [tenant, new_channel()])[0]["change_channel"]


# -- the feed ---------------------------------------------------------------------

MAX_ROWS = 10000
# $1 tenant, ($2, $3) the position to go on after ((0, 0): from the start), $4 rows, $5 the
# prefixes the caller may list under (NULL: the whole tenant). The owner_steps row policy
# confines this to the tenant as well. The position is the trail's (txid, id), only below
# the oldest transaction still running (as audit.LOGS[True]).
CHANGES_SQL = f"""
SELECT a.txid, a.id, a.secret_name AS name, a.version, a.action AS change, a.at
  FROM hush.audit_log a
 WHERE a.tenant_id OPERATOR(pg_catalog.=) $1 AND a.{IS_CHANGE}
   AND (a.txid, a.id) OPERATOR(pg_catalog.>) ($2, $3)
   AND a.txid OPERATOR(pg_catalog.<) pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot())
   AND a.secret_name IS NOT NULL
   AND ($5 IS NULL OR a.secret_name OPERATOR(pg_catalog.^@) ANY ($5))
 ORDER BY a.txid, a.id
 LIMIT $4
"""


def _cursor_tenant(tenant: str) -> str:
    """What a changes() cursor is bound to: not the tenant alone, so that an audit_log()
    cursor of the same tenant is refused here (and one of these there)."""
    return tenant + "\0changes"


def _bad_cursor() -> Fail:
    return Fail(INVALID_ARGUMENT, "since is not a cursor hush.changes() returned for this tenant",
                hint="Pass the cursor of a row hush.changes() returned, unchanged, with the same tenant; "
                     "NULL reads from the start.")


@api
def changes(plpy: Any, tenant: Any, since: Any, max_rows: Any) -> list:
    """The changes to the tenant's secrets after the cursor `since` (None: from the start),
    oldest first, names the caller may list only. Not audited: metadata the caller may list."""
    if max_rows is None or not 1 <= max_rows <= MAX_ROWS:
        raise Fail(INVALID_ARGUMENT, "max_rows must be between 1 and %d" % MAX_ROWS)
    if since is not None and (not isinstance(since, str) or len(since) != audit.CURSOR_CHARS):
        raise _bad_cursor()  # before the step, which opens the cursor itself
    return privileged.call(plpy, OWNER, _changes, tenant, since, max_rows)


@privileged.step(OWNER)
def _changes(plpy: Any, caller: str, tenant: Any, since: Any, max_rows: int) -> list:
    from .scope import listed
    prefixes = _enter(plpy, caller, tenant)["prefixes"]
    key = audit.cursor_key(plpy)
    bound = _cursor_tenant(tenant)
    at = (0, 0)
    if since is not None:
        try:
            at = audit.open_cursor(key, bound, since)
        except Fail:
            raise _bad_cursor() from None
    p = plan(plpy, "changes.feed", CHANGES_SQL,
             ["pg_catalog.text", "pg_catalog.int8", "pg_catalog.int8", "pg_catalog.int4", "pg_catalog.text[]"])
    out = []
    for r in plpy.execute(p, [tenant, at[0], at[1], max_rows, listed(prefixes)]):
        out.append({"cursor": audit.seal_cursor(key, bound, r["txid"], r["id"]), "name": r["name"],
                    "version": r["version"], "change": r["change"], "at": r["at"]})
    return out


# The position every change of a finished transaction is at or before: just below the oldest
# transaction still running, after every id. Whatever changes() returns after it committed
# after this call began, or had not committed yet.
HORIZON_SQL = "SELECT pg_catalog.txid_snapshot_xmin(pg_catalog.txid_current_snapshot()) AS xmin"
LAST_ID = (1 << 63) - 1


@api
def changes_cursor(plpy: Any, tenant: Any) -> str:
    """A cursor for changes() that skips the past: what it returns after it is every change
    not yet finished when this was called. Whoever reads values after taking it (a cache)
    misses no change to them."""
    return privileged.call(plpy, OWNER, _changes_cursor, tenant)


@privileged.step(OWNER)
def _changes_cursor(plpy: Any, caller: str, tenant: Any) -> str:
    _enter(plpy, caller, tenant)
    xmin = plpy.execute(plan(plpy, "changes.horizon", HORIZON_SQL, []))[0]["xmin"]
    return audit.seal_cursor(audit.cursor_key(plpy), _cursor_tenant(tenant), xmin - 1, LAST_ID)
