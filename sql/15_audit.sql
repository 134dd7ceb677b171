-- The audit trail: who did what to which secret, never a value; its seals and
-- the log of the maintenance that keeps it.
--
-- Storage is partitioned by month (bounds in UTC) so that retention drops
-- whole partitions instead of deleting rows. The install script creates only
-- the DEFAULT partition, the safety net for rows with no monthly partition
-- yet; hush.create_audit_partitions() creates the monthly ones ahead of time
-- (run by the maintenance schedule, never on the hot path). What that means
-- for pg_dump:
--   * the parent holds no rows, so it is not registered with
--     pg_extension_config_dump (a partitioned parent dumps nothing anyway);
--   * the DEFAULT partition is an extension member, so it is registered, and
--     its rows are dumped as configuration data;
--   * monthly partitions are not members: pg_dump dumps them whole, as tables
--     attached to the parent. So the parent has no indexes of its own (CREATE
--     EXTENSION would give a restored partition a second, clashing copy of
--     each) and every partition gets its indexes when it is created.
-- The sequence is registered too, or ids would restart after a restore.
CREATE SEQUENCE IF NOT EXISTS hush.audit_log_id_seq;
SELECT pg_catalog.pg_extension_config_dump('hush.audit_log_id_seq'::regclass, '');
CREATE TABLE hush.audit_log (
    tenant_id        text NOT NULL,
    id               bigint NOT NULL DEFAULT pg_catalog.nextval('hush.audit_log_id_seq'::regclass),
    at               timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    action           text NOT NULL,
    secret_id        uuid,
    secret_name      text,
    version          integer,
    -- the role the calling code ran as (CURRENT_USER where the API function was
    -- called; hush's steps pass it), beside the session's login role
    db_role          name NOT NULL DEFAULT CURRENT_USER,
    session_role     name NOT NULL DEFAULT SESSION_USER,
    application_name text DEFAULT pg_catalog.current_setting('application_name'),
    client_addr      inet DEFAULT pg_catalog.inet_client_addr(),
    -- the writing transaction: seals cover rows by (txid, id), below the
    -- oldest transaction still running, so no late commit slips under a seal
    txid             bigint NOT NULL DEFAULT pg_catalog.txid_current(),
    outcome          text NOT NULL DEFAULT 'ok',
    detail           jsonb
) PARTITION BY RANGE (at);
ALTER SEQUENCE hush.audit_log_id_seq OWNED BY hush.audit_log.id;

CREATE TABLE hush.audit_log_default PARTITION OF hush.audit_log DEFAULT;
-- Every partition carries the same three indexes (maintenance.SETUP_SQL gives
-- them to the monthly ones): a tenant's trail by time, seal order, and a
-- tenant's changes to secrets in seal order for hush.changes(), whose
-- predicate is changes.IS_CHANGE (plpython/hush_plpy/changes.py), the
-- condition hush.changes() reads with.
CREATE INDEX audit_log_default_tenant_at ON hush.audit_log_default (tenant_id, at);
CREATE INDEX audit_log_default_position ON hush.audit_log_default (txid, id);
CREATE INDEX audit_log_default_changes ON hush.audit_log_default (tenant_id, txid, id) WHERE {{is_change}};
SELECT pg_catalog.pg_extension_config_dump('hush.audit_log_default'::regclass, '');

ALTER TABLE hush.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.audit_log FORCE ROW LEVEL SECURITY;
-- hush's privileged steps write and read one tenant's rows (30_policies.sql).
CREATE POLICY owner_steps ON hush.audit_log USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});
-- Auditors and admins read the whole trail (they read no secret values), and
-- so do the maintenance functions, which seal and expire every tenant's rows.
CREATE POLICY audit_readers ON hush.audit_log FOR SELECT TO hush_auditor, hush_admin, hush_retention USING (true);

-- The key of the cursors hush.audit_log() hands out instead of the trail's id and
-- txid, which count every tenant's activity, and of the event ids of
-- hush.oauth_events() (plpython/hush_plpy/audit.py): 32
-- random bytes (two version 4 UUIDs, 244 bits from pg_strong_random), read only
-- by hush_owner. Not dumped: a restored database draws a new key, and cursors
-- from before are refused (SH004).
--
-- It and hush.maintenance_lock live in hush_private, a schema only hush's own
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

-- Seals: a hash chain over the trail. A regular seal covers the rows after the
-- previous seal's end up to (last_txid, last_id), in (txid, id) order; an
-- anchor, written by retention, re-seals what survives up to its end after
-- rows before it were removed. hash = SHA-256 of the seal's own fields and the
-- previous seal's hash (hush._seal_digest).
CREATE TABLE hush.audit_seals (
    id          bigint PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('seal', 'anchor')),
    sealed_at   timestamptz NOT NULL,
    sealed_by   name NOT NULL,
    after_txid  bigint,
    after_id    bigint,
    last_txid   bigint NOT NULL,
    last_id     bigint NOT NULL,
    row_count   bigint NOT NULL,
    rows_hash   bytea NOT NULL,
    prev_hash   bytea,
    hash        bytea NOT NULL
);
CREATE SEQUENCE hush.audit_seals_id_seq OWNED BY hush.audit_seals.id;
SELECT pg_catalog.pg_extension_config_dump('hush.audit_seals'::regclass, '');
SELECT pg_catalog.pg_extension_config_dump('hush.audit_seals_id_seq'::regclass, '');

-- What maintenance did: partitions created, rows expired, secrets purged.
CREATE TABLE hush.maintenance_log (
    id      bigint PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    task    text NOT NULL,
    run_by  name NOT NULL DEFAULT CURRENT_USER,
    detail  jsonb NOT NULL
);
CREATE SEQUENCE hush.maintenance_log_id_seq OWNED BY hush.maintenance_log.id;
ALTER TABLE hush.maintenance_log ALTER COLUMN id SET DEFAULT pg_catalog.nextval('hush.maintenance_log_id_seq'::regclass);
SELECT pg_catalog.pg_extension_config_dump('hush.maintenance_log'::regclass, '');
SELECT pg_catalog.pg_extension_config_dump('hush.maintenance_log_id_seq'::regclass, '');

-- Maintenance (sealing, verification, partitions, retention, purge) runs one
-- call at a time: each takes this table's SHARE UPDATE EXCLUSIVE lock, which
-- needs UPDATE on it, and only hush_retention has that (90_privileges.sql).
-- Any role can take any advisory lock, which is why they are not used. In
-- hush_private (above): no application role can name it, so none can hold or
-- queue a lock on it. It never holds a row.
CREATE TABLE hush_private.maintenance_lock (unused boolean CHECK (false));

-- Append-only, for every role the table owner included: UPDATE and TRUNCATE
-- always fail; DELETE fails unless it runs as hush_retention, which only the
-- retention routine does (a SECURITY DEFINER function owned by that NOLOGIN
-- role, which has no members). Privileges say the same (90_privileges.sql).
-- Not SECURITY DEFINER: current_user must be whoever runs the statement.
-- TG_ARGV[0] = 'expires' marks tables retention may delete from.
CREATE OR REPLACE FUNCTION hush._audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' AND TG_NARGS OPERATOR(pg_catalog.>) 0
       AND TG_ARGV[0] OPERATOR(pg_catalog.=) 'expires' AND CURRENT_USER OPERATOR(pg_catalog.=) 'hush_retention' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'hush.% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'SH040', HINT = 'Rows leave the audit trail only through hush.cleanup_audit_logs().';
END
$fn$;
-- Row triggers on the parent are cloned onto every partition; statement-level
-- TRUNCATE triggers are not, so each partition gets its own.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON hush.audit_log
    FOR EACH ROW EXECUTE FUNCTION hush._audit_append_only('expires');
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON hush.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON hush.audit_log_default
    FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only();
CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON hush.audit_seals
    FOR EACH ROW EXECUTE FUNCTION hush._audit_append_only();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON hush.audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only();
CREATE TRIGGER maintenance_log_append_only BEFORE UPDATE OR DELETE ON hush.maintenance_log
    FOR EACH ROW EXECUTE FUNCTION hush._audit_append_only();
CREATE TRIGGER maintenance_log_no_truncate BEFORE TRUNCATE ON hush.maintenance_log
    FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only();
