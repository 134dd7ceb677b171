-- Root key lifecycle (hush_admin). Owned by hush_keykeeper (see 90_privileges.sql):
-- they count data keys across every tenant and never read a value.

CREATE OR REPLACE FUNCTION hush.root_key_status()
RETURNS TABLE (key_id text, state text, loaded boolean, data_keys bigint, created_at timestamptz,
               activated_at timestamptz)
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.status(GD)}}$py$;
COMMENT ON FUNCTION hush.root_key_status() IS
    'Every registered root key (active, decrypt_only, retired), whether the keyring holds it, how many data keys it seals; then keyring keys not registered yet.';

CREATE OR REPLACE FUNCTION hush.add_root_key(key_id text)
RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.add(GD, key_id)}}$py$;
COMMENT ON FUNCTION hush.add_root_key(text) IS 'Register a key of the keyring (decrypt_only until activated).';

CREATE OR REPLACE FUNCTION hush.activate_root_key(key_id text)
RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.activate(GD, key_id)}}$py$;
COMMENT ON FUNCTION hush.activate_root_key(text) IS
    'Seal new data keys with this registered key from now on; the previous active key keeps decrypting.';

CREATE OR REPLACE FUNCTION hush.retire_root_key(key_id text)
RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $py${{py: keys.retire(GD, key_id)}}$py$;
COMMENT ON FUNCTION hush.retire_root_key(text) IS 'Retire a key that is not active and seals no data key.';
