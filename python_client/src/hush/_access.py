"""Scoped grants from Python: hush.grant, hush.revoke and hush.effective_access as Calls,
and their typed results, for hush.Tenants and hush.Client (and their hush.aio twins).

A grant lets a role use some capabilities (CAPABILITIES) on the secrets, or OAuth
providers, whose names start with a literal prefix in a tenant ('' = all of it); grants
add up, there are no deny rules. Tenants.grant and revoke without `prefix=` or
`capabilities=` stay the whole-tenant shorthand (hush.grant_tenant, hush.revoke_tenant),
which is what they were before scoped grants, so callers written then keep their meaning.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Iterable, Mapping, Any

from ._calls import Call
from ._errors import InvalidArgument

# The server's list (plpython/hush_plpy/access.py; tests/test_client_access.py keeps them
# equal), for the CLI's choices and help. The server checks what it is sent on its own.
CAPABILITIES = ("read", "list", "write", "delete", "destroy", "oauth_use", "oauth_manage", "audit")


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """One grant (a row of `hush.grant` or `hush.revoke`): `role_name` may use `capabilities`
    on the names that start with `prefix` in `tenant_id` ('*' = every tenant; prefix '' =
    the whole tenant). After a revoke that removed the last capability the grant is gone and
    `capabilities` is empty. `notices` are what the server said beside it: after a revoke,
    the grant through which the role may still use a capability it removed (a broader one,
    or `read`, `write`, `delete` or `destroy` implying `list`)."""

    tenant_id: str
    role_name: str
    prefix: str
    capabilities: list[str]
    granted_at: datetime | None
    granted_by: str | None
    notices: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> AccessGrant:
        return cls(r["tenant_id"], r["role_name"], r["prefix"], list(r["capabilities"] or []), r["granted_at"],
                   r["granted_by"])


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """A capability a role holds on a prefix of a tenant (a row of `hush.effective_access`),
    and why: the grant's tenant ('*' or the tenant) and role (the role itself, or one whose
    privileges it has; both None for a superuser, who needs no grant); `implied_by` is the
    capability ('read', 'write', 'delete' or 'destroy') through which a grant implies a
    `list`, else None; `callable` whether the role can call that capability's functions now
    (it holds the hush role they need)."""

    capability: str
    prefix: str
    grant_tenant: str | None
    grant_role: str | None
    implied_by: str | None
    callable: bool

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> AccessEntry:
        return cls(r["capability"], r["prefix"], r["grant_tenant"], r["grant_role"], r["implied_by"],
                   bool(r["callable"]))


def capability_list(capabilities: str | Iterable[str]) -> list[str]:
    """The capabilities as a list: one given as a string is one capability (not its letters)."""
    return [capabilities] if isinstance(capabilities, str) else list(capabilities)


def scoped(prefix: str | None, capabilities: str | Iterable[str] | None) -> tuple[str, list[str]] | None:
    """(prefix, capabilities) for hush.grant / hush.revoke, or None for the whole-tenant
    shorthand (neither given). A prefix without capabilities is refused here: the server's
    functions take no default, and guessing "every capability" would widen a grant."""
    if capabilities is None:
        if prefix is not None:
            raise InvalidArgument("a grant on a prefix needs capabilities=[...] (read, list, write, ...)")
        return None
    return ("" if prefix is None else prefix), capability_list(capabilities)


GRANT_COLS = "tenant_id, role_name, prefix, capabilities, granted_at, granted_by"
# hush.grant and hush.revoke: reserved words, so schema-qualified, as everywhere here anyway.
ARGS = ("CAST(%(role)s AS pg_catalog.name), CAST(%(tenant)s AS pg_catalog.text), "
        "CAST(%(prefix)s AS pg_catalog.text), CAST(%(capabilities)s AS pg_catalog.text[])")


def change(how: str, role: str, tenant: str, prefix: str, capabilities: list[str]) -> Call[AccessGrant]:
    """hush.grant or hush.revoke (`how`)."""
    function = {"grant": "grant", "revoke": "revoke"}[how]
    return Call(f"SELECT {GRANT_COLS} FROM hush.{function}({ARGS})",
                {"role": role, "tenant": tenant, "prefix": prefix, "capabilities": capabilities},
                lambda rows: AccessGrant.from_row(rows[0]))


def effective_access(role: str, tenant: str) -> Call[list[AccessEntry]]:
    return Call("SELECT capability, prefix, grant_tenant, grant_role, implied_by, callable "
                "FROM hush.effective_access(CAST(%(role)s AS pg_catalog.name), CAST(%(tenant)s AS pg_catalog.text))",
                {"role": role, "tenant": tenant}, lambda rows: [AccessEntry.from_row(r) for r in rows])


def with_notices(result: AccessGrant, notices: list[str]) -> AccessGrant:
    return replace(result, notices=tuple(notices))
