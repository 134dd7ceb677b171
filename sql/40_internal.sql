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

-- Loads plpython/hush_plpy (inlined at build time) into this backend's GD once.
CREATE OR REPLACE FUNCTION hush._load_python() RETURNS void
LANGUAGE plpython3u VOLATILE AS $py${{python_modules}}$py$;
