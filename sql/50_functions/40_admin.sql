-- Administration (hush_admin): tenant grants and tenant settings. Audited.

CREATE OR REPLACE FUNCTION hush.grant_tenant(role name, tenant text)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: admin.grant_tenant(role, tenant)}}$py$;
COMMENT ON FUNCTION hush.grant_tenant(name, text) IS
    'Let a role (and its members) act on a tenant (''*'' = every tenant); true when new.';

CREATE OR REPLACE FUNCTION hush.revoke_tenant(role name, tenant text)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: admin.revoke_tenant(role, tenant)}}$py$;
COMMENT ON FUNCTION hush.revoke_tenant(name, text) IS 'Remove a tenant grant; true when one was removed.';

CREATE OR REPLACE FUNCTION hush.configure_tenant(tenant text, audit_reads boolean DEFAULT NULL, max_value_bytes integer DEFAULT NULL,
                                                 recovery_days integer DEFAULT NULL,
                                                 audit_rows_per_second integer DEFAULT NULL,
                                                 reader_refresh boolean DEFAULT NULL)
RETURNS hush.tenant_settings
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: admin.configure_tenant(tenant, audit_reads, max_value_bytes, recovery_days, audit_rows_per_second, reader_refresh)}}$py$;
COMMENT ON FUNCTION hush.configure_tenant(text, boolean, integer, integer, integer, boolean) IS
    'Per-tenant settings: read auditing on/off, value size limit, days a deleted secret can be restored before it is purged, '
    'audit rows a second before audited calls are refused with SH023 (0: no limit), whether readers may refresh OAuth '
    'tokens (false: SH077, they ask the worker); NULL keeps the current setting.';
