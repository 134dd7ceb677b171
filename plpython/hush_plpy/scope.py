"""Capability checks of the secret API that access.enter cannot make alone: on a
secret named by id (resolved to its name first), on many names at once, and the
reason a read came back empty.

A secret's name decides what a caller may do with it (hush.grant: capabilities
on name prefixes). `list` is what makes a name visible: a secret whose name the
caller may not list answers exactly like one that does not exist, whatever was
asked; one it may list but not act on as asked is refused (SH020), which tells
it nothing it could not list. Everything here runs inside privileged steps
(privileged.py) that have set hush.tenant already, and only on paths that are
not the hot one (reads fold their check into secrets.READ_SQL).
"""
from __future__ import annotations

from . import access
from .access import plan

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

EQ = "OPERATOR(pg_catalog.=)"
# What a check looks at: the name given, the name of the secret with the id given (none
# when there is no such secret), or each of many names given.
SOURCES = {
    "name": ("SELECT $2::pg_catalog.text AS name", "pg_catalog.text"),
    "id": (f"SELECT s.name FROM hush.secrets s WHERE s.tenant_id {EQ} $1 AND s.id {EQ} $2", "pg_catalog.uuid"),
}
# $1 tenant, $2 the key (name, id or names), $3 the caller, $4 the capability asked for.
# `seen`: the grant letting the caller list the name; `via`: the one allowing the capability.
CHECK_SQL = f"""
SELECT {access.may_act("$1", "$3")} AS allowed, {access.superuser("$3")} AS superuser, n.name,
       {access.via("$1", "$3", "'list'::pg_catalog.text", "n.name")} AS seen,
       {access.via("$1", "$3", "$4", "n.name")} AS via
  FROM (SELECT 1) AS one LEFT JOIN ({{source}}) AS n ON true
"""
# The same for many names, in the order given (none: one row, name NULL).
CHECK_MANY_SQL = f"""
SELECT {access.may_act("$1", "$3")} AS allowed, {access.superuser("$3")} AS superuser, c.name, l.via AS seen, c.via
  FROM (SELECT 1) AS one
  LEFT JOIN ({access.vias("$1", "$3", "$4", "$2")}) AS c ON true
  LEFT JOIN ({access.vias("$1", "$3", "'list'::pg_catalog.text", "$2")}) AS l ON l.i {EQ} c.i
 ORDER BY c.i
"""


def check(plpy: Any, caller: str, tenant: str, by: str, key: Any, cap: str) -> list[dict]:
    """One row per name (one for "name" and "id", the name None for an id that matches no
    secret): whether the caller may act on the tenant, is a superuser, and the grants that
    let it list the name (`seen`) and do `cap` on it (`via`). SH020 when the caller holds no
    grant on the tenant at all."""
    if by == "names":
        p = plan(plpy, "scope.names", CHECK_MANY_SQL, ["pg_catalog.text", "pg_catalog.text[]", "pg_catalog.name",
                                                       "pg_catalog.text"])
    else:
        src, typ = SOURCES[by]
        p = plan(plpy, "scope." + by, CHECK_SQL.format(source=src),
                 ["pg_catalog.text", typ, "pg_catalog.name", "pg_catalog.text"])
    rows = [dict(r) for r in plpy.execute(p, [tenant, key, caller, cap])]
    if not rows[0]["allowed"]:
        access.deny(caller, tenant)
    # Past the tenant-level check: a not-found or refusal decided from these rows may name
    # the tenant in its log line, as it would after access.enter.
    access.admit(tenant)
    return rows


def resolve(plpy: Any, caller: str, tenant: str, by: str, key: Any, cap: str) -> tuple[str, Any]:
    """(name, via) of the secret a call names, when the caller may do `cap` on it: not found
    (SH010) when no secret has that id or the caller may not list its name, SH020 when it may
    list it but not do `cap`. By name nothing is looked up: the name decides."""
    from .secrets import not_found  # secrets imports this module
    r = check(plpy, caller, tenant, by, key, cap)[0]
    if r["name"] is None or (r["seen"] is None and not r["superuser"]):
        raise not_found(by, key, tenant)
    if r["via"] is None and not r["superuser"]:
        raise access.refuse(caller, tenant, cap, r["name"])
    return r["name"], r["via"]


def refused(rows: list[dict], seen_only: bool = False) -> list[str]:
    """The names of check() rows the caller may not act on as asked; `seen_only`: of those it
    may list (a read keeps the others hidden: they answer as names that do not exist)."""
    return [r["name"] for r in rows if r["name"] is not None and r["via"] is None and not r["superuser"]
            and (r["seen"] is not None or not seen_only)]


def refuse_many(caller: str, tenant: str, cap: str, names: list[str], of: int) -> Any:
    """SH020 for a call on many names, some of which the caller may not `cap`: the first few,
    each as validate.show() gives it (a name may be a value passed in its place)."""
    from . import validate
    from .errors import TENANT_ACCESS_DENIED, Fail
    return Fail(TENANT_ACCESS_DENIED, "role %s may not %s %d of %d secrets in tenant %s: %s%s"
                % (caller, cap, len(names), of, validate.show(tenant), ", ".join(validate.show(n) for n in names[:10]),
                   " (and %d more)" % (len(names) - 10) if len(names) > 10 else ""),
                hint="An admin grants it with hush.grant(role, tenant, prefix, ARRAY['%s']); "
                     "hush.effective_access(role, tenant) shows what the role holds. Nothing was done." % cap)


def enter(plpy: Any, caller: str, tenant: str, by: str, key: Any, cap: str, write: bool = False,
          audits: bool = False) -> dict[str, Any]:
    """access.enter for a step that does `cap` on one secret: by name decided from the name
    before any lookup; by id on the name resolve() finds. The row's `via` is the grant."""
    if by == "name":
        return access.enter(plpy, caller, tenant, write=write, audits=audits, cap=cap, name=key)
    ctx = access.enter(plpy, caller, tenant, write=write, audits=audits)
    ctx["via"] = resolve(plpy, caller, tenant, by, key, cap)[1]
    if write or audits:
        access.still_granted(plpy, ctx)
    return ctx


def listed(prefixes: list[str]) -> Any:
    """The prefixes a listing keeps (access.enter(cap=...)'s), None for the whole tenant."""
    return None if "" in prefixes else prefixes
