-- Internal functions: callable by the owner of the API functions only.

-- The keyring path from the server's configuration files (ALTER SYSTEM
-- included), never from a session SET: a role that could point hush at a file
-- of its choosing could make hush seal new secrets under a key it knows.
-- pg_file_settings is superuser-only, so this one function stays owned by the
-- superuser who ran CREATE EXTENSION; it returns a path, never key material.
CREATE OR REPLACE FUNCTION hush._root_key_file() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT f.setting FROM pg_catalog.pg_file_settings f
     WHERE f.name OPERATOR(pg_catalog.=) 'hush.root_key_file' AND f.error IS NULL
     ORDER BY f.seqno DESC LIMIT 1
$fn$;

-- The keyring command (hush.root_key_command), read the same way: a command
-- whose standard output is the keyring, run by the server as its OS user
-- (pgsodium's getkey pattern). When set, it is used instead of the file.
CREATE OR REPLACE FUNCTION hush._root_key_command() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT f.setting FROM pg_catalog.pg_file_settings f
     WHERE f.name OPERATOR(pg_catalog.=) 'hush.root_key_command' AND f.error IS NULL
     ORDER BY f.seqno DESC LIMIT 1
$fn$;

-- Loads plpython/hush_plpy (inlined at build time) into this backend's GD once.
CREATE OR REPLACE FUNCTION hush._load_python() RETURNS void
LANGUAGE plpython3u VOLATILE AS $py${{python_modules}}$py$;
