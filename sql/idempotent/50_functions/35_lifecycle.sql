-- A secret's lifecycle: staged rotation, rollback, what falls due, what changed.
-- Privileged steps like the rest (plpython/hush_plpy/lifecycle.py, changes.py,
-- upkeep.py); each checks the caller's capability on the secret's name.

CREATE OR REPLACE FUNCTION hush.promote_secret(tenant text, name text, expected_version integer DEFAULT NULL)
RETURNS hush.saved_secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $py${{py: lifecycle.promote_secret(tenant, name, expected_version)}}$py$;
COMMENT ON FUNCTION hush.promote_secret(text, text, integer) IS
    'Make the pending version current (the current one becomes previous); expected_version: the pending version '
    'you staged (SH013 otherwise); audited.';

CREATE OR REPLACE FUNCTION hush.rollback_secret(tenant text, name text, to_version integer,
                                                expected_version integer DEFAULT NULL)
RETURNS hush.saved_secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $py${{py: lifecycle.rollback_secret(tenant, name, to_version, expected_version)}}$py$;
COMMENT ON FUNCTION hush.rollback_secret(text, text, integer, integer) IS
    'Make a new current version with an old version''s value; expected_version makes it check-and-set; audited.';

CREATE OR REPLACE FUNCTION hush.due_for_rotation(tenant text, within interval DEFAULT NULL,
                                                 at timestamptz DEFAULT pg_catalog.now())
RETURNS SETOF hush.secret_due
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $py${{py: lifecycle.due_for_rotation(tenant, within, at)}}$py$;
COMMENT ON FUNCTION hush.due_for_rotation(text, interval, timestamptz) IS
    'Secrets whose rotation is due or whose expiry comes within `within` of `at` (default: the tenant''s '
    'expiry_warning, 14 days), overdue and expired ones included; decided from the arguments alone.';

CREATE OR REPLACE FUNCTION hush.change_channel(tenant text)
RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: changes.change_channel(tenant)}}$py$;
COMMENT ON FUNCTION hush.change_channel(text) IS
    'The tenant''s change channel: LISTEN on it for an empty NOTIFY when one of its secrets changes.';

CREATE OR REPLACE FUNCTION hush.changes(tenant text, since text DEFAULT NULL, max_rows integer DEFAULT 1000)
RETURNS SETOF hush.secret_change
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: changes.changes(tenant, since, max_rows)}}$py$;
COMMENT ON FUNCTION hush.changes(text, text, integer) IS
    'Changes to the tenant''s secrets (metadata only, names the caller may list), oldest first, after the cursor '
    '`since` of a row this returned; only those of finished transactions, so none is ever skipped.';

CREATE OR REPLACE FUNCTION hush.changes_cursor(tenant text)
RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: changes.changes_cursor(tenant)}}$py$;
COMMENT ON FUNCTION hush.changes_cursor(text) IS
    'A cursor for hush.changes() at the present: what follows it are the changes not finished when it was taken.';

CREATE OR REPLACE FUNCTION hush.secret_events(tenant text, since timestamptz DEFAULT NULL, max_rows integer DEFAULT 100)
RETURNS SETOF hush.secret_event
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: upkeep.secret_events(tenant, since, max_rows)}}$py$;
COMMENT ON FUNCTION hush.secret_events(text, timestamptz, integer) IS
    'Expiry and rotation reminders hush.maintain_secrets() wrote for the tenant''s secrets (names the caller may list).';
