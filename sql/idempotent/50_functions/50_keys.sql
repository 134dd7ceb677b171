-- Root key lifecycle (hush_admin). The work runs as hush_keykeeper (a
-- privileged step, see 90_privileges.sql): it counts and re-seals data keys
-- across every tenant and never reads a value.

CREATE OR REPLACE FUNCTION hush.root_key_status()
RETURNS TABLE (key_id text, state text, loaded boolean, data_keys bigint, created_at timestamptz,
               activated_at timestamptz)
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.status()}}$py$;
COMMENT ON FUNCTION hush.root_key_status() IS
    'Every registered root key (active, decrypt_only, retired), whether the keyring holds it, how many data keys it seals; then keyring keys not registered yet.';

CREATE OR REPLACE FUNCTION hush.add_root_key(key_id text)
RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.add(key_id)}}$py$;
COMMENT ON FUNCTION hush.add_root_key(text) IS 'Register a key of the keyring (decrypt_only until activated).';

CREATE OR REPLACE FUNCTION hush.activate_root_key(key_id text)
RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.activate(key_id)}}$py$;
COMMENT ON FUNCTION hush.activate_root_key(text) IS
    'Seal new data keys with this registered key from now on; the previous active key keeps decrypting.';

CREATE OR REPLACE FUNCTION hush.retire_root_key(key_id text)
RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.retire(key_id)}}$py$;
COMMENT ON FUNCTION hush.retire_root_key(text) IS 'Retire a key that is not active and seals no data key.';

-- The first root key of a database, registered on the primary in a transaction
-- of its own (plpython/hush_plpy/recorder.py, register_first_key): called over
-- a writing backend's recorder connection, so that the registration does not
-- stay uncommitted in the first writer's transaction while every other
-- writer's first write waits for it. It takes no argument: it only does what
-- that first write would do (the keyring's first key, when none is registered).
CREATE OR REPLACE FUNCTION hush._register_first_root_key()
RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.register_first()}}$py$;

-- One committed batch of CALL hush.rewrap(); callable by hush_admin through it.
CREATE OR REPLACE FUNCTION hush._rewrap_batch(batch_size integer)
RETURNS integer
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.rewrap_batch(batch_size)}}$py$;

-- An invoker procedure without a SET clause: PostgreSQL allows COMMIT only
-- there, and only when it is not called inside an explicit transaction block.
-- Every name is schema-qualified, operators included.
CREATE OR REPLACE PROCEDURE hush.rewrap(batch_size integer DEFAULT 1000, pause_ms integer DEFAULT 0)
LANGUAGE plpgsql AS $fn$
DECLARE
    total bigint;
    done bigint := 0;
    n integer;
BEGIN
    IF pause_ms IS NULL OR pause_ms OPERATOR(pg_catalog.<) 0 THEN
        RAISE EXCEPTION 'hush: pause_ms must be 0 or more' USING ERRCODE = 'SH004';
    END IF;
    SELECT COALESCE(pg_catalog.sum(s.data_keys), 0) INTO total
      FROM hush.root_key_status() s WHERE s.state OPERATOR(pg_catalog.<>) 'active';
    LOOP
        n := hush._rewrap_batch(batch_size);
        COMMIT;
        EXIT WHEN n OPERATOR(pg_catalog.=) 0;
        done := done OPERATOR(pg_catalog.+) n;
        RAISE NOTICE 'hush rewrap: % of % data keys re-sealed', done, GREATEST(total, done);
        IF pause_ms OPERATOR(pg_catalog.>) 0 THEN
            PERFORM pg_catalog.pg_sleep(pause_ms OPERATOR(pg_catalog./) 1000.0);
        END IF;
    END LOOP;
    RAISE NOTICE 'hush rewrap: done, % data keys re-sealed', done;
END
$fn$;
COMMENT ON PROCEDURE hush.rewrap(integer, integer) IS
    'Re-seal data keys from older root keys to the active one, in committed batches (CALL outside a transaction block); resumable.';
