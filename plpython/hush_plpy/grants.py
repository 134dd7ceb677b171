"""Who may do what inside a tenant (hush_admin): hush.grant and hush.revoke of
capabilities on a name prefix, the whole-tenant shorthands hush.grant_tenant and
hush.revoke_tenant, and hush.effective_access, which shows what a role holds and why.

Authority is EXECUTE on the API function; the change runs as a privileged step
(privileged.py) as hush_owner, and granted_by and the audit row name the role the
calling code runs as. The checks that use the grants are access.py's: effective_access
and revoke's NOTICE ask them, so what they say is the runtime rule.
"""
from __future__ import annotations

from . import access, audit, changes, privileged, validate
from .access import plan
from .errors import (CAPABILITY_NOT_CALLABLE, GRANT_NOT_FOUND, INSUFFICIENT_PRIVILEGE, INVALID_ARGUMENT, Fail,
                     api)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

T = "pg_catalog.text"
EQ = "OPERATOR(pg_catalog.=)"
OWNER = privileged.OWNER
MAX_PREFIX_CHARS = 255  # as the table's CHECK, and a secret name's limit

# A capability does something only through hush's API functions, which PostgreSQL lets a
# role call or not (EXECUTE, from the hush_* roles). A grant of a capability the role cannot
# call would look like access and give none, or give it later to whoever grants the role
# a hush role for another reason: hush.grant refuses it (SH024), grant_tenant grants what
# the role can call, and effective_access shows it. A capability is callable when the role
# may execute any one of its functions (oauth_use: a reader's token read, or the worker's scan).
FUNCTIONS = {
    "read": ("hush.get_secret(text,text,integer,text)",),
    "list": ("hush.list_secrets(text,integer,integer,text,hush.secret_tags,boolean,text)",),
    "write": ("hush.save_secret(text,text,text,text,hush.secret_tags,jsonb,text,integer,timestamptz,integer,interval,"
              "interval,text)",),
    "delete": ("hush.delete_secret(text,text)",),
    "destroy": ("hush.destroy_secret(text,text,hush.version_list)",),
    "oauth_use": ("hush.oauth_token(text,text,text)", "hush.oauth_worker_claim(text,integer,integer,integer,integer)"),
    "oauth_manage": ("hush.oauth_save_provider(text,text,jsonb,text)",),
    "audit": ("hush.audit_log(text,timestamptz,timestamptz,text,text,integer,text,boolean)",),
}
# The hush role that brings a capability's functions (90_privileges.sql), for the hint.
BROUGHT_BY = {"read": "hush_reader", "list": "hush_reader", "write": "hush_writer", "delete": "hush_writer",
              "destroy": "hush_writer", "oauth_use": "hush_reader or hush_oauth_worker",
              "oauth_manage": "hush_writer", "audit": "hush_auditor or hush_reader"}
assert tuple(FUNCTIONS) == access.CAPABILITIES == tuple(BROUGHT_BY)
# hush's own roles (00_roles.sql): their authority is hush's objects, which they own or run
# steps as, and a grant would limit nothing (hush_owner may execute every function as their
# owner, so SH024 would not stop it). A grant names no such role, nor one of their members,
# who may act as them.
INTERNAL = ("hush_owner", "hush_retention", "hush_keykeeper", "hush_refresher", "hush_recorder")
INTERNAL_ARRAY = "ARRAY[%s]::pg_catalog.name[]" % ", ".join("'%s'" % r for r in INTERNAL)


def callable_expr(role: str, cap: str) -> str:
    """SQL: whether the role (`role`, an SQL expression: a name or an oid) may call `cap`'s functions."""
    return "(%s)" % " OR ".join("pg_catalog.has_function_privilege(%s, '%s'::pg_catalog.regprocedure, 'EXECUTE')"
                                % (role, fn) for fn in FUNCTIONS[cap])


# One column per capability: whether `role` ($1) may call its functions now. The casts to
# regprocedure are resolved when the plan is made: a function renamed or re-typed fails
# here, at once, instead of making a capability silently uncallable.
CALLABLE_SQL = "SELECT " + ",\n       ".join("%s AS %s" % (callable_expr("$1", cap), cap) for cap in FUNCTIONS)
ROLE_SQL = f"""
SELECT r.rolname, r.rolsuper,
       pg_catalog.pg_has_role(r.oid, 'hush_admin', 'MEMBER') AS admin,
       pg_catalog.pg_has_role(r.oid, 'hush_auditor', 'MEMBER') AS auditor,
       (SELECT o.rolname FROM pg_catalog.pg_roles o
         WHERE o.rolname OPERATOR(pg_catalog.=) ANY ({INTERNAL_ARRAY})
           AND pg_catalog.pg_has_role(r.oid, o.oid, 'MEMBER')
         ORDER BY o.rolname LIMIT 1) AS acts_as
  FROM pg_catalog.pg_roles r WHERE r.rolname {EQ} $1
"""
EXISTS_SQL = f"SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname {EQ} $1"
COLS = "g.tenant_id, g.role_name, g.prefix, g.capabilities, g.granted_at, g.granted_by"
# Changes of grants take turns, so that two changes of one grant in a row each see the
# other's result (the added and removed capabilities their audit rows name are what each
# changed). A table lock, not FOR UPDATE of the row: a row lock would leave its locker's id
# in the row's xmax, which access.still_granted reads as "changed since the snapshot". SHARE ROW
# EXCLUSIVE conflicts with itself and with writes of the table, never with reads.
TURN_SQL = "LOCK TABLE hush.tenant_grants IN SHARE ROW EXCLUSIVE MODE"
LOCK_SQL = f"""
SELECT {COLS} FROM hush.tenant_grants g
 WHERE g.tenant_id {EQ} $1 AND g.role_name {EQ} $2 AND g.prefix {EQ} $3
"""
# A concurrent insert of the same grant makes this return nothing: the caller reads it then.
INSERT_SQL = f"""
INSERT INTO hush.tenant_grants AS g (tenant_id, role_name, prefix, capabilities, granted_by)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {COLS}
"""
# granted_at and granted_by say who last widened the grant (the audit trail has every change).
WIDEN_SQL = f"""
UPDATE hush.tenant_grants g SET capabilities = $4, granted_at = pg_catalog.now(), granted_by = $5
 WHERE g.tenant_id {EQ} $1 AND g.role_name {EQ} $2 AND g.prefix {EQ} $3 RETURNING {COLS}
"""
NARROW_SQL = f"""
UPDATE hush.tenant_grants g SET capabilities = $4
 WHERE g.tenant_id {EQ} $1 AND g.role_name {EQ} $2 AND g.prefix {EQ} $3 RETURNING {COLS}
"""
DELETE_SQL = f"""
DELETE FROM hush.tenant_grants g
 WHERE g.tenant_id {EQ} $1 AND g.role_name {EQ} $2 AND g.prefix {EQ} $3 RETURNING {COLS}
"""
DELETE_ALL_SQL = f"""
DELETE FROM hush.tenant_grants g WHERE g.tenant_id {EQ} $1 AND g.role_name {EQ} $2 RETURNING {COLS}
"""
# After a revoke: for each capability it named, whether the role may still do it on the
# prefix (access.may, the runtime rule: a shorter prefix, '*', a role whose privileges it
# has, superuser) and through which grant.
STILL_SQL = f"""
SELECT c.cap, {access.superuser("$2")} AS superuser, {access.via("$1", "$2", "c.cap", "$3")} AS via
  FROM pg_catalog.unnest($4::pg_catalog.text[]) WITH ORDINALITY AS c(cap, n)
 ORDER BY c.n
"""
# The grants that apply to `role` ($2) on the tenant ($1), access.py's own selection: what
# effective_access shows, and what still lets a role in after revoke_tenant.
APPLYING_SQL = f"""
SELECT g.tenant_id, g.role_name, g.prefix, g.capabilities
  {access._grants("$1", "$2")}
 ORDER BY g.tenant_id, g.role_name, g.prefix
"""
# The change channels of the tenant $1 ('*': every tenant) to rename after a revoke, locked
# against a concurrent renaming (which then renames the name this one made, not the old one).
CHANNELS_SQL = f"""
SELECT t.tenant_id, t.change_channel FROM hush.tenants t
 WHERE t.change_channel IS NOT NULL AND ($1 {EQ} '*' OR t.tenant_id {EQ} $1)
 ORDER BY t.tenant_id FOR UPDATE
"""
RENAME_SQL = f"""
UPDATE hush.tenants t SET change_channel = n.channel
  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.text[]))
       AS n(tenant_id, channel)
 WHERE t.tenant_id {EQ} n.tenant_id
"""
VIEWER_SQL = """
SELECT pg_catalog.pg_has_role($1, 'hush_admin', 'USAGE') AS admin, pg_catalog.pg_has_role($1, $2, 'USAGE') AS own
"""


def _plan(plpy: Any, key: str, sql: str, types: list[str]) -> Any:
    return plan(plpy, "grants." + key, sql, types)


# -- arguments ---------------------------------------------------------------------------

def _prefix(prefix: Any) -> str:
    """A literal name prefix: '' is the whole tenant; it need not be a whole name ('payments/')."""
    if not isinstance(prefix, str):
        raise Fail(INVALID_ARGUMENT, "prefix must not be NULL", hint="'' is the whole tenant.")
    if len(prefix) > MAX_PREFIX_CHARS:
        raise Fail(INVALID_ARGUMENT, "prefix is %d characters long; the limit is %d"
                   % (len(prefix), MAX_PREFIX_CHARS))
    if validate.has_control(prefix):
        raise Fail(INVALID_ARGUMENT, "prefix must not contain control characters")
    return prefix


def _capabilities(caps: Any) -> list[str]:
    """The capabilities asked for, each once, in CAPABILITIES' order."""
    known = ", ".join(access.CAPABILITIES)
    if not isinstance(caps, list) or not caps:
        raise Fail(INVALID_ARGUMENT, "capabilities must name at least one capability",
                   hint="The capabilities are: %s." % known)
    for c in caps:
        if c is None:
            raise Fail(INVALID_ARGUMENT, "capabilities must not contain NULL", hint="The capabilities are: %s." % known)
        if not isinstance(c, str) or c not in access.CAPABILITIES:
            raise Fail(INVALID_ARGUMENT, "unknown capability %s" % validate.show(c),
                       hint="The capabilities are: %s." % known)
    return [c for c in access.CAPABILITIES if c in caps]


def _shown(prefix: str) -> str:
    return "'' (the whole tenant)" if prefix == "" else validate.show(prefix)


def _grant_args(tenant: Any, prefix: Any, capabilities: Any) -> tuple[str, str, list[str]]:
    return validate.tenant(tenant, allow_all=True), _prefix(prefix), _capabilities(capabilities)


# -- helpers of the steps ----------------------------------------------------------------

def _role(plpy: Any, role: Any) -> dict:
    rows = plpy.execute(_plan(plpy, "role", ROLE_SQL, ["pg_catalog.name"]), [role]) if role else []
    if not rows:
        raise Fail(INVALID_ARGUMENT, "role %s does not exist" % validate.show(role))
    return dict(rows[0])


def _grantee(plpy: Any, role: Any) -> dict:
    """_role's row of a role a grant may name: one whose authority in hush comes from its grants."""
    who = _role(plpy, role)
    name, hint = who["rolname"], "Grant the application role that is to act instead."
    if who["rolsuper"]:
        raise Fail(INVALID_ARGUMENT, "role %s is a superuser: it acts on every tenant without a grant" % name,
                   hint="A grant to it would limit nothing. " + hint)
    if name in INTERNAL:
        raise Fail(INVALID_ARGUMENT, "role %s is one of hush's own roles: no grant gives or limits what it does"
                   % name, hint="%s run hush's privileged steps. %s" % (", ".join(INTERNAL), hint))
    if who["acts_as"]:
        raise Fail(INVALID_ARGUMENT, "role %s is a member of %s, one of hush's own roles: no grant limits what it "
                   "may do as that role" % (name, who["acts_as"]),
                   hint="REVOKE %s FROM %s first, or grant another role." % (who["acts_as"], name))
    return who


def callable_caps(plpy: Any, role: str) -> list[str]:
    """The capabilities whose functions `role` may call now, in CAPABILITIES' order."""
    row = plpy.execute(_plan(plpy, "callable", CALLABLE_SQL, ["pg_catalog.name"]), [role])[0]
    return [c for c in access.CAPABILITIES if row[c]]


def _locked(plpy: Any, tenant: str, role: str, prefix: str) -> Any:
    plpy.execute(_plan(plpy, "turn", TURN_SQL, []))
    rows = plpy.execute(_plan(plpy, "lock", LOCK_SQL, [T, "pg_catalog.name", T]), [tenant, role, prefix])
    return dict(rows[0]) if rows else None


# The arguments of INSERT_SQL and WIDEN_SQL: tenant, role, prefix, capabilities, granted_by
# (NARROW_SQL takes the first four).
CHANGE_TYPES = [T, "pg_catalog.name", T, "pg_catalog.text[]", "pg_catalog.name"]


def _change(plpy: Any, key: str, sql: str, args: list) -> list:
    return plpy.execute(_plan(plpy, key, sql, CHANGE_TYPES[:len(args)]), args)


def _widen(plpy: Any, caller: str, tenant: str, who: dict, prefix: str, caps: list[str]) -> tuple[dict, list[str]]:
    """The grant of (tenant, role, prefix) with `caps` added: (its row now, what was added)."""
    role = who["rolname"]
    access.act_in(plpy, tenant)
    old = _locked(plpy, tenant, role, prefix)
    if old is None:
        rows = _change(plpy, "insert", INSERT_SQL, [tenant, role, prefix, caps, caller])
        if rows:
            return dict(rows[0]), caps
        old = _locked(plpy, tenant, role, prefix)  # inserted by a transaction that committed meanwhile
    added = [c for c in caps if c not in old["capabilities"]]
    if not added:
        return old, []
    now = [c for c in access.CAPABILITIES if c in old["capabilities"] or c in added]
    return dict(_change(plpy, "widen", WIDEN_SQL, [tenant, role, prefix, now, caller])[0]), added


def _exists(plpy: Any, role: str) -> bool:
    return bool(plpy.execute(_plan(plpy, "exists", EXISTS_SQL, ["pg_catalog.name"]), [role]))


def _record(plpy: Any, caller: str, action: str, role: str, row: dict, change: str, caps: list[str],
            who: Any = None) -> None:
    """The audit row of a change (`change`: "added" or "removed"), under the grant's tenant;
    `who`, _role's row, for a grant."""
    detail: dict = {"role": role, "prefix": row["prefix"], change: caps, "capabilities": list(row["capabilities"])}
    # Values to be read by a role whose duty is administering or auditing: the row stands out.
    if who is not None and "read" in caps:
        for duty in ("admin", "auditor"):
            if who[duty]:
                detail[duty] = True
    audit.record(plpy, {"caller": caller}, row["tenant_id"], action, detail=detail)


def _not_callable(role: str, caps: list[str]) -> Fail:
    return Fail(CAPABILITY_NOT_CALLABLE, "role %s cannot call the functions of %s" % (
                    role, ", ".join("%s (%s)" % (c, FUNCTIONS[c][0].split("(")[0]) for c in caps)),
                hint="A capability gives access only through functions the role may execute: GRANT it %s "
                     "first." % "; ".join("%s for %s" % (BROUGHT_BY[c], c) for c in caps))


# -- hush.grant / hush.revoke ------------------------------------------------------------

@api
def grant(plpy: Any, role: Any, tenant: Any, prefix: Any, capabilities: Any) -> dict:
    """The grant of `capabilities` on names starting with `prefix` in `tenant` ('*': every
    tenant), added to what the role already holds on that prefix. Returns the grant."""
    tenant, prefix, caps = _grant_args(tenant, prefix, capabilities)
    return privileged.call(plpy, OWNER, _grant, role, tenant, prefix, caps)


@privileged.step(OWNER)
def _grant(plpy: Any, caller: str, role: Any, tenant: str, prefix: str, caps: list[str]) -> dict:
    who = _grantee(plpy, role)
    callable_now = callable_caps(plpy, who["rolname"])
    missing = [c for c in caps if c not in callable_now]
    if missing:
        raise _not_callable(who["rolname"], missing)
    row, added = _widen(plpy, caller, tenant, who, prefix, caps)
    if added:
        _record(plpy, caller, "grant_access", who["rolname"], row, "added", added, who)
    return row


@api
def revoke(plpy: Any, role: Any, tenant: Any, prefix: Any, capabilities: Any) -> dict:
    """`capabilities` removed from the (role, tenant, prefix) grant, which goes when none
    remain (returned with capabilities '{}'). SH025 when there is no such grant; a NOTICE for
    each capability the role may still use on the prefix through another grant. When it
    removed anything, the tenant's change channel (every tenant's, for '*') is renamed."""
    tenant, prefix, caps = _grant_args(tenant, prefix, capabilities)
    if not role:
        raise Fail(INVALID_ARGUMENT, "role must not be NULL or empty")
    return privileged.call(plpy, OWNER, _revoke, role, tenant, prefix, caps)


@privileged.step(OWNER)
def _revoke(plpy: Any, caller: str, role: str, tenant: str, prefix: str, caps: list[str]) -> dict:
    # A grant to a role dropped since may be revoked too: the role is not looked up first.
    access.act_in(plpy, tenant)
    old = _locked(plpy, tenant, role, prefix)
    if old is None:
        # Not echoed unless it is a role: a value passed in the role's place would reach the log.
        raise Fail(GRANT_NOT_FOUND, "role %s holds no grant on prefix %s in tenant %s"
                   % (role if _exists(plpy, role) else validate.show(role), _shown(prefix),
                      tenant if tenant == "*" else validate.show(tenant)),
                   hint="hush.effective_access(role, tenant) shows the role's grants and their prefixes.")
    removed = [c for c in caps if c in old["capabilities"]]
    left = [c for c in old["capabilities"] if c not in removed]
    if not removed:
        row = old
    elif left:
        row = dict(_change(plpy, "narrow", NARROW_SQL, [tenant, role, prefix, left])[0])
    else:
        row = dict(plpy.execute(_plan(plpy, "delete", DELETE_SQL, [T, "pg_catalog.name", T]),
                                [tenant, role, prefix])[0], capabilities=[])
    if removed:
        _record(plpy, caller, "revoke_access", role, row, "removed", removed)
        _rename_channels(plpy, tenant)
    _still(plpy, tenant, role, prefix, caps)
    return row


def _rename_channels(plpy: Any, tenant: str) -> None:
    """After a revoke on `tenant` ('*': every tenant): each of its change channels gets a new
    name, and its old name one empty NOTIFY (at commit), which wakes its listeners to ask
    change_channel() for the new one. PostgreSQL lets anyone who knows a name LISTEN on it:
    renaming is the only way a role whose grant ended stops hearing the tenant's changes."""
    old = list(plpy.execute(_plan(plpy, "channels", CHANNELS_SQL, [T]), [tenant]))
    if not old:
        return
    names = [r["tenant_id"] for r in old]
    plpy.execute(_plan(plpy, "rename", RENAME_SQL, ["pg_catalog.text[]", "pg_catalog.text[]"]),
                 [names, [changes.new_channel() for _ in names]])
    for r in old:
        changes.notify(plpy, r["change_channel"])


def _still(plpy: Any, tenant: str, role: str, prefix: str, caps: list[str]) -> None:
    """A NOTICE for each revoked capability the role may still use on the prefix: the revoke
    did what it was asked, and the access it was likely meant to end goes on."""
    if not _exists(plpy, role):
        return  # a dropped role does nothing
    p = _plan(plpy, "still", STILL_SQL, [T, "pg_catalog.name", T, "pg_catalog.text[]"])
    for r in plpy.execute(p, [tenant, role, prefix, caps]):
        if not (r["via"] or r["superuser"]):  # what access.may says
            continue
        v = r["via"]
        how = ("through the grant of %s on prefix %s in tenant %s" % (v[1], _shown(v[2]), v[0]) if v
               else "as a superuser")
        plpy.notice("role %s may still %s names starting with %s in tenant %s: %s"
                    % (role, r["cap"], _shown(prefix), tenant, how))


# -- the whole-tenant shorthands ------------------------------------------------------------

@api
def grant_tenant(plpy: Any, role: Any, tenant: Any) -> bool:
    """The whole tenant ('' prefix) with every capability the role can call now, added to
    what it holds there. True when that added anything."""
    validate.tenant(tenant, allow_all=True)
    return privileged.call(plpy, OWNER, _grant_tenant, role, tenant)


@privileged.step(OWNER)
def _grant_tenant(plpy: Any, caller: str, role: Any, tenant: str) -> bool:
    who = _grantee(plpy, role)
    caps = callable_caps(plpy, who["rolname"])
    if not caps:
        raise Fail(CAPABILITY_NOT_CALLABLE, "role %s cannot call any of hush's functions: a tenant grant would "
                   "give it nothing" % who["rolname"],
                   hint="Grant the role hush_reader, hush_writer, hush_auditor or hush_oauth_worker first.")
    row, added = _widen(plpy, caller, tenant, who, "", caps)
    if added:
        _record(plpy, caller, "grant_tenant", who["rolname"], row, "added", added, who)
    return bool(added)


@api
def revoke_tenant(plpy: Any, role: Any, tenant: Any) -> bool:
    """Every grant of the role on the tenant, whatever its prefix, removed (and the tenant's
    change channel renamed, as by revoke). True when there was one."""
    validate.tenant(tenant, allow_all=True)
    return privileged.call(plpy, OWNER, _revoke_tenant, role, tenant)


@privileged.step(OWNER)
def _revoke_tenant(plpy: Any, caller: str, role: Any, tenant: str) -> bool:
    access.act_in(plpy, tenant)
    gone = plpy.execute(_plan(plpy, "delete_all", DELETE_ALL_SQL, [T, "pg_catalog.name"]), [tenant, role])
    if gone:
        audit.record(plpy, {"caller": caller}, tenant, "revoke_tenant",
                     detail={"role": role, "prefixes": sorted(g["prefix"] for g in gone)})
        _rename_channels(plpy, tenant)
    # A '*' grant, or a group's, may still let the role in: say so, as revoke does.
    if _exists(plpy, role):
        for g in plpy.execute(_plan(plpy, "applying", APPLYING_SQL, [T, "pg_catalog.name"]), [tenant, role]):
            plpy.notice("role %s may still act on tenant %s: through the grant of %s on prefix %s in tenant %s (%s)"
                        % (role, tenant, g["role_name"], _shown(g["prefix"]), g["tenant_id"],
                           ", ".join(g["capabilities"])))
    return bool(gone)


# -- hush.effective_access ----------------------------------------------------------------

@api
def effective_access(plpy: Any, role: Any, tenant: Any) -> list:
    """What `role` may do in `tenant`: one row per capability and prefix, with the grant that
    gives it (the one access.via names in audit rows) and whether the role may call that
    capability's functions now. Admins may ask of any role; others of themselves and of the
    roles whose privileges they have."""
    validate.tenant(tenant, allow_all=True)
    return privileged.call(plpy, OWNER, _effective_access, role, tenant)


@privileged.step(OWNER)
def _effective_access(plpy: Any, caller: str, role: Any, tenant: str) -> list:
    who = _role(plpy, role)
    name = who["rolname"]
    seen = plpy.execute(_plan(plpy, "viewer", VIEWER_SQL, ["pg_catalog.name", "pg_catalog.name"]), [caller, name])[0]
    if not (seen["admin"] or seen["own"]):
        raise Fail(INSUFFICIENT_PRIVILEGE, "role %s may not see the access of role %s" % (caller, name),
                   hint="A role sees its own (and its groups'); hush_admin sees every role's.")
    callable_now = callable_caps(plpy, name)
    if who["rolsuper"]:
        return [_entry(c, "", None, None, None, c in callable_now) for c in access.CAPABILITIES]
    grants = [dict(g) for g in plpy.execute(_plan(plpy, "applying", APPLYING_SQL, [T, "pg_catalog.name"]),
                                            [tenant, name])]
    # access.via's order: the role's own grants first, the tenant's before '*', then by role name.
    grants.sort(key=lambda g: (g["role_name"] != name, g["tenant_id"] == "*", g["role_name"]))
    best: dict = {}
    for g in grants:
        for cap in access.CAPABILITIES:
            held = [a for a in access.allowing(cap) if a in g["capabilities"]]
            if held and (cap, g["prefix"]) not in best:
                implied = None if cap in held else held[0]
                best[(cap, g["prefix"])] = _entry(cap, g["prefix"], g["tenant_id"], g["role_name"], implied,
                                                  cap in callable_now)
    order = {c: i for i, c in enumerate(access.CAPABILITIES)}
    return [best[k] for k in sorted(best, key=lambda k: (k[1], order[k[0]]))]


def _entry(cap: str, prefix: str, tenant: Any, role: Any, implied_by: Any, can_call: bool) -> dict:
    return {"capability": cap, "prefix": prefix, "grant_tenant": tenant, "grant_role": role,
            "implied_by": implied_by, "callable": can_call}
