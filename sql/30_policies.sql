-- Row-level security on the tables holding tenant data, FORCE'd so that it
-- binds hush_owner, who owns them, too. Policies are bound at creation, so a
-- caller's search_path cannot change them. Application roles hold no
-- privilege on any table: every statement here comes from one of hush's
-- privileged steps (plpython/hush_plpy/privileged.py), and the policy
-- owner_steps (its text: OWNER_STEPS in plpython/hush_plpy/access.py) confines
-- hush_owner's (and hush_retention's) statements to the one tenant the step
-- set in hush.tenant after it checked its caller's grant, so one wrong WHERE
-- clause cannot reach another tenant.
--
-- tenants, tenant_grants and root_keys hold configuration, no tenant data.

ALTER TABLE hush.secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.secrets
    USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});

ALTER TABLE hush.secret_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.secret_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.secret_versions
    USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});

-- The audit trail's policies and append-only triggers are in 15_audit.sql.

-- Maintenance (hush_retention) finds soft-deleted secrets past their tenant's
-- recovery window in every tenant; it then purges them tenant by tenant, with
-- hush.tenant set, under owner_steps.
CREATE POLICY purge_scan ON hush.secrets FOR SELECT TO hush_retention USING (deleted_at IS NOT NULL);

-- hush.maintain_secrets() (run as hush_retention) finds, in every tenant, the
-- secrets that retention, an expiry or a rotation schedule may concern, and the
-- tenants whose settings make retention apply to all of theirs (hush.tenants
-- has no row policy); it then works tenant by tenant under owner_steps.
CREATE POLICY lifecycle_scan ON hush.secrets FOR SELECT TO hush_retention
    USING (deleted_at IS NULL AND (expires_at IS NOT NULL OR rotate_every IS NOT NULL
                                   OR max_versions IS NOT NULL OR destroy_versions_after IS NOT NULL));
