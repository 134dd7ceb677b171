-- Ownership and privileges, all in one place.

-- Everything but hush._root_key_source, hush._recorder_target, hush._recorder_room and
-- hush._horizon_holder (the superuser's: they read superuser-only settings or activity)
-- belongs to hush_owner (NOLOGIN, not a
-- superuser): a superuser-owned SECURITY DEFINER function would bypass RLS,
-- and a view reads its tables with its owner's rights.
-- ALTER TABLE ... OWNER also moves the owned audit_log_id_seq.
ALTER TABLE hush.root_keys OWNER TO hush_owner;
ALTER TABLE hush.node_keyrings OWNER TO hush_owner;
ALTER TABLE hush.tenants OWNER TO hush_owner;
ALTER TABLE hush.tenant_grants OWNER TO hush_owner;
ALTER TABLE hush.secrets OWNER TO hush_owner;
ALTER TABLE hush.secret_versions OWNER TO hush_owner;
ALTER TABLE hush.audit_log OWNER TO hush_owner;
ALTER TABLE hush.audit_log_default OWNER TO hush_owner;
ALTER TABLE hush.audit_seals OWNER TO hush_owner;
ALTER TABLE hush.maintenance_log OWNER TO hush_owner;
ALTER TABLE hush_private.maintenance_lock OWNER TO hush_owner;
ALTER TABLE hush.oauth_providers OWNER TO hush_owner;
ALTER TABLE hush.oauth_pending OWNER TO hush_owner;
ALTER TABLE hush.oauth_connections OWNER TO hush_owner;
ALTER TABLE hush.oauth_events OWNER TO hush_owner;
ALTER TABLE hush.secret_events OWNER TO hush_owner;
ALTER TABLE hush.oauth_egress OWNER TO hush_owner;
ALTER TABLE hush.oauth_refresh_requests OWNER TO hush_owner;
ALTER TABLE hush_private.audit_cursor_key OWNER TO hush_owner;

-- Nothing of hush's is callable or readable by PUBLIC: access comes only through the
-- hush_* roles below. Nor is any sequence: a sequence's value counts every tenant's rows,
-- and no hush role but hush_keykeeper (which inserts audit rows) is granted one.
-- Both for the members of the extension alone (pg_depend 'e'), never for what a user made
-- in schema hush: a function of theirs keeps its owner (owned by hush_owner, one SECURITY
-- DEFINER would run with hush's rights) and its privileges. The monthly audit partitions,
-- which maintenance makes outside the extension, get the same from their set-up
-- (80_triggers.sql, maintenance.SETUP_SQL).
DO $own$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT CASE WHEN p.oid IS NOT NULL THEN 'ROUTINE' WHEN c.relkind OPERATOR(pg_catalog.=) 'S'
                         THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
                    COALESCE(p.oid::pg_catalog.regprocedure::pg_catalog.text,
                             c.oid::pg_catalog.regclass::pg_catalog.text) AS name,
                    p.proname OPERATOR(pg_catalog.<>) ALL (ARRAY['_root_key_source', '_recorder_target',
                                                                 '_recorder_room', '_horizon_holder']) AS owned
               FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
                    AND e.extname OPERATOR(pg_catalog.=) 'hush'
               LEFT JOIN pg_catalog.pg_proc p
                    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                    AND p.oid OPERATOR(pg_catalog.=) d.objid
                    AND p.pronamespace OPERATOR(pg_catalog.=) 'hush'::pg_catalog.regnamespace
               LEFT JOIN pg_catalog.pg_class c
                    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND c.oid OPERATOR(pg_catalog.=) d.objid
                    AND c.relnamespace OPERATOR(pg_catalog.=) 'hush'::pg_catalog.regnamespace
                    AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'v', 'm', 'f', 'S']::pg_catalog."char"[])
              WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                AND d.deptype OPERATOR(pg_catalog.=) 'e' AND (p.oid IS NOT NULL OR c.oid IS NOT NULL)
    LOOP
        IF o.owned THEN  -- NULL for a relation
            EXECUTE pg_catalog.format('ALTER ROUTINE %s OWNER TO hush_owner', o.name);
        END IF;
        EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM PUBLIC', o.kind, o.name);
    END LOOP;
END
$own$;

-- Every API function is SECURITY INVOKER: it runs as the role the calling code
-- runs as. What that role may not do itself runs in a privileged step, through
-- the dispatcher of the role the step needs (plpython/hush_plpy/privileged.py);
-- each dispatcher belongs to that role.
-- The root key steps run as hush_keykeeper (BYPASSRLS): they count and re-seal
-- data keys of every tenant. It may read key ids and wrapped data keys, never
-- run the secret API, and write only key states and audit rows.
ALTER FUNCTION hush._as_keykeeper(text, name) OWNER TO hush_keykeeper;
GRANT SELECT ON hush.secret_versions TO hush_keykeeper;
GRANT UPDATE (key_id, wrapped_dek) ON hush.secret_versions TO hush_keykeeper;
-- OAuth client secrets, pending authorizations and tokens are sealed the same way.
GRANT SELECT, UPDATE (key_id, wrapped_dek) ON hush.oauth_providers, hush.oauth_pending, hush.oauth_connections
    TO hush_keykeeper;
GRANT SELECT, INSERT, UPDATE ON hush.root_keys TO hush_keykeeper;
GRANT SELECT ON hush.node_keyrings TO hush_keykeeper;
GRANT INSERT ON hush.audit_log TO hush_keykeeper;
GRANT USAGE ON SEQUENCE hush.audit_log_id_seq TO hush_keykeeper;
GRANT EXECUTE ON FUNCTION hush._root_key_source() TO hush_keykeeper;
GRANT EXECUTE ON FUNCTION hush._load_python() TO hush_keykeeper;
-- Its steps load the keyring through hush_owner's step (plpython/hush_plpy/keyring.py).
GRANT EXECUTE ON FUNCTION hush._as_owner(text, name) TO hush_keykeeper;

-- The OAuth worker's scans run as hush_refresher: they find and lease due
-- connections across the tenants the calling worker may act on (row policies
-- worker_scan and worker_lease), reading no token.
-- The worker role itself may claim and refresh (the lease functions) and ask
-- for a refresh, nothing else: it is not hush_reader and reads no secret value
-- or access token. Whatever its tenant grants (even '*'), it finishes or
-- releases only leases it took: each needs the lease's token.
ALTER FUNCTION hush._as_refresher(text, name) OWNER TO hush_refresher;
GRANT SELECT, UPDATE (lease_holder, lease_until, lease_token_hash) ON hush.oauth_connections TO hush_refresher;
-- and the refreshes asked of the worker, which make a connection due (it writes none)
GRANT SELECT ON hush.oauth_refresh_requests TO hush_refresher;
GRANT SELECT ON hush.tenant_grants TO hush_refresher;
GRANT EXECUTE ON FUNCTION hush._load_python() TO hush_refresher;
GRANT USAGE ON SCHEMA hush TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush._load_python() TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush._as_refresher(text, name) TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush._as_owner(text, name) TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush.oauth_worker_claim(text, integer, integer, integer, integer) TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush.oauth_worker_next_due(integer, integer) TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush.oauth_claim_refresh(text, text, text, text, integer, integer) TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush.oauth_finish_refresh(text, text, text, text, integer, jsonb) TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush.oauth_release_refresh(text, text, text, text, integer, text, boolean, integer)
    TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush.oauth_request_refresh(text, text, text) TO hush_oauth_worker;
-- The same leases and stores by the batch (82_oauth_batch.sql), the worker's alone: each
-- connection checked as the per-connection functions check it. Their array arguments'
-- size checks (20_limits.sql) run as the caller.
GRANT EXECUTE ON FUNCTION hush.oauth_worker_lease(text, integer, integer, integer, integer) TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush.oauth_worker_finish(hush.oauth_batch_names, hush.oauth_batch_names,
    hush.oauth_batch_names, hush.oauth_batch_names, hush.oauth_batch_generations, hush.oauth_batch_tokens)
    TO hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush._too_large(text, bigint, bigint, bigint, bigint, text),
    hush._text_array_fits(text[], text, integer, bigint, text), hush._not_flat(text), hush._log_refusal(text)
    TO hush_oauth_worker;

-- The audit maintenance steps run as hush_retention (a member of hush_owner,
-- so it may create, attach and drop partitions).
ALTER FUNCTION hush._as_retention(text, name) OWNER TO hush_retention;

-- Append-only, in privileges as in triggers (80_triggers.sql): the owner may
-- insert and read but not change or remove rows; only hush_retention deletes
-- (expired rows, by way of hush.cleanup_audit_logs). Each monthly partition
-- gets the same when it is created (plpython/hush_plpy/maintenance.py).
REVOKE UPDATE, DELETE, TRUNCATE ON hush.audit_log, hush.audit_log_default, hush.audit_seals, hush.maintenance_log
    FROM hush_owner;
GRANT DELETE ON hush.audit_log_default TO hush_retention;
-- Maintenance steps serialise on hush_private.maintenance_lock (incremental/002-authority.sql): LOCK in
-- SHARE UPDATE EXCLUSIVE mode needs UPDATE, which only hush_retention holds;
-- the owner keeps nothing it could use to take that lock outside a step.
REVOKE ALL ON hush_private.maintenance_lock FROM hush_owner;
GRANT UPDATE ON hush_private.maintenance_lock TO hush_retention;
-- hush_private: USAGE for the roles whose steps name its tables (the owner reads
-- the cursor key, hush_retention locks maintenance_lock), and no one else.
REVOKE ALL ON SCHEMA hush_private FROM PUBLIC;
GRANT USAGE ON SCHEMA hush_private TO hush_owner, hush_retention;
-- seal_audit() names the transaction that holds its horizon back (role, state,
-- age), which takes this superuser-owned reader (70_maintenance.sql).
GRANT EXECUTE ON FUNCTION hush._horizon_holder(bigint) TO hush_retention;

-- Every hush role must be able to name the schema's functions and load their Python.
GRANT USAGE ON SCHEMA hush TO hush_reader, hush_admin, hush_auditor, hush_recorder;
GRANT EXECUTE ON FUNCTION hush._load_python() TO hush_reader, hush_admin, hush_auditor;
-- The size checks of the argument domains (20_limits.sql) run as the caller; they read
-- nothing but the argument.
GRANT EXECUTE ON FUNCTION hush._too_large(text, bigint, bigint, bigint, bigint, text),
    hush._text_array_fits(text[], text, integer, bigint, text), hush._not_flat(text), hush._log_refusal(text)
    TO hush_reader;

-- The dispatchers run only steps that hush's own functions queued (a ticket),
-- so EXECUTE on them gives nothing beyond the API functions that queue them:
-- granted to the roles whose API functions do.
GRANT EXECUTE ON FUNCTION hush._as_owner(text, name) TO hush_reader, hush_admin, hush_auditor;
GRANT EXECUTE ON FUNCTION hush._as_keykeeper(text, name) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush._as_retention(text, name) TO hush_admin, hush_auditor;

-- Application roles hold no privilege on any table or view: a role that could
-- query a row-secured relation could count other tenants' rows (EXPLAIN
-- ANALYZE runs leakproof conditions before the row policy). Every read is a step.

-- The API functions read the keyring path through this superuser-owned reader.
GRANT EXECUTE ON FUNCTION hush._root_key_source() TO hush_owner;
-- Reading steps (run as hush_owner) learn where read records go; the role a
-- recorder connection logs in as may store them.
GRANT EXECUTE ON FUNCTION hush._recorder_target() TO hush_owner;
GRANT EXECUTE ON FUNCTION hush._recorder_room() TO hush_owner;
GRANT EXECUTE ON FUNCTION hush._record(text, bytea) TO hush_recorder;
-- The same connection registers a database's first root key apart from the first writer's transaction.
GRANT EXECUTE ON FUNCTION hush._register_first_root_key() TO hush_recorder;

-- Readers read values and metadata of the tenants granted to them.
GRANT EXECUTE ON FUNCTION hush.get_secret(text, text, integer, text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.get_secret_by_id(text, uuid, integer, text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.get_secrets(text, hush.secret_names) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.list_secrets(text, integer, integer, text, hush.secret_tags, boolean, text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.search_secrets(text, text, integer, integer, text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.secret_exists(text, text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.secret_exists_by_id(text, uuid) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.secret_versions(text, text) TO hush_reader;
-- A secret's lifecycle, metadata only: what falls due, what changed (and the channel
-- announcing it), the reminders maintenance wrote.
GRANT EXECUTE ON FUNCTION hush.due_for_rotation(text, interval, timestamptz) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.change_channel(text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.changes(text, text, integer), hush.changes_cursor(text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.secret_events(text, timestamptz, integer) TO hush_reader;
-- A tenant's trail (the rows under the caller's `audit` prefixes): its readers' and its auditors'.
GRANT EXECUTE ON FUNCTION hush.audit_log(text, timestamptz, timestamptz, text, text, integer, text, boolean)
    TO hush_reader, hush_auditor;

-- Writers (who are also readers) change secrets.
GRANT EXECUTE ON FUNCTION hush.save_secret(text, text, text, text, hush.secret_tags, jsonb, text, integer, timestamptz,
                                          integer, interval, interval, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.update_secret(text, text, text, text, hush.secret_tags, jsonb, integer, text, timestamptz,
                                            integer, interval, interval, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.update_secret_by_id(text, uuid, text, text, hush.secret_tags, jsonb, integer, text,
                                                  timestamptz, integer, interval, interval, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.promote_secret(text, text, integer) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.rollback_secret(text, text, integer, integer) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.delete_secret(text, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.delete_secret_by_id(text, uuid) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.restore_secret(text, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.destroy_secret(text, text, hush.version_list) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.save_secrets(text, hush.secret_names, hush.secret_values, text, hush.secret_tags, jsonb) TO hush_writer;

-- OAuth: readers read access tokens and keep them fresh (the refresh lease,
-- unless their tenant says reader_refresh => false: then they ask the worker,
-- oauth_request_refresh); writers register providers, authorize, store, revoke
-- and disconnect. A provider's client secret (oauth_provider) is for the flows
-- that end in a store, writers' only: readers refresh with what a claim returns.
GRANT EXECUTE ON FUNCTION hush.oauth_providers(text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_provider(text, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.oauth_token(text, text, text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_claim_refresh(text, text, text, text, integer, integer) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_finish_refresh(text, text, text, text, integer, jsonb) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_release_refresh(text, text, text, text, integer, text, boolean, integer)
    TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_request_refresh(text, text, text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_access_token(text, text, text, integer) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_events(text, timestamptz, integer) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_connections(text, text) TO hush_reader;
GRANT EXECUTE ON FUNCTION hush.oauth_save_provider(text, text, jsonb, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.oauth_remove_provider(text, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.oauth_begin(text, text, text, text, text, text, hush.oauth_scopes, text, integer, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.oauth_consume(text, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.oauth_store_tokens(text, text, text, text, jsonb) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.oauth_connection_tokens(text, text, text) TO hush_writer;
GRANT EXECUTE ON FUNCTION hush.oauth_disconnect(text, text, text) TO hush_writer;
-- The egress policy (hush.oauth_egress): every role that speaks to providers
-- reads it, for the client enforces it on each request; only admins change it.
GRANT EXECUTE ON FUNCTION hush.oauth_egress_policy() TO hush_reader, hush_oauth_worker, hush_admin;
GRANT EXECUTE ON FUNCTION hush.oauth_allow_egress(text, boolean, boolean), hush.oauth_disallow_egress(text)
    TO hush_admin;

-- Admins manage tenants and grants, and may look at configuration (no values there).
GRANT EXECUTE ON FUNCTION hush.grant_tenant(name, text) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.revoke_tenant(name, text) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush."grant"(name, text, text, text[]), hush."revoke"(name, text, text, text[]) TO hush_admin;
-- What a role may do where: every hush role asks it of itself (admins of any role).
GRANT EXECUTE ON FUNCTION hush.effective_access(name, text)
    TO hush_reader, hush_admin, hush_auditor, hush_oauth_worker;
GRANT EXECUTE ON FUNCTION hush.configure_tenant(text, boolean, integer, integer, integer, boolean, integer, interval,
                                               interval) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.root_key_status() TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.add_root_key(text) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.activate_root_key(text) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.retire_root_key(text) TO hush_admin;
-- CALL hush.rewrap() is an invoker procedure (it commits per batch): admins run
-- its batches, and the batch function checks nothing else.
GRANT EXECUTE ON PROCEDURE hush.rewrap(integer, integer) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush._rewrap_batch(integer) TO hush_admin;
GRANT SELECT ON hush.tenants, hush.tenant_grants, hush.root_keys, hush.node_keyrings TO hush_admin;

-- Auditors and admins read the audit trail, its seals and the maintenance log
-- (RLS policy audit_readers); no one but the owner inserts.
GRANT SELECT ON hush.audit_log, hush.audit_seals, hush.maintenance_log TO hush_auditor, hush_admin;
-- Either may seal and verify; only admins change storage or schedule it.
GRANT EXECUTE ON FUNCTION hush.seal_audit() TO hush_auditor, hush_admin;
GRANT EXECUTE ON FUNCTION hush.verify_audit(timestamptz, text) TO hush_auditor, hush_admin;
GRANT EXECUTE ON FUNCTION hush.caller_xact(jsonb) TO hush_reader, hush_auditor, hush_admin;
GRANT EXECUTE ON FUNCTION hush.create_audit_partitions(integer) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.cleanup_audit_logs(integer) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.purge_deleted_secrets() TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.cleanup_oauth(integer) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.maintain_secrets(integer) TO hush_admin;
GRANT EXECUTE ON FUNCTION hush.schedule_maintenance(integer, integer, integer) TO hush_admin;
