"""hush.Tenants (and hush.aio.AsyncTenants): tenant settings and grants, for hush_admin
(effective_access: also for a role asking about itself)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable, overload

from . import _access as a
from . import _admin_calls as q
from ._access import AccessEntry, AccessGrant
from ._admin_models import TenantSettings
from ._exec import executor_for
from ._notices import async_notices, notices


class Tenants:
    """Tenant settings and grants (needs hush_admin), each one call of a hush.* function.

    `conn` is what hush.Secrets takes (a psycopg Connection or ConnectionPool, a
    SQLAlchemy Connection or Session); over a connection, each call joins its
    transaction. Every change is audited (configure_tenant, grant_tenant, revoke_tenant, grant_access,
    revoke_access).
    """

    def __init__(self, conn: Any) -> None:
        self._exec = executor_for(conn)

    def __repr__(self) -> str:
        return "Tenants()"

    def configure(self, tenant: str, *, audit_reads: bool | None = None, max_value_bytes: int | None = None,
                  recovery_days: int | None = None, audit_rows_per_second: int | None = None,
                  reader_refresh: bool | None = None, max_versions: int | None = None,
                  destroy_versions_after: timedelta | None = None,
                  expiry_warning: timedelta | None = None) -> TenantSettings:
        """Set a tenant's settings (hush.configure_tenant); None keeps the current one, so with
        none given it returns the settings as they are (and records that it was asked).
        `audit_reads=False` stops the audit row per read; `max_value_bytes` is 1 to 1,048,576;
        `recovery_days` (1 to 3,650) how long a deleted secret can be restored;
        `audit_rows_per_second` (0 to 10,000; 0, the default, is no limit) how many audit rows
        the tenant may write in a second before its audited calls fail with AuditRateLimited;
        `reader_refresh=False` keeps roles that are only readers from refreshing OAuth tokens
        themselves (they ask hush oauth-worker instead: hush.OAuth does it for them);
        `max_versions` (0 to 10,000; 0: no limit) and `destroy_versions_after` (timedelta(0): never)
        the version retention of secrets that set none of their own; `expiry_warning` (up to 10
        years; default 14 days) how far ahead Secrets.due() and the maintenance job's reminders look."""
        result: TenantSettings = self._exec.run([q.configure_tenant(tenant, audit_reads, max_value_bytes,
                                                                    recovery_days, audit_rows_per_second,
                                                                    reader_refresh, max_versions,
                                                                    destroy_versions_after, expiry_warning)])[0]
        return result

    @overload
    def grant(self, role: str, tenant: str) -> bool: ...
    @overload
    def grant(self, role: str, tenant: str, *, prefix: str | None = None,
              capabilities: str | Iterable[str]) -> AccessGrant: ...

    def grant(self, role: str, tenant: str, *, prefix: str | None = None,
              capabilities: str | Iterable[str] | None = None) -> bool | AccessGrant:
        """Let a role (and its members) act in a tenant ('*' = every tenant).

        With `capabilities` (read, list, write, delete, destroy, oauth_use, oauth_manage,
        audit) and optionally `prefix` (default '', the whole tenant): hush.grant, which adds
        them to the role's grant on that prefix and returns it (AccessGrant); the server
        refuses a capability whose functions the role cannot call (CapabilityNotCallable).
        Without either: the whole-tenant shorthand (hush.grant_tenant), every capability the
        role can call now; True when that changed anything."""
        return self._change("grant", role, tenant, prefix, capabilities)

    @overload
    def revoke(self, role: str, tenant: str) -> bool: ...
    @overload
    def revoke(self, role: str, tenant: str, *, prefix: str | None = None,
               capabilities: str | Iterable[str]) -> AccessGrant: ...

    def revoke(self, role: str, tenant: str, *, prefix: str | None = None,
               capabilities: str | Iterable[str] | None = None) -> bool | AccessGrant:
        """Take access away from a role in a tenant.

        With `capabilities` (and `prefix`, default ''): hush.revoke, which removes them from
        exactly that grant (GrantNotFound when the role has none on that prefix) and returns
        what is left of it (`capabilities` empty: the grant is gone); its `notices` name the
        grant through which the role may still use a removed capability (a broader one, or
        `read`, `write`, `delete` or `destroy` implying `list`). Without either: every grant
        of the role on the tenant, whatever its prefix (hush.revoke_tenant); True when there
        was one."""
        return self._change("revoke", role, tenant, prefix, capabilities)

    def _change(self, how: str, role: str, tenant: str, prefix: str | None,
                capabilities: str | Iterable[str] | None) -> bool | AccessGrant:
        """grant or revoke, scoped or whole-tenant (also what Client.grant and revoke call)."""
        scope = a.scoped(prefix, capabilities)
        if scope is None:
            result: bool = self._exec.run([q.grant(role, tenant) if how == "grant" else q.revoke(role, tenant)])[0]
            return result
        with notices(self._exec) as (executor, said):
            changed: AccessGrant = executor.run([a.change(how, role, tenant, *scope)])[0]
        return a.with_notices(changed, said)

    def effective_access(self, role: str, tenant: str) -> list[AccessEntry]:
        """What a role may do in a tenant, and why (hush.effective_access): one AccessEntry per
        capability and prefix, from its own grants, those of roles whose privileges it has,
        and '*' grants. An admin may ask about any role, other roles about themselves."""
        result: list[AccessEntry] = self._exec.run([a.effective_access(role, tenant)])[0]
        return result


class AsyncTenants:
    """hush.Tenants, awaited, over what hush.aio.AsyncSecrets takes."""

    def __init__(self, conn: Any) -> None:
        from .aio import _executor_for
        self._exec = _executor_for(conn)

    def __repr__(self) -> str:
        return "AsyncTenants()"

    async def configure(self, tenant: str, *, audit_reads: bool | None = None, max_value_bytes: int | None = None,
                        recovery_days: int | None = None, audit_rows_per_second: int | None = None,
                        reader_refresh: bool | None = None, max_versions: int | None = None,
                        destroy_versions_after: timedelta | None = None,
                        expiry_warning: timedelta | None = None) -> TenantSettings:
        result: TenantSettings = (await self._exec.run([q.configure_tenant(tenant, audit_reads, max_value_bytes,
                                                                           recovery_days, audit_rows_per_second,
                                                                           reader_refresh, max_versions,
                                                                           destroy_versions_after,
                                                                           expiry_warning)]))[0]
        return result

    @overload
    async def grant(self, role: str, tenant: str) -> bool: ...
    @overload
    async def grant(self, role: str, tenant: str, *, prefix: str | None = None,
                    capabilities: str | Iterable[str]) -> AccessGrant: ...

    async def grant(self, role: str, tenant: str, *, prefix: str | None = None,
                    capabilities: str | Iterable[str] | None = None) -> bool | AccessGrant:
        return await self._change("grant", role, tenant, prefix, capabilities)

    @overload
    async def revoke(self, role: str, tenant: str) -> bool: ...
    @overload
    async def revoke(self, role: str, tenant: str, *, prefix: str | None = None,
                     capabilities: str | Iterable[str]) -> AccessGrant: ...

    async def revoke(self, role: str, tenant: str, *, prefix: str | None = None,
                     capabilities: str | Iterable[str] | None = None) -> bool | AccessGrant:
        return await self._change("revoke", role, tenant, prefix, capabilities)

    async def _change(self, how: str, role: str, tenant: str, prefix: str | None,
                      capabilities: str | Iterable[str] | None) -> bool | AccessGrant:
        scope = a.scoped(prefix, capabilities)
        if scope is None:
            call = q.grant(role, tenant) if how == "grant" else q.revoke(role, tenant)
            result: bool = (await self._exec.run([call]))[0]
            return result
        async with async_notices(self._exec) as (executor, said):
            changed: AccessGrant = (await executor.run([a.change(how, role, tenant, *scope)]))[0]
        return a.with_notices(changed, said)

    async def effective_access(self, role: str, tenant: str) -> list[AccessEntry]:
        result: list[AccessEntry] = (await self._exec.run([a.effective_access(role, tenant)]))[0]
        return result
