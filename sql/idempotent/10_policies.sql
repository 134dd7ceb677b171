-- Row-level security, re-created on every install and update (the script's prelude drops
-- each policy created here first, by name: a policy cannot be replaced in place, and one a
-- DBA added stays). Each is written CREATE POLICY name ON hush.table: the build reads the
-- names from that (tools/sql_layout.py). FORCE'd, so that it binds hush_owner, who owns
-- the tables, too. Policies are bound at creation, so a caller's search_path cannot change
-- them. Application roles hold no privilege on any table: every statement here comes
-- from one of hush's privileged steps (plpython/hush_plpy/privileged.py).
--
-- tenants, tenant_grants, root_keys and node_keyrings hold configuration, no tenant data.

-- The tenant policy, owner_steps, on every table that holds tenant data (access.TENANT_TABLES):
-- it confines hush_owner's (and hush_retention's) statements to the one tenant the step set
-- in hush.tenant after it checked its caller's grant (its text: access.OWNER_STEPS), so one
-- wrong WHERE clause cannot reach another tenant.
{{tenant_policies}}

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

-- hush.maintain_secrets() (run as hush_retention) removes old reminders of every
-- tenant in one statement: these let it see and delete those rows only (a day old
-- at least, whatever retention it is asked for), and nothing else.
CREATE POLICY retention_expired ON hush.secret_events FOR SELECT TO hush_retention
    USING (at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval));
CREATE POLICY retention_purge ON hush.secret_events FOR DELETE TO hush_retention
    USING (at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval));

-- Auditors and admins read the whole trail (they read no secret values), and
-- so do the maintenance functions, which seal and expire every tenant's rows.
CREATE POLICY audit_readers ON hush.audit_log FOR SELECT TO hush_auditor, hush_admin, hush_retention USING (true);

-- The worker's steps (run as hush_refresher, privileged.py) look for due
-- connections across the tenants the calling worker may act on (the steps
-- check which) and lease them: reading and updating, nothing else (its UPDATE
-- privilege covers the lease columns alone).
CREATE POLICY worker_scan ON hush.oauth_connections FOR SELECT TO hush_refresher USING (true);
CREATE POLICY worker_lease ON hush.oauth_connections FOR UPDATE TO hush_refresher USING (true);
-- The worker's scans read every tenant's refresh requests beside the connections they
-- find due, confined as those are (oauth_grants.SERVES); they write none.
CREATE POLICY worker_scan ON hush.oauth_refresh_requests FOR SELECT TO hush_refresher USING (true);

-- The callback's lookup: the one row whose state hash the step set in
-- hush.oauth_state (hex), whatever its tenant. Knowing the hash means having
-- had the state value, which only the authorization URL carried. Reading,
-- locking (SELECT ... FOR UPDATE checks UPDATE policies: by_state_lock, whose
-- WITH CHECK lets no row be written) and taking it only; no insert or update;
-- and only in hush_owner's steps, which then check the caller's grant on its
-- tenant and the browser binding before they take it.
CREATE POLICY by_state_read ON hush.oauth_pending FOR SELECT
    USING (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name
           AND state_hash OPERATOR(pg_catalog.=)
           pg_catalog.decode(COALESCE(NULLIF(pg_catalog.current_setting('hush.oauth_state', true), ''), '00'), 'hex'));
CREATE POLICY by_state_take ON hush.oauth_pending FOR DELETE
    USING (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name
           AND state_hash OPERATOR(pg_catalog.=)
           pg_catalog.decode(COALESCE(NULLIF(pg_catalog.current_setting('hush.oauth_state', true), ''), '00'), 'hex'));
CREATE POLICY by_state_lock ON hush.oauth_pending FOR UPDATE
    USING (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name
           AND state_hash OPERATOR(pg_catalog.=)
           pg_catalog.decode(COALESCE(NULLIF(pg_catalog.current_setting('hush.oauth_state', true), ''), '00'), 'hex'))
    WITH CHECK (false);
-- Maintenance (hush.cleanup_oauth, run as hush_retention) removes expired
-- pending authorizations and old events of every tenant, one statement each:
-- these let it see and delete those rows only (events a day old at least,
-- whatever retention it is asked for), and nothing else.
CREATE POLICY retention_expired ON hush.oauth_pending FOR SELECT TO hush_retention
    USING (expires_at OPERATOR(pg_catalog.<=) pg_catalog.now());
CREATE POLICY retention_purge ON hush.oauth_pending FOR DELETE TO hush_retention
    USING (expires_at OPERATOR(pg_catalog.<=) pg_catalog.now());
CREATE POLICY retention_expired ON hush.oauth_events FOR SELECT TO hush_retention
    USING (at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval));
CREATE POLICY retention_purge ON hush.oauth_events FOR DELETE TO hush_retention
    USING (at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval));

-- The OAuth egress policy (hush.oauth_egress) is read and written only in hush_owner's
-- steps (no application role holds a privilege on it); the policy says so again, FORCE'd
-- like every other table's. It holds configuration of the database, no tenant's.
ALTER TABLE hush.oauth_egress ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.oauth_egress FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.oauth_egress
    USING (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name)
    WITH CHECK (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name);
