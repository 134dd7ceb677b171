-- Audit maintenance: partitions, seals, retention, the purge of soft-deleted
-- secrets, OAuth's events and expired pending authorizations, and their schedule. The PL/Python ones do their work as
-- hush_retention (a privileged step, 90_privileges.sql), the only role whose
-- DELETE the audit trigger lets through, with TimeZone and DateStyle pinned so
-- that no caller setting moves a month bound or a hashed timestamp. They run
-- one call at a time (hush_private.maintenance_lock, incremental/002-authority.sql) and wait for any
-- lock at most the caller's lock_timeout, or 5 seconds when it is 0: then
-- SH061, and nothing is changed (retention's drops wait 100 ms at a time, so
-- that secret calls never queue behind them for long).

CREATE OR REPLACE FUNCTION hush.create_audit_partitions(months_ahead integer DEFAULT 3)
RETURNS TABLE (partition text, range_from timestamptz, range_to timestamptz, rows_moved bigint)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
AS $py${{py: maintenance.create_partitions(months_ahead)}}$py$;
COMMENT ON FUNCTION hush.create_audit_partitions(integer) IS
    'Create the monthly audit partitions (UTC bounds) missing from the oldest row waiting in the DEFAULT partition (or this month) to months_ahead months ahead; rows waiting move in.';

-- Which transaction holds the seal horizon back: the backend (or prepared
-- transaction) whose transaction id is `horizon`, with its login role, state
-- and age. Another role's state and transaction start are shown only to
-- superusers and pg_read_all_stats, so this reader stays owned by the
-- superuser who ran CREATE EXTENSION (90_privileges.sql) and is granted to
-- hush_retention alone; it returns no query text.
CREATE OR REPLACE FUNCTION hush._horizon_holder(horizon bigint)
RETURNS TABLE (pid integer, role name, application_name text, state text, xact_age interval, prepared_gid text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT a.pid, a.usename, a.application_name, a.state,
           pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) a.xact_start, NULL::pg_catalog.text
      FROM pg_catalog.pg_stat_activity a
     WHERE a.backend_xid OPERATOR(pg_catalog.=)
           pg_catalog.xid(CAST(CAST(horizon AS pg_catalog.text) AS pg_catalog.xid8))
    UNION ALL
    SELECT NULL, p.owner, NULL, 'prepared', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) p.prepared, p.gid
      FROM pg_catalog.pg_prepared_xacts p
     WHERE p.transaction OPERATOR(pg_catalog.=)
           pg_catalog.xid(CAST(CAST(horizon AS pg_catalog.text) AS pg_catalog.xid8))
$fn$;

-- horizon_pid, horizon_role, horizon_age: when rows wait, the transaction that
-- holds them back (NULL for a prepared transaction's pid); also a NOTICE, or a
-- WARNING once it has been open a minute.
CREATE OR REPLACE FUNCTION hush.seal_audit()
RETURNS TABLE (seals_created integer, rows_sealed bigint, unsealed_rows bigint, head_seal_id bigint, head_hash text,
               horizon_pid integer, horizon_role name, horizon_age interval)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
AS $py${{py: seal.seal()}}$py$;
COMMENT ON FUNCTION hush.seal_audit() IS
    'Seal the audit rows of finished transactions not sealed yet (SHA-256, chained to the previous seal); name the transaction that holds the rest back.';

CREATE OR REPLACE FUNCTION hush.verify_audit(since timestamptz DEFAULT NULL, known_head text DEFAULT NULL)
RETURNS TABLE (ok boolean, seals_checked bigint, rows_checked bigint, unsealed_rows bigint, head_hash text,
               bad_seal_id bigint, problem text, detail text)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
AS $py${{py: seal.verify(since, known_head)}}$py$;
COMMENT ON FUNCTION hush.verify_audit(timestamptz, text) IS
    'Recompute the seal chain and the rows under it (seals made since `since`, or all): ok, or the first seal that differs and why; with known_head, a head hash kept elsewhere, also that the chain still holds that seal.';

-- partitions_deferred: expired partitions another session kept in use through
-- every try to drop them (empty when none); nothing was removed then, and the
-- next run tries again.
CREATE OR REPLACE FUNCTION hush.cleanup_audit_logs(retention_days integer DEFAULT 2555)
RETURNS TABLE (cutoff timestamptz, partitions_dropped integer, rows_removed bigint, oldest_removed timestamptz,
               newest_removed timestamptz, anchor_seal_id bigint, partitions_deferred text[])
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
AS $py${{py: maintenance.cleanup(retention_days)}}$py$;
COMMENT ON FUNCTION hush.cleanup_audit_logs(integer) IS
    'Remove audit rows older than retention_days (default 2,555, 7 years): drop whole partitions, delete in the one straddling the cutoff; logged in hush.maintenance_log, the seal chain anchored; deferred while a session keeps an expired partition in use.';

CREATE OR REPLACE FUNCTION hush.purge_deleted_secrets()
RETURNS TABLE (tenant_id text, secrets_purged bigint)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
AS $py${{py: maintenance.purge_deleted()}}$py$;
COMMENT ON FUNCTION hush.purge_deleted_secrets() IS
    'Erase soft-deleted secrets (every version) whose tenant''s recovery window (default 30 days) has passed; one audit row each.';

-- OAuth's own upkeep, for every tenant: events older than event_days go, and
-- pending authorizations past their expiry (oauth_begin only purges its own
-- tenant's, lazily). Run as hush_retention, whose row policies on those two
-- tables (idempotent/10_policies.sql) show it nothing else.
CREATE OR REPLACE FUNCTION hush.cleanup_oauth(event_days integer DEFAULT 90)
RETURNS TABLE (tenant_id text, events_removed bigint, pending_removed bigint)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
AS $py${{py: maintenance.cleanup_oauth(event_days)}}$py$;
COMMENT ON FUNCTION hush.cleanup_oauth(integer) IS
    'Remove OAuth events older than event_days (default 90) and expired pending authorizations, every tenant; per tenant, how many; logged in hush.maintenance_log.';

-- Secrets' upkeep, for every tenant: version retention (max_versions,
-- destroy_versions_after, as on each save), reminders of expiries and rotations
-- falling due within each tenant's expiry_warning (hush.secret_events), and the
-- removal of reminders older than event_days. Run as hush_retention.
CREATE OR REPLACE FUNCTION hush.maintain_secrets(event_days integer DEFAULT 90)
RETURNS TABLE (tenant_id text, versions_destroyed bigint, expiring bigint, rotation_due bigint, events_removed bigint)
LANGUAGE plpython3u VOLATILE
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
AS $py${{py: upkeep.maintain_secrets(event_days)}}$py$;
COMMENT ON FUNCTION hush.maintain_secrets(integer) IS
    'Apply version retention, write expiry and rotation reminders (hush.secret_events) and remove those older than '
    'event_days (default 90), every tenant; per tenant, how many; logged in hush.maintenance_log.';

-- pg_cron runs a job as the role that scheduled it, which must be able to log
-- in: so this is an invoker function, called by a superuser or by an admin
-- with USAGE on schema cron. Jobs are named, so calling it again updates them.
CREATE OR REPLACE FUNCTION hush.schedule_maintenance(retention_days integer DEFAULT 2555,
                                                     oauth_event_days integer DEFAULT 90,
                                                     secret_event_days integer DEFAULT 90)
RETURNS TABLE (jobname text, schedule text, command text, jobid bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    jobs text[][] := ARRAY[
        ARRAY['hush-audit-partitions', '7 0 * * *', 'SELECT hush.create_audit_partitions()'],
        ARRAY['hush-audit-seal', '* * * * *', 'SELECT hush.seal_audit()'],
        ARRAY['hush-audit-retention', '17 0 * * *',
              pg_catalog.format('SELECT hush.cleanup_audit_logs(%s)', retention_days)],
        ARRAY['hush-purge-deleted', '27 0 * * *', 'SELECT hush.purge_deleted_secrets()'],
        ARRAY['hush-oauth-cleanup', '37 0 * * *', pg_catalog.format('SELECT hush.cleanup_oauth(%s)', oauth_event_days)],
        ARRAY['hush-secret-upkeep', '47 * * * *',
              pg_catalog.format('SELECT hush.maintain_secrets(%s)', secret_event_days)]];
    i integer;
BEGIN
    IF retention_days IS NULL OR retention_days NOT BETWEEN 1 AND 36500 THEN
        RAISE EXCEPTION 'retention_days must be between 1 and 36500' USING ERRCODE = 'SH004';
    END IF;
    IF oauth_event_days IS NULL OR oauth_event_days NOT BETWEEN 1 AND 36500 THEN
        RAISE EXCEPTION 'oauth_event_days must be between 1 and 36500' USING ERRCODE = 'SH004';
    END IF;
    IF secret_event_days IS NULL OR secret_event_days NOT BETWEEN 1 AND 36500 THEN
        RAISE EXCEPTION 'secret_event_days must be between 1 and 36500' USING ERRCODE = 'SH004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in this database, so nothing was scheduled'
            USING ERRCODE = 'SH060',
                  HINT = 'Install pg_cron (shared_preload_libraries, cron.database_name, CREATE EXTENSION pg_cron), '
                      || 'or run these from another scheduler as a hush_admin role: every minute '
                      || '"SELECT hush.seal_audit()"; daily "SELECT hush.create_audit_partitions()", '
                      || pg_catalog.format('"SELECT hush.cleanup_audit_logs(%s)"', retention_days)
                      || ', "SELECT hush.purge_deleted_secrets()"'
                      || pg_catalog.format(', "SELECT hush.cleanup_oauth(%s)"', oauth_event_days)
                      || pg_catalog.format('; hourly "SELECT hush.maintain_secrets(%s)"', secret_event_days)
                      || '; or `hush audit maintain` from cron.';
    END IF;
    -- pg_cron keys a job on (name, role): a second role scheduling would add a second set of
    -- jobs. A superuser (who sees every role's jobs) takes the other roles' hush jobs of this
    -- database over, so one set runs.
    IF {{superuser: CURRENT_USER}} THEN
        EXECUTE 'SELECT pg_catalog.count(cron.unschedule(j.jobid)) FROM cron.job j
                  WHERE j.jobname OPERATOR(pg_catalog.=) ANY ($1) AND j.database OPERATOR(pg_catalog.=) $2
                    AND j.username OPERATOR(pg_catalog.<>) CURRENT_USER::pg_catalog.text'
           USING (SELECT pg_catalog.array_agg(jobs[k][1])
                    FROM pg_catalog.generate_series(1, pg_catalog.array_length(jobs, 1)) k),
                 pg_catalog.current_database();
    END IF;
    FOR i IN 1 .. pg_catalog.array_length(jobs, 1) LOOP
        jobname := jobs[i][1];
        schedule := jobs[i][2];
        command := jobs[i][3];
        EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, pg_catalog.current_database())'
           INTO jobid USING jobname, schedule, command;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION hush.schedule_maintenance(integer, integer, integer) IS
    'Register the maintenance jobs with pg_cron (sealing every minute; partitions, retention, purge and OAuth cleanup daily; secrets'' upkeep hourly); SH060 with what to run instead when pg_cron is missing.';
