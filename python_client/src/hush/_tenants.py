"""hush.Tenants (and hush.aio.AsyncTenants): tenant settings and grants, for hush_admin."""
from __future__ import annotations

from typing import Any

from . import _admin_calls as q
from ._admin_models import TenantSettings
from ._exec import executor_for


class Tenants:
    """Tenant settings and grants (needs hush_admin), each one call of a hush.* function.

    `conn` is what hush.Secrets takes (a psycopg Connection or ConnectionPool, a
    SQLAlchemy Connection or Session); over a connection, each call joins its
    transaction. Every change is audited (configure_tenant, grant_tenant, revoke_tenant).
    """

    def __init__(self, conn: Any) -> None:
        self._exec = executor_for(conn)

    def __repr__(self) -> str:
        return "Tenants()"

    def configure(self, tenant: str, *, audit_reads: bool | None = None, max_value_bytes: int | None = None,
                  recovery_days: int | None = None, audit_rows_per_second: int | None = None,
                  reader_refresh: bool | None = None) -> TenantSettings:
        """Set a tenant's settings (hush.configure_tenant); None keeps the current one, so with
        none given it returns the settings as they are (and records that it was asked).
        `audit_reads=False` stops the audit row per read; `max_value_bytes` is 1 to 1,048,576;
        `recovery_days` (1 to 3,650) how long a deleted secret can be restored;
        `audit_rows_per_second` (0 to 10,000; 0, the default, is no limit) how many audit rows
        the tenant may write in a second before its audited calls fail with AuditRateLimited;
        `reader_refresh=False` keeps roles that are only readers from refreshing OAuth tokens
        themselves (they ask hush oauth-worker instead: hush.OAuth does it for them)."""
        result: TenantSettings = self._exec.run([q.configure_tenant(tenant, audit_reads, max_value_bytes,
                                                                    recovery_days, audit_rows_per_second,
                                                                    reader_refresh)])[0]
        return result

    def grant(self, role: str, tenant: str) -> bool:
        """Let a role (and its members) act on a tenant ('*' = every tenant); True when the grant is new."""
        result: bool = self._exec.run([q.grant(role, tenant)])[0]
        return result

    def revoke(self, role: str, tenant: str) -> bool:
        """Remove a tenant grant; True when there was one."""
        result: bool = self._exec.run([q.revoke(role, tenant)])[0]
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
                        reader_refresh: bool | None = None) -> TenantSettings:
        result: TenantSettings = (await self._exec.run([q.configure_tenant(tenant, audit_reads, max_value_bytes,
                                                                           recovery_days, audit_rows_per_second,
                                                                           reader_refresh)]))[0]
        return result

    async def grant(self, role: str, tenant: str) -> bool:
        result: bool = (await self._exec.run([q.grant(role, tenant)]))[0]
        return result

    async def revoke(self, role: str, tenant: str) -> bool:
        result: bool = (await self._exec.run([q.revoke(role, tenant)]))[0]
        return result
