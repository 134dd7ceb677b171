-- What the API functions read as the caller. hush's read functions are
-- SECURITY INVOKER (README, "Whose authority"): they run as the role the
-- calling code runs as, and reach tenant data only through these views.
-- A view reads its tables with its owner's rights (hush_owner, 90_privileges.sql)
-- while CURRENT_USER stays the caller, inside the tables' row policies too;
-- so the `callers` policies (30_policies.sql) show each role the tenants it
-- may act on, and nothing else. Anything an invoker function reads, its
-- caller can read directly: these views are part of hush's surface, granted
-- SELECT only (no write, no LOCK beyond ACCESS SHARE), and what they show a
-- role is its own tenants' metadata and ciphertext, which opens only inside
-- hush's functions (a value's seals are bound to its row).
-- The table views are plain projections: row security itself keeps a caller's
-- leaky functions from seeing a hidden row (policies run first), and a plain
-- view lets the planner join through it by index (a security_barrier view is
-- planned apart: a read of the latest version scanned every version of the
-- tenant). The two views that filter in their own WHERE are security barriers.

CREATE VIEW hush._secrets AS
SELECT s.tenant_id, s.id, s.name, s.kind, s.description, s.tags, s.metadata, s.current_version, s.expires_at,
       s.created_at, s.updated_at, s.created_by, s.deleted_at
  FROM hush.secrets s;

CREATE VIEW hush._secret_versions AS
SELECT v.tenant_id, v.secret_id, v.version, v.key_id, v.wrapped_dek, v.ciphertext, v.created_at, v.created_by,
       v.destroyed_at
  FROM hush.secret_versions v;

CREATE VIEW hush._oauth_connections AS
SELECT c.tenant_id, c.provider, c.account, c.id, c.generation, c.grant_type, c.key_id, c.wrapped_dek, c.ciphertext,
       c.token_type, c.scopes, c.expires_at, c.has_refresh_token, c.status, c.last_error, c.last_error_at,
       c.lease_holder, c.lease_until, c.failures, c.next_attempt_at, c.refreshed_at, c.created_at, c.updated_at,
       c.created_by
  FROM hush.oauth_connections c;

-- The settings of the tenants the caller may act on (tenants has no row
-- policy: admins and maintenance read it whole).
CREATE VIEW hush._tenants WITH (security_barrier) AS
SELECT t.tenant_id, t.audit_reads, t.max_value_bytes, t.recovery_days
  FROM hush.tenants t
 WHERE {{may_act: t.tenant_id}};

-- The tenants the caller may act on: its own grants ('*' = every tenant, which
-- a superuser acting as itself has too). Lets a read tell "not yours" (SH020)
-- from "not there".
CREATE VIEW hush._my_grants WITH (security_barrier) AS
SELECT g.tenant_id
  FROM hush.tenant_grants g
 WHERE pg_catalog.pg_has_role(CURRENT_USER, pg_catalog.to_regrole(pg_catalog.quote_ident(g.role_name)), 'USAGE')
UNION ALL
SELECT '*'::pg_catalog.text
 WHERE COALESCE((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER),
                false);
