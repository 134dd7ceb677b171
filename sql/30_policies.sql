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

ALTER TABLE hush.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON hush.audit_log
    USING (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('hush.tenant', true))
    WITH CHECK (tenant_id OPERATOR(pg_catalog.=) pg_catalog.current_setting('hush.tenant', true));
-- Auditors and admins read the whole trail (they read no secret values).
CREATE POLICY audit_readers ON hush.audit_log FOR SELECT TO hush_auditor, hush_admin USING (true);

-- The audit trail is append-only: UPDATE, DELETE and TRUNCATE fail for every
-- role, the table owner included (retention comes with its own routine).
CREATE FUNCTION hush._audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    RAISE EXCEPTION 'hush.audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'SH040';
END
$fn$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON hush.audit_log
    FOR EACH ROW EXECUTE FUNCTION hush._audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON hush.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only();
