"""Which OAuth providers a role may use or manage in a tenant: the oauth_use and
oauth_manage capabilities of hush.grant, checked against the provider's NAME (a
grant on the prefix 'github' covers the providers github, github-enterprise, ...).

oauth_use (a connection's tokens, its refresh lease, a refresh asked of the
worker, the worker's own scans) answers a provider outside the caller's prefixes
exactly as one that is not registered (SH070), so prefixes do not tell which
providers exist. oauth_manage (providers and their client secrets,
authorizations, stored tokens, revocation, disconnects) refuses outside with
SH020, decided from the name alone before any lookup: a save that found an
existing provider outside would reveal it. The listings (providers, connections,
events) keep the providers under the prefixes of either, in their statement's
WHERE, so what is outside is not counted either. Audit rows name the grant that
allowed the step (granted()).
"""
from __future__ import annotations

from . import access, oauth_lease, validate
from .access import plan
from .errors import OAUTH_PROVIDER_NOT_FOUND, Fail

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

USE, MANAGE = "oauth_use", "oauth_manage"


def _cap(cap: str) -> str:
    return "'%s'::pg_catalog.text" % cap  # USE or MANAGE: letters and _


def absent(tenant: str, name: str) -> Fail:
    """SH070: what a provider that is not registered gets, and one outside the caller's oauth_use."""
    return Fail(OAUTH_PROVIDER_NOT_FOUND, "OAuth provider %s is not registered in tenant %s"
                % (validate.show(name), tenant), hint="Register it with register_provider (hush oauth provider add).")


def use(plpy: Any, caller: str, tenant: str, name: str, write: bool = False, lease_account: Any = None,
        audits: bool = False) -> dict:
    """access.enter for a step on a provider's tokens: SH070 outside the caller's oauth_use.
    `lease_account`: a lease step, where a provider that is not there meets the tenant's
    reader_refresh check (SH077) first; one outside meets it too, so the two stay alike.
    `write`, `audits`: as access.enter's (a step that writes: its grant still held, the
    audit rate limit)."""
    missing = absent(tenant, name)
    try:
        return access.enter(plpy, caller, tenant, write=write, audits=audits, cap=USE, name=name, missing=missing)
    except Fail as f:
        if f is missing and lease_account is not None:
            oauth_lease.rights(plpy, caller, tenant, name, lease_account)
        raise


def manage(plpy: Any, caller: str, tenant: str, name: str, write: bool = False, missing: Any = None,
           audits: bool = False) -> dict:
    """access.enter for a step that manages a provider: SH020 outside the caller's oauth_manage."""
    return access.enter(plpy, caller, tenant, write=write, audits=audits, cap=MANAGE, name=name, missing=missing)


def visible(tenant: str, role: str, col: str) -> str:
    """SQL: whether the provider named by `col` is under a prefix of `role`'s oauth_use or
    oauth_manage grants in `tenant` (SQL expressions; the prefixes are uncorrelated
    subqueries, computed once per statement)."""
    return f"""{col} OPERATOR(pg_catalog.^@) ANY ({access.prefixes(tenant, role, _cap(USE))}
           OPERATOR(pg_catalog.||) {access.prefixes(tenant, role, _cap(MANAGE))})"""


# Whether the worker's role may refresh a connection c (its caller, a parameter: {caller}):
# oauth_use on its provider in its tenant, per row.
SERVES = access.may("c.tenant_id", "{caller}", _cap(USE), "c.provider")

VIAS_SQL = f"""
SELECT u.name, {access.via("$1", "$2", _cap(USE), "u.name")} AS via
  FROM pg_catalog.unnest($3) AS u(name)
"""


def usable(plpy: Any, ctx: dict, tenant: str, names: Any) -> dict:
    """In a step after access.enter (ctx): of these providers, those the caller may use, each
    with the grant that allows it (None for a superuser acting as itself). One statement
    for a batch of many connections."""
    rows = plpy.execute(plan(plpy, "oauth_grants.vias", VIAS_SQL,
                             ["pg_catalog.text", "pg_catalog.name", "pg_catalog.text[]"]),
                        [tenant, ctx["caller"], sorted(set(names))])
    return {r["name"]: r["via"] for r in rows if r["via"] is not None or ctx["superuser"]}


def granted(ctx: dict, detail: dict) -> dict:
    """An audit row's detail with the grant that allowed the step (ctx's `via`) in it."""
    g = access.grant_detail(ctx.get("via"))
    return dict(detail, **g) if g else detail
