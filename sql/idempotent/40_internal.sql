-- Internal functions: callable by the owner of the API functions only.

-- Where the keyring comes from, read from the server's configuration files
-- (ALTER SYSTEM included), never from a session SET: a role that could point
-- hush at a keyring of its choosing could make hush seal new secrets under a
-- key it knows. `command` (hush.root_key_command) is a command whose standard
-- output is the keyring, run by the server as its OS user (pgsodium's getkey
-- pattern); when set it is used instead of `file` (hush.root_key_file).
-- pg_file_settings is superuser-only, so this one function stays owned by the
-- superuser who ran CREATE EXTENSION; it returns a command and a path, never
-- key material.
CREATE OR REPLACE FUNCTION hush._root_key_source(OUT command text, OUT file text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT pg_catalog.max(s.setting) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'hush.root_key_command'),
           pg_catalog.max(s.setting) FILTER (WHERE s.name OPERATOR(pg_catalog.=) 'hush.root_key_file')
      FROM (SELECT DISTINCT ON (f.name) f.name, f.setting FROM pg_catalog.pg_file_settings f
             WHERE f.name OPERATOR(pg_catalog.=) ANY (ARRAY['hush.root_key_command', 'hush.root_key_file'])
               AND f.error IS NULL
             ORDER BY f.name, f.seqno DESC) s
$fn$;

-- Loads plpython/hush_plpy (inlined at build time) into this backend once (GD holds the package, per version).
CREATE OR REPLACE FUNCTION hush._load_python() RETURNS void
LANGUAGE plpython3u VOLATILE AS $py${{python_modules}}$py$;

-- The hash of an audit seal: SHA-256 of a JSON array of its fields (times in
-- UTC, hashes in hex), so no session setting changes it. docs/audit.md ("The canonical form") shows how
-- to recompute it by hand.
CREATE OR REPLACE FUNCTION hush._seal_digest(id bigint, kind text, sealed_at timestamptz, after_txid bigint,
                                             after_id bigint, last_txid bigint, last_id bigint, row_count bigint,
                                             rows_hash bytea, prev_hash bytea)
RETURNS bytea LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.jsonb_build_array(
        'hush-seal-v1', id, kind, pg_catalog.to_char(sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        after_txid, after_id, last_txid, last_id, row_count, pg_catalog.encode(rows_hash, 'hex'),
        pg_catalog.encode(prev_hash, 'hex'))::pg_catalog.text, 'UTF8'))
$fn$;

-- The dispatchers of hush's privileged steps (plpython/hush_plpy/privileged.py),
-- one per role a step runs as. SECURITY DEFINER, but a caller gains nothing by
-- calling one: it runs only the step that hush's own invoker code put into this
-- backend's PL/Python memory a moment before (a single-use ticket no SQL can
-- read or forge), for the caller evaluated in that code's own statement.
CREATE OR REPLACE FUNCTION hush._as_owner(ticket text, caller name) RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: privileged.run('hush_owner', ticket, caller)}}$py$;

CREATE OR REPLACE FUNCTION hush._as_keykeeper(ticket text, caller name) RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: privileged.run('hush_keykeeper', ticket, caller)}}$py$;

-- Maintenance compares and hashes times: UTC and ISO whatever the caller set.
CREATE OR REPLACE FUNCTION hush._as_retention(ticket text, caller name) RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD'
AS $py${{py: privileged.run('hush_retention', ticket, caller)}}$py$;

CREATE OR REPLACE FUNCTION hush._as_refresher(ticket text, caller name) RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: privileged.run('hush_refresher', ticket, caller)}}$py$;

-- The receiving end of read records: a read is recorded on the primary, over a
-- connection of the reading backend's own, and committed before its value
-- leaves (plpython/hush_plpy/recorder.py). Stores only records that carry a MAC
-- keyed by the root keyring, which only hush's reads can make: logging in as
-- the role that may call it forges nothing. Stores nothing unless the reader's
-- grants, asked again in its own fresh snapshot, still allow every row (SH020:
-- a revoke bites a REPEATABLE READ reader too; recheck.py). Answers with a
-- receipt the reader checks: nothing in between can fake the commit.
CREATE OR REPLACE FUNCTION hush._record(body text, proof bytea) RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: recorder.store(body, proof)}}$py$;

-- Where a backend sends its read records: worked out from settings only a
-- superuser may read (primary_conninfo, unix_socket_directories, the server
-- configuration's hush.recorder_conninfo), kept in the backend's PL/Python
-- memory and never returned: a conninfo may hold a password. Stays owned by
-- the superuser who ran CREATE EXTENSION (90_privileges.sql).
CREATE OR REPLACE FUNCTION hush._recorder_target() RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: recorder.compute_target()}}$py$;

-- Whether this server's client connections stay outside
-- superuser_reserved_connections: a recorder logged in as a superuser must not
-- hold the DBA's reserve (hush._record asks). Counting other roles' sessions
-- needs pg_read_all_stats, so the superuser answers (yes or no, nothing about
-- any session), from fresh statistics.
CREATE OR REPLACE FUNCTION hush._recorder_room() RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $sql$
SELECT pg_catalog.pg_stat_clear_snapshot();
SELECT pg_catalog.count(*) OPERATOR(pg_catalog.<=)
       (pg_catalog.current_setting('max_connections')::pg_catalog.int4
        OPERATOR(pg_catalog.-) pg_catalog.current_setting('superuser_reserved_connections')::pg_catalog.int4)
  FROM pg_catalog.pg_stat_activity a WHERE a.backend_type OPERATOR(pg_catalog.=) 'client backend'
$sql$;

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
