-- Row-level security on the tables holding tenant data, FORCE'd so that it
-- binds hush_owner, who owns them, too. Policies are bound at creation, so a
-- caller's search_path cannot change them. Two kinds of statement reach
-- these tables, and each policy serves one (README, "Whose authority"):
--
--   callers      reads through hush's views (35_views.sql), which run with the
--                view owner's table rights while CURRENT_USER stays the role
--                the calling code runs as: a row is visible when that role
--                may act on its tenant (the rule written once as may_act in
--                plpython/hush_plpy/access.py). SELECT only: no caller writes.
--   owner_steps  hush's privileged steps (plpython/hush_plpy/privileged.py),
--                running as hush_owner (or hush_retention, a member of it):
--                confined to the tenant the step set in hush.tenant after it
--                checked its caller's grant. Keyed on CURRENT_USER, not on a
--                role list: a policy TO hush_owner would also apply to every
--                caller reading through hush_owner's views.
--
-- tenants, tenant_grants and root_keys hold configuration, no tenant data:
-- callers see their own part through views with the same rule.

ALTER TABLE hush.secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY callers ON hush.secrets FOR SELECT USING ({{may_act: secrets.tenant_id}});
CREATE POLICY owner_steps ON hush.secrets
    USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});

ALTER TABLE hush.secret_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.secret_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY callers ON hush.secret_versions FOR SELECT USING ({{may_act: secret_versions.tenant_id}});
CREATE POLICY owner_steps ON hush.secret_versions
    USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});

-- The audit trail's policies and append-only triggers are in 15_audit.sql.

-- Maintenance (hush_retention) finds soft-deleted secrets past their tenant's
-- recovery window in every tenant; it then purges them tenant by tenant, with
-- hush.tenant set, under owner_steps. Policies TO a role apply to direct reads
-- by that role (hush_retention's own steps), never through hush_owner's views.
CREATE POLICY purge_scan ON hush.secrets FOR SELECT TO hush_retention USING (deleted_at IS NOT NULL);
