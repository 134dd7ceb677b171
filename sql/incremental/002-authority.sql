-- 0.5.0: hush acts with the authority of the role the calling code runs as
-- (CURRENT_USER), never the session's. API functions become SECURITY INVOKER;
-- their work runs as privileged steps through per-role dispatchers, for the
-- caller the invoker code names. The tables' part of that, its private schema, and
-- the tenant settings and scoped grants that came with it.

-- The tenant policy of 0.4.0, tenant_isolation, gives way to owner_steps
-- (idempotent/10_policies.sql). Dropped by name, as an update drops every policy of
-- hush's: one a DBA added to these tables stays.
DROP POLICY IF EXISTS tenant_isolation ON hush.secrets;
DROP POLICY IF EXISTS tenant_isolation ON hush.secret_versions;
DROP POLICY IF EXISTS tenant_isolation ON hush.audit_log;
DROP POLICY IF EXISTS tenant_isolation ON hush.oauth_providers;
DROP POLICY IF EXISTS tenant_isolation ON hush.oauth_pending;
DROP POLICY IF EXISTS tenant_isolation ON hush.oauth_connections;
DROP POLICY IF EXISTS tenant_isolation ON hush.oauth_events;

-- Who acted: the role the code ran as, no longer the session's SET ROLE.
ALTER TABLE hush.audit_log ALTER COLUMN db_role SET DEFAULT CURRENT_USER;
ALTER TABLE hush.maintenance_log ALTER COLUMN run_by SET DEFAULT CURRENT_USER;

-- The key of the cursors hush.audit_log() hands out instead of the trail's id and
-- txid, which count every tenant's activity, and of the event ids of
-- hush.oauth_events() (plpython/hush_plpy/audit.py): 32
-- random bytes (two version 4 UUIDs, 244 bits from pg_strong_random), read only
-- by hush_owner. Not dumped: a restored database draws a new key, and cursors
-- from before are refused (SH004).
--
-- It and hush_private.maintenance_lock live in hush_private, a schema only hush's own
-- roles have USAGE on: any role that can name a table can queue a lock request
-- on it that it will never be granted (CREATE RULE takes ACCESS EXCLUSIVE before
-- it checks ownership), and every later request queues behind that one: in
-- schema hush, an application role could hang every tenant's audit_log() and
-- every maintenance call. Without USAGE the name does not resolve, so no lock
-- is asked for. A member of the extension: dropped only with it.
CREATE SCHEMA hush_private;
CREATE TABLE hush_private.audit_cursor_key (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    key bytea NOT NULL CHECK (pg_catalog.length(key) OPERATOR(pg_catalog.=) 32)
);
INSERT INTO hush_private.audit_cursor_key (key)
SELECT pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::pg_catalog.text
                                            OPERATOR(pg_catalog.||) pg_catalog.gen_random_uuid()::pg_catalog.text,
                                            '-', ''), 'hex');

-- Maintenance (sealing, verification, partitions, retention, purge) runs one
-- call at a time: each takes this table's SHARE UPDATE EXCLUSIVE lock, which
-- needs UPDATE on it, and only hush_retention has that (90_privileges.sql).
-- Any role can take any advisory lock, which is why they are not used. In
-- hush_private (above): no application role can name it, so none can hold or
-- queue a lock on it. It never holds a row.
CREATE TABLE hush_private.maintenance_lock (unused boolean CHECK (false));
-- seal_audit() names what holds its horizon back, cleanup_audit_logs() the partitions it
-- had to leave: their results change, which CREATE OR REPLACE cannot do.
DROP FUNCTION IF EXISTS hush.seal_audit();
DROP FUNCTION IF EXISTS hush.cleanup_audit_logs(integer);

-- The keyrings of standbys, by key id only, as each reports it over its read
-- recorder's connection (a standby's keyring file is out of the primary's
-- sight): add_root_key and activate_root_key warn about a node lacking the key.
-- Not dumped: every node reports again on its next recorder connection.
CREATE TABLE hush.node_keyrings (
    node        text PRIMARY KEY,
    key_ids     text[] NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- Audit rows the tenant may write in any one second before its audited calls are
-- refused (SH023; 0: no limit): one tenant cannot flood the trail every tenant shares
-- (configure_tenant(audit_rows_per_second => n)).
ALTER TABLE hush.tenants ADD COLUMN audit_rows_per_second integer NOT NULL DEFAULT 0
    CHECK (audit_rows_per_second BETWEEN 0 AND 10000);
ALTER TYPE hush.tenant_settings ADD ATTRIBUTE audit_rows_per_second integer;
-- Whether roles that are only readers may refresh OAuth tokens through the lease, and so
-- store token material the database cannot tell from a forged one (false: they ask the
-- worker or a writer with hush.oauth_request_refresh; configure_tenant(reader_refresh => false)).
ALTER TABLE hush.tenants ADD COLUMN reader_refresh boolean NOT NULL DEFAULT true;
ALTER TYPE hush.tenant_settings ADD ATTRIBUTE reader_refresh boolean;

-- Grants become scoped (hush.grant): what roles may do in which tenants ('*' = every
-- tenant): capabilities on the secrets (and OAuth providers) whose names start with a
-- literal prefix ('' = the whole tenant). Grants add up; there are no deny rules. The
-- primary key leads with (tenant, role): a check probes it with the caller's role set
-- (access.py), not one row per grant of the tenant. Every grant made before is on its whole
-- tenant and holds every capability for now; once the functions and their privileges are
-- this version's (below), each keeps what its role can call (as grant_tenant would grant
-- it today).
-- The capabilities are written out (access.CAPABILITIES, as of 0.5.0): a migration does
-- what it did when it shipped.
ALTER TABLE hush.tenant_grants
    ADD COLUMN prefix text NOT NULL DEFAULT '' CHECK (pg_catalog.length(prefix) <= 255),
    ADD COLUMN capabilities text[] NOT NULL DEFAULT '{read,list,write,delete,destroy,oauth_use,oauth_manage,audit}'
               CHECK (pg_catalog.cardinality(capabilities) > 0 AND capabilities <@ '{read,list,write,delete,destroy,oauth_use,oauth_manage,audit}'::text[]);
ALTER TABLE hush.tenant_grants ALTER COLUMN capabilities DROP DEFAULT;
ALTER TABLE hush.tenant_grants DROP CONSTRAINT tenant_grants_pkey, ADD PRIMARY KEY (tenant_id, role_name, prefix);

-- A grant of capabilities on the names that start with a prefix ('' = the whole
-- tenant; '*' tenant = every tenant): what hush.grant and hush.revoke return.
CREATE TYPE hush.access_grant AS (
    tenant_id    text,
    role_name    name,
    prefix       text,
    capabilities text[],
    granted_at   timestamptz,
    granted_by   name
);

-- One capability a role holds on a prefix (hush.effective_access): the grant that
-- gives it (its tenant and role; implied_by 'read' or 'write' for a list that
-- one of them implies) and whether the role may call that capability's functions.
CREATE TYPE hush.access_entry AS (
    capability   text,
    prefix       text,
    grant_tenant text,
    grant_role   name,
    implied_by   text,
    callable     boolean
);

-- hush:after idempotent
-- Each grant made before 0.5.0 keeps the capabilities whose functions its role can call
-- now, through the privileges just set (grants.FUNCTIONS as of 0.5.0, written out): every
-- capability would let an auditor's or an admin's old grant hold `read`, unaudited, from
-- the day the role is made a reader. A grant whose role can call none of them (a group
-- whose members get their hush role elsewhere, a role dropped since) keeps every
-- capability, as before, unless the role is an admin or an auditor: such a grant gave
-- nothing usable, and separation of duties says those roles hold no `read`, so it goes.
-- (A fresh install has no grant yet.)
WITH callable AS (
    SELECT r.rolname, pg_catalog.array_remove(ARRAY[CASE WHEN (pg_catalog.has_function_privilege(r.oid, 'hush.get_secret(text,text,integer,text)'::pg_catalog.regprocedure, 'EXECUTE')) THEN 'read' END, CASE WHEN (pg_catalog.has_function_privilege(r.oid, 'hush.list_secrets(text,integer,integer,text,hush.secret_tags,boolean,text)'::pg_catalog.regprocedure, 'EXECUTE')) THEN 'list' END, CASE WHEN (pg_catalog.has_function_privilege(r.oid, 'hush.save_secret(text,text,text,text,hush.secret_tags,jsonb,text,integer,timestamptz,integer,interval,interval,text)'::pg_catalog.regprocedure, 'EXECUTE')) THEN 'write' END, CASE WHEN (pg_catalog.has_function_privilege(r.oid, 'hush.delete_secret(text,text)'::pg_catalog.regprocedure, 'EXECUTE')) THEN 'delete' END, CASE WHEN (pg_catalog.has_function_privilege(r.oid, 'hush.destroy_secret(text,text,hush.version_list)'::pg_catalog.regprocedure, 'EXECUTE')) THEN 'destroy' END, CASE WHEN (pg_catalog.has_function_privilege(r.oid, 'hush.oauth_token(text,text,text)'::pg_catalog.regprocedure, 'EXECUTE') OR pg_catalog.has_function_privilege(r.oid, 'hush.oauth_worker_claim(text,integer,integer,integer,integer)'::pg_catalog.regprocedure, 'EXECUTE')) THEN 'oauth_use' END, CASE WHEN (pg_catalog.has_function_privilege(r.oid, 'hush.oauth_save_provider(text,text,jsonb,text)'::pg_catalog.regprocedure, 'EXECUTE')) THEN 'oauth_manage' END, CASE WHEN (pg_catalog.has_function_privilege(r.oid, 'hush.audit_log(text,timestamptz,timestamptz,text,text,integer,text,boolean)'::pg_catalog.regprocedure, 'EXECUTE')) THEN 'audit' END]::pg_catalog.text[], NULL) AS caps,
           pg_catalog.pg_has_role(r.oid, 'hush_admin', 'MEMBER')
           OR pg_catalog.pg_has_role(r.oid, 'hush_auditor', 'MEMBER') AS duty
      FROM pg_catalog.pg_roles r
     WHERE r.rolname OPERATOR(pg_catalog.=) ANY (SELECT g.role_name FROM hush.tenant_grants g)
), narrowed AS (
    UPDATE hush.tenant_grants g SET capabilities = c.caps FROM callable c
     WHERE g.role_name OPERATOR(pg_catalog.=) c.rolname AND pg_catalog.cardinality(c.caps) OPERATOR(pg_catalog.>) 0
)
DELETE FROM hush.tenant_grants g USING callable c
 WHERE g.role_name OPERATOR(pg_catalog.=) c.rolname AND pg_catalog.cardinality(c.caps) OPERATOR(pg_catalog.=) 0
   AND c.duty;
