-- Row-level security: every statement on a table holding tenant data is
-- confined to the tenant the API function set for this transaction
-- (hush.tenant). FORCE'd, so it binds the owning role hush_owner too, which is
-- who runs the SECURITY DEFINER functions. Policies are bound at creation, so
-- a caller's search_path cannot change them.
--
-- tenants, tenant_grants and root_keys hold configuration, no tenant data: the
-- grant check must see '*' grants and other tenants' rows before a tenant is
-- set, and no application role can reach these tables at all.

ALTER TABLE hush.secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON hush.secrets
    USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('hush.tenant', true))
    WITH CHECK (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('hush.tenant', true));

ALTER TABLE hush.secret_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.secret_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON hush.secret_versions
    USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('hush.tenant', true))
    WITH CHECK (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('hush.tenant', true));

-- The audit trail's policies and append-only triggers are in 15_audit.sql.

-- Maintenance (hush_retention) finds soft-deleted secrets past their tenant's
-- recovery window in every tenant; it then purges them tenant by tenant, with
-- hush.tenant set, under tenant_isolation.
CREATE POLICY purge_scan ON hush.secrets FOR SELECT TO hush_retention USING (deleted_at IS NOT NULL);
