-- Administration (hush_admin): whole-tenant grants (plpython/hush_plpy/grants.py; scoped
-- ones are 45_access.sql's) and tenant settings. Audited.

CREATE OR REPLACE FUNCTION hush.grant_tenant(role name, tenant text)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: grants.grant_tenant(role, tenant)}}$py$;
COMMENT ON FUNCTION hush.grant_tenant(name, text) IS
    'Let a role (and its members) act on a whole tenant (''*'' = every tenant) with every capability whose functions '
    'it can call now (SH024 when none); true when that added any.';

CREATE OR REPLACE FUNCTION hush.revoke_tenant(role name, tenant text)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: grants.revoke_tenant(role, tenant)}}$py$;
COMMENT ON FUNCTION hush.revoke_tenant(name, text) IS
    'Remove every grant of a role on a tenant, whatever its prefix; true when there was one.';

CREATE OR REPLACE FUNCTION hush.configure_tenant(tenant text, audit_reads boolean DEFAULT NULL, max_value_bytes integer DEFAULT NULL,
                                                 recovery_days integer DEFAULT NULL,
                                                 audit_rows_per_second integer DEFAULT NULL,
                                                 reader_refresh boolean DEFAULT NULL,
                                                 max_versions integer DEFAULT NULL,
                                                 destroy_versions_after interval DEFAULT NULL,
                                                 expiry_warning interval DEFAULT NULL)
RETURNS hush.tenant_settings
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $py${{py: admin.configure_tenant(tenant, audit_reads, max_value_bytes, recovery_days, audit_rows_per_second, reader_refresh, max_versions, destroy_versions_after, expiry_warning)}}$py$;
COMMENT ON FUNCTION hush.configure_tenant(text, boolean, integer, integer, integer, boolean, integer, interval, interval) IS
    'Per-tenant settings: read auditing on/off, value size limit, days a deleted secret can be restored before it is purged, '
    'audit rows a second before audited calls are refused with SH023 (0: no limit), whether readers may refresh OAuth '
    'tokens (false: SH077, they ask the worker), version retention (max_versions, destroy_versions_after; 0: none), '
    'how far ahead expiry reminders look (expiry_warning, default 14 days); NULL keeps the current setting.';
