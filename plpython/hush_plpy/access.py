"""Whose authority, and may it act on this tenant.

hush acts with the authority of the role the calling code runs as:
CURRENT_USER at the call site, with the roles whose privileges it has
(pg_has_role ... 'USAGE': a NOINHERIT member that has not switched role gets
nothing). Never the session's (SESSION_USER, the `role` setting,
is_superuser): PostgreSQL runs code as other roles inside a session, in
definer functions and triggers and in the index expressions that ANALYZE,
VACUUM, REINDEX and friends evaluate as the table's owner. A superuser acting
as itself may act on every tenant.

may_act is that rule in SQL, written once: privileged steps use it with the
caller their ticket carries (the owner_steps row policy then confines them to
the tenant they checked); the OAuth worker's scan with its caller per row.

Inside a tenant, grants are scoped (hush.grant): capabilities (CAPABILITIES) on
the names that start with a prefix. via/may/prefixes are those checks in SQL,
written once too, and each API step asks for the capability it needs on the
name it acts on: reads and listings see nothing outside the caller's prefixes,
writes outside them are refused from the name alone.
"""
from __future__ import annotations


from . import errors, privileged, validate
from .errors import TENANT_ACCESS_DENIED, Fail

SERIALIZATION_FAILURE = "40001"  # PostgreSQL's: what a client retries on

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

_plans: dict[str, Any] = {}


def cached_plan(key: str) -> Any:
    """The plan prepared under `key`, or None: lets hot paths skip building SQL text."""
    return _plans.get(key)


def plan(plpy: Any, key: str, sql: str, types: list[str]) -> Any:
    """A prepared plan kept for the life of the backend."""
    p = _plans.get(key)
    if p is None:
        p = _plans[key] = plpy.prepare(sql, types)
    return p


# What a grant can allow, on the secrets (or, for oauth_*, the OAuth providers) whose
# names start with its prefix. hush.tenant_grants' CHECK lists the same, as
# sql/incremental/002-authority.sql wrote it: a capability added here needs a new
# incremental file that changes that CHECK.
CAPABILITIES = ("read", "list", "write", "delete", "destroy", "oauth_use", "oauth_manage", "audit")
# A capability is allowed by a grant holding it or one that implies it: a read tells that
# the name exists, a save's ON CONFLICT and RETURNING read the row, and a delete, restore or
# destroy tells whether the name exists (a restore returns its metadata too).
IMPLIED_BY = {"list": ("list", "read", "write", "delete", "destroy")}


def allowing(cap: str) -> tuple[str, ...]:
    """The capabilities a grant may hold to allow `cap`."""
    return IMPLIED_BY.get(cap, (cap,))


def _allowing_sql(cap: str) -> str:
    """SQL text[] of allowing(cap), for `cap` a SQL expression (a parameter)."""
    cases = " ".join("WHEN %s THEN ARRAY[%s]::pg_catalog.text[]"
                     % (_lit(c), ", ".join(_lit(x) for x in implied)) for c, implied in IMPLIED_BY.items())
    return f"(CASE {cap} {cases} ELSE ARRAY[{cap}]::pg_catalog.text[] END)"


def _lit(s: str) -> str:
    return "'%s'::pg_catalog.text" % s  # capability names only: letters and _


def roles_of(role: str) -> str:
    """SQL: the names of the roles whose privileges `role` has, itself included: the roles
    pg_has_role(role, r, 'USAGE') is true for (memberships followed through roles that
    INHERIT; every role for a superuser), from the role set PostgreSQL keeps per backend
    until memberships change. One scan of pg_roles, ~60 ns a role: a recursive query over
    pg_auth_members is cheaper to run in a large cluster, but its plan, built with every
    statement that holds it even where it never runs, cost each read ~40 µs, 4 times the
    rest of its grant check (EXPLAIN ANALYZE of secrets.READ_SQL)."""
    return f"""ARRAY(SELECT r.rolname FROM pg_catalog.pg_roles r
                 WHERE pg_catalog.pg_has_role({role}, r.oid, 'USAGE'))"""


def superuser(role: str) -> str:
    """SQL: whether `role` is a superuser (acting as itself, it may act on every tenant)."""
    return f"""COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) {role}), false)"""


def _tenant_grants(tenant: str) -> str:
    """SQL: the FROM and first WHERE condition of every grant on `tenant` (and '*')."""
    return f"""FROM hush.tenant_grants g
          WHERE g.tenant_id OPERATOR(pg_catalog.=) ANY (ARRAY[{tenant}, '*'::pg_catalog.text])"""


def _grants(tenant: str, role: str) -> str:
    """SQL: the FROM and first WHERE conditions of `role`'s grants on `tenant` (and '*'),
    its own and those of the roles whose privileges it has. pg_has_role stays the authority;
    roles_of only narrows the rows it is asked about (an index probe per role, where the
    tenant's grants could be thousands). The checks try _own_grants first, which needs no
    role set. to_regrole: a grant to a role dropped since is NULL, not an error.
    pg_has_role says a superuser has every role's privileges: checks that allow a superuser
    anyway may ignore it, those that name a grant use _members."""
    return f"""{_tenant_grants(tenant)}
            AND g.role_name OPERATOR(pg_catalog.=) ANY ({roles_of(role)})
            AND pg_catalog.pg_has_role({role},
                  pg_catalog.to_regrole(pg_catalog.quote_ident(g.role_name)), 'USAGE')"""


def _members(tenant: str, role: str) -> str:
    """SQL: _grants for naming the grant that allowed something: none for a superuser, which
    acts as itself (its own grants, and `superuser` in the audit detail), not through every
    other role's grant."""
    return f"""{_grants(tenant, role)}
            AND NOT {superuser(role)}"""


def _own_grants(tenant: str, role: str) -> str:
    """SQL: like _grants, `role`'s own grants only (a role always has its own privileges):
    one index probe and no role set. The checks try these first, and _grants only when
    these do not answer."""
    return f"""{_tenant_grants(tenant)}
            AND g.role_name OPERATOR(pg_catalog.=) {role}"""


def may_act(tenant: str, role: str) -> str:
    """SQL: whether `role` holds any grant on `tenant` (both SQL expressions), or is a
    superuser: the tenant-level check, SH020 when false."""
    return f"""(EXISTS (SELECT 1 {_own_grants(tenant, role)}) OR EXISTS (SELECT 1 {_grants(tenant, role)})
         OR {superuser(role)})"""


def _via_in(grants: str, cap: str, name: str) -> str:
    return f"""(SELECT ARRAY[g.tenant_id, g.role_name::pg_catalog.text, g.prefix]
          {grants}
            AND g.capabilities OPERATOR(pg_catalog.&&) {_allowing_sql(cap)}
            AND pg_catalog.starts_with({name}, g.prefix)
          ORDER BY pg_catalog.length(g.prefix) DESC, g.tenant_id OPERATOR(pg_catalog.=) '*', g.role_name
          LIMIT 1)"""


def via(tenant: str, role: str, cap: str, name: str) -> str:
    """SQL: the grant that lets `role` do `cap` on `name` in `tenant`, as text[] (tenant,
    role, prefix), or NULL. Grants add up, so any one allows; the one recorded is the
    role's own if it has one (COALESCE evaluates the other roles' only without), the
    longest prefix, then the tenant's own over '*', then by role name."""
    return f"""COALESCE({_via_in(_own_grants(tenant, role), cap, name)},
                    {_via_in(_members(tenant, role), cap, name)})"""


def vias(tenant: str, role: str, cap: str, names: str) -> str:
    """SQL rows (i, name, via): via() of each element of the text[] `names` (i: its place,
    from 1), the same grant chosen the same way. One join of the names with the role's
    grants, read once: a via() subquery per name costs ~15 µs, a third of a 10,000-secret
    save_secrets."""
    return f"""SELECT DISTINCT ON (n.i) n.i, n.name,
               CASE WHEN g.prefix IS NOT NULL
                    THEN ARRAY[g.tenant_id, g.role_name::pg_catalog.text, g.prefix] END AS via
          FROM pg_catalog.unnest({names}) WITH ORDINALITY AS n(name, i)
          LEFT JOIN (SELECT g.tenant_id, g.role_name, g.prefix {_own_grants(tenant, role)}
                        AND g.capabilities OPERATOR(pg_catalog.&&) {_allowing_sql(cap)}
                     UNION
                     SELECT g.tenant_id, g.role_name, g.prefix {_members(tenant, role)}
                        AND g.capabilities OPERATOR(pg_catalog.&&) {_allowing_sql(cap)}) AS g
                 ON pg_catalog.starts_with(n.name, g.prefix)
         ORDER BY n.i, g.role_name OPERATOR(pg_catalog.=) {role} DESC NULLS LAST,
                  pg_catalog.length(g.prefix) DESC, g.tenant_id OPERATOR(pg_catalog.=) '*', g.role_name"""


def _allows_in(grants: str, cap: str, name: str) -> str:
    return f"""EXISTS (SELECT 1 {grants}
            AND g.capabilities OPERATOR(pg_catalog.&&) {_allowing_sql(cap)}
            AND pg_catalog.starts_with({name}, g.prefix))"""


def may(tenant: str, role: str, cap: str, name: str) -> str:
    """SQL: whether `role` may do `cap` on `name` in `tenant`: via's test without choosing
    a grant (EXISTS stops at the first that allows; OR at the first arm that is true)."""
    return f"""({_allows_in(_own_grants(tenant, role), cap, name)}
         OR {_allows_in(_grants(tenant, role), cap, name)} OR {superuser(role)})"""


def prefixes(tenant: str, role: str, cap: str) -> str:
    """SQL text[]: the prefixes under which `role` may do `cap` in `tenant` ('{""}' for a
    superuser; empty for none). Listings keep the names that start with one of them
    (`name ^@ ANY (prefixes)`), in the same WHERE as the page and its count."""
    return f"""(CASE WHEN {superuser(role)} THEN ARRAY['']::pg_catalog.text[]
          ELSE COALESCE((SELECT pg_catalog.array_agg(DISTINCT g.prefix) {_grants(tenant, role)}
                            AND g.capabilities OPERATOR(pg_catalog.&&) {_allowing_sql(cap)}),
                        '{{}}'::pg_catalog.text[]) END)"""


def grant_detail(v: Any) -> Any:
    """An audit detail naming the grant `via` returned (None when there was none: a
    superuser acting as itself, which the detail says on its own)."""
    if not v:
        return None
    return {"grant": {"tenant": v[0], "role": v[1], "prefix": v[2]}}


# The owner_steps row policy: hush's privileged steps, running as hush_owner (or
# hush_retention, a member of it), see the one tenant they set in hush.tenant
# after checking their caller's grant (enter below). Keyed on CURRENT_USER, not
# on a role list: a policy TO hush_owner would apply to every caller reading
# through hush_owner's views too.
OWNER_STEPS = f"""CURRENT_USER OPERATOR(pg_catalog.=) ANY (ARRAY['hush_owner', 'hush_retention']::pg_catalog.name[])
       AND tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting({privileged.TENANT_SETTING}, true)"""
# The tables that hold tenant data: each has row-level security (ENABLE'd and FORCE'd) and
# the policy owner_steps, USING and WITH CHECK OWNER_STEPS, written once by the build
# ({{tenant_policies}} in sql/idempotent/10_policies.sql).
TENANT_TABLES = ("secrets", "secret_versions", "secret_events", "audit_log", "oauth_providers", "oauth_pending",
                 "oauth_connections", "oauth_events", "oauth_refresh_requests")


def act_in(plpy: Any, tenant: str) -> None:
    """In a privileged step that checks no caller's grant on the tenant (an admin's, a grant
    change, maintenance): act in `tenant` from here on, as owner_steps admits; its audit rows
    too, which the row policy checks on insert."""
    plpy.execute(plan(plpy, "set_tenant", privileged.SET_TENANT_SQL, ["pg_catalog.text"]), [tenant])


# -- privileged side: a step acting for the caller its ticket names ---------------------

# Whether the transaction reads through one snapshot (REPEATABLE READ, SERIALIZABLE): its
# grant checks see hush.tenant_grants as they were when it took that snapshot.
SNAPSHOT = "pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed'"


# Whether reads of a tenant are recorded. "Off" counts only when it is surely the
# committed, current state: the reading transaction has written nothing (so it
# cannot hold an uncommitted switch of its own, which a ROLLBACK would take back
# with no trace) and reads in READ COMMITTED (a statement snapshot: not one taken
# before an admin switched auditing back on). Anything else records.
def audit_reads(t: str) -> str:
    return f"""CASE WHEN {t}.audit_reads IS NOT FALSE THEN true
            WHEN pg_catalog.txid_current_if_assigned() IS NOT NULL THEN true
            ELSE {SNAPSHOT} END"""


# One round trip: set hush.tenant (the owner_steps row policy confines every
# statement of the step to it), test the caller's grant, read the tenant's settings;
# with a capability, the grant that allows it on a name ($3 capability, $4 name) or
# the prefixes under which it is allowed ($3).
ENTER_SQL = f"""
SELECT {privileged.set_tenant("$1")} AS tenant,
       {may_act("$1", "$2")} AS allowed,
       {superuser("$2")} AS superuser, {SNAPSHOT} AS snapshot,
       {audit_reads("t")} AS audit_reads, COALESCE(t.audit_rows_per_second, 0) AS audit_limit,
       t.change_channel{{write_cols}}{{cap_cols}}
  FROM (SELECT 1) AS one
  LEFT JOIN hush.tenants t ON t.tenant_id OPERATOR(pg_catalog.=) $1
"""
# Writes also need the value size limit, the active root key id (read from the
# table on every write, so a newly activated key is used at once) and the tenant's
# version retention (retention.applies).
WRITE_COLS = """,
       COALESCE(t.max_value_bytes, 65536) AS max_value_bytes,
       (SELECT k.key_id FROM hush.root_keys k WHERE k.state OPERATOR(pg_catalog.=) 'active') AS active_key_id,
       COALESCE(t.max_versions, 0) AS tenant_max_versions,
       NULLIF(t.destroy_versions_after, '0'::pg_catalog.interval) AS tenant_destroy_versions_after"""
CAP_COLS = {None: ("", []),
            "name": (f""",
       {via("$1", "$2", "$3", "$4")} AS via""", ["pg_catalog.text", "pg_catalog.text"]),
            "prefixes": (f""",
       {prefixes("$1", "$2", "$3")} AS prefixes""", ["pg_catalog.text"])}


def _enter_plan(plpy: Any, write: bool, mode: Any) -> Any:
    key = "enter.%s.%s" % ("write" if write else "read", mode)
    p = _plans.get(key)
    if p is None:
        cols, types = CAP_COLS[mode]
        p = plan(plpy, key, ENTER_SQL.format(write_cols=WRITE_COLS if write else "", cap_cols=cols),
                 ["pg_catalog.text", "pg_catalog.name", *types])
    return p


def deny(caller: str, tenant: str) -> None:
    # The same error whether or not the tenant or any secret exists there; the tenant only by
    # its first characters, since a value passed in its place (an API key) is well-formed too.
    raise Fail(TENANT_ACCESS_DENIED, "role %s may not act on tenant %s" % (caller, validate.show(tenant)),
               hint="An admin grants it with hush.grant_tenant(role, tenant).")


def refuse(caller: str, tenant: str, cap: str, name: str) -> Fail:
    """SH020 for a capability the caller's grants on the tenant do not give it on `name`:
    decided from the name and the grants alone, never from what exists under the name."""
    return Fail(TENANT_ACCESS_DENIED, "role %s may not %s %s in tenant %s"
                % (caller, cap, validate.show(name), tenant),
                hint="An admin grants it with hush.grant(role, tenant, prefix, ARRAY['%s']); "
                     "hush.effective_access(role, tenant) shows what the role holds." % cap)


def admit(tenant: str) -> None:
    """Note that this call's caller passed its grant check on `tenant`: a failure from here on
    may show the tenant in its log line (errors.admitted), if it is a well-formed tenant id (a
    '*' grant passes the check for any text)."""
    errors.admitted = tenant if validate.tenant_ok(tenant) else None


def enter(plpy: Any, caller: str, tenant: Any, write: bool = False, audits: bool = False, cap: Any = None,
          name: Any = None, missing: Any = None) -> dict[str, Any]:
    """In a privileged step: validate the tenant, set it for the row policies, check the
    caller's grant. Returns the settings row (with max_value_bytes and active_key_id when
    `write`) plus `caller`. `audits`: the step writes audit rows, as every `write` does, so
    the tenant's audit rate limit applies (SH023).

    With `cap` and `name`: the row's `via` is the grant allowing it (grant_detail() makes
    the audit detail of it), and without one the step stops: with `missing` (the Fail a
    name that does not exist gets, so names outside the caller's grants do not show), or
    SH020 (refuse()). With `cap` alone: `prefixes`, those under which it is allowed."""
    validate.tenant(tenant)
    mode = None if cap is None else "prefixes" if name is None else "name"
    args = [tenant, caller] + ([cap] if mode else []) + ([name] if mode == "name" else [])
    row = dict(plpy.execute(_enter_plan(plpy, write, mode), args)[0])
    if not row["allowed"]:
        deny(caller, tenant)
    admit(tenant)  # the caller holds a grant on the tenant: a failure's log line may name it
    if mode == "name" and row["via"] is None and not row["superuser"]:
        raise missing if missing is not None else refuse(caller, tenant, cap, name)
    row["caller"] = caller
    if write or audits:
        still_granted(plpy, row)
    # Refused before anything is written; steps that enter otherwise and then record are
    # checked in audit.record.
    if (write or audits) and row["audit_limit"]:
        from . import audit  # audit imports this module
        audit.check_rate(plpy, tenant, row["audit_limit"])
        row["rate_checked"] = True
    return row


# Which of the grants a write relies on ($1..$3: their tenants, roles and prefixes) were
# changed or removed by a transaction that committed after this one took its snapshot: the
# row version the snapshot shows carries that transaction's id in xmax. A row version no
# one updated has xmax 0 or an aborted one (hush never row-locks tenant_grants: grants.py
# serialises its changes with a table lock, so xmax is never a mere locker's). The 32-bit
# xmax gets its epoch from the snapshot's, which it is within 2^31 of. A row lock taken by
# someone else (a superuser's FOR SHARE) would break this both ways: a lock's committed xid
# reads as a change, and a MultiXactId is not an xid (docs/access.md, "Access control", says not to).
# A committed xmax is not tested for visibility in the snapshot (txid_visible_in_snapshot):
# the snapshot lists running top-level transactions only, so a revoke made in a savepoint
# of a transaction running when the snapshot was taken would look visible, and be missed.
CHANGED_SQL = """
SELECT pg_catalog.count(*) AS changed
  FROM hush.tenant_grants g
  JOIN ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.name[]),
                  pg_catalog.unnest($3::pg_catalog.text[])) AS v(tenant_id, role_name, prefix)
    ON g.tenant_id OPERATOR(pg_catalog.=) v.tenant_id AND g.role_name OPERATOR(pg_catalog.=) v.role_name
   AND g.prefix OPERATOR(pg_catalog.=) v.prefix
  CROSS JOIN LATERAL (SELECT pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()) AS base,
                             g.xmax::pg_catalog.text::pg_catalog.int8 AS x) AS n
  CROSS JOIN LATERAL (SELECT n.base OPERATOR(pg_catalog.-) n.base OPERATOR(pg_catalog.%) 4294967296
                             OPERATOR(pg_catalog.+) n.x AS same_epoch) AS e
 WHERE n.x OPERATOR(pg_catalog.<>) 0
   AND pg_catalog.txid_status(CASE
         WHEN e.same_epoch OPERATOR(pg_catalog.-) n.base OPERATOR(pg_catalog.>) 2147483648
              THEN e.same_epoch OPERATOR(pg_catalog.-) 4294967296
         WHEN n.base OPERATOR(pg_catalog.-) e.same_epoch OPERATOR(pg_catalog.>) 2147483648
              THEN e.same_epoch OPERATOR(pg_catalog.+) 4294967296
         ELSE e.same_epoch END) OPERATOR(pg_catalog.=) 'committed'
"""


def still_granted(plpy: Any, ctx: dict[str, Any], vias: Any = None) -> None:
    """In a step that writes, once its grant check passed: in a REPEATABLE READ or SERIALIZABLE
    transaction (ctx's `snapshot`), whose check saw the grants as of its snapshot, 40001
    (could not serialize: retry) when the grant that allowed the write (ctx's `via`, or each
    of `vias`) was revoked or changed since, by a transaction that has committed; the step's
    write is rolled back with it, and the retry's new snapshot sees the revoke (SH020). No
    lock is taken: a reader or writer cannot hold up a revoke, which bites at the next
    statement. In READ COMMITTED every statement's snapshot is fresh, and a superuser
    acting as itself holds no grant: nothing to check."""
    if not ctx.get("snapshot"):
        return
    held = sorted({tuple(v) for v in ([ctx.get("via")] if vias is None else vias) if v})
    if not held:
        return
    p = plan(plpy, "access.still_granted", CHANGED_SQL, ["pg_catalog.text[]", "pg_catalog.name[]", "pg_catalog.text[]"])
    if plpy.execute(p, [[v[0] for v in held], [v[1] for v in held], [v[2] for v in held]])[0]["changed"]:
        raise Fail(SERIALIZATION_FAILURE, "a grant this call relies on was revoked or changed after this "
                   "transaction took its snapshot; nothing was written",
                   hint="Retry the transaction: its new snapshot sees the grants as they are now.")


def actor(ctx: dict[str, Any]) -> Any:
    """The audit detail (JSON text) of a step's own row: the grant that allowed it (ctx's
    `via`, from enter(cap=..., name=...)) and that a superuser acted as itself; None when
    neither applies."""
    detail = grant_detail(ctx.get("via")) or {}
    if ctx.get("superuser"):
        detail["superuser"] = True
    if not detail:
        return None
    import json  # write paths only
    return json.dumps(detail, sort_keys=True)
