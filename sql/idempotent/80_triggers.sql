-- The audit trail's append-only triggers (their function: hush._audit_append_only,
-- 40_internal.sql), and the set-up every audit partition carries. Append-only, for every
-- role the table owner included: UPDATE and TRUNCATE always fail; DELETE fails unless it
-- runs as hush_retention, which only the retention routine does. Privileges say the same
-- (90_privileges.sql).

-- Row triggers on the parent are cloned onto every partition; statement-level
-- TRUNCATE triggers are not, so each partition gets its own (below).
CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON hush.audit_log
    FOR EACH ROW EXECUTE FUNCTION hush._audit_append_only('expires');
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON hush.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only();
CREATE OR REPLACE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON hush.audit_seals
    FOR EACH ROW EXECUTE FUNCTION hush._audit_append_only();
CREATE OR REPLACE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON hush.audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only();
CREATE OR REPLACE TRIGGER maintenance_log_append_only BEFORE UPDATE OR DELETE ON hush.maintenance_log
    FOR EACH ROW EXECUTE FUNCTION hush._audit_append_only();
CREATE OR REPLACE TRIGGER maintenance_log_no_truncate BEFORE TRUNCATE ON hush.maintenance_log
    FOR EACH STATEMENT EXECUTE FUNCTION hush._audit_append_only();

-- Every partition of the trail (the DEFAULT one, and the monthly ones that
-- hush.create_audit_partitions() made) gets maintenance.SETUP_SQL, the set-up that
-- function gives each partition it makes: a tenant's trail by time, seal order, a
-- tenant's changes to secrets in seal order for hush.changes() (changes.INDEX_SQL), the
-- TRUNCATE trigger, and its privileges. Each statement leaves a partition that has it as
-- it was, so this runs on every install and update.
{{audit_partition_setup}}
