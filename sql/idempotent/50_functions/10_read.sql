-- Reading secret values. SECURITY INVOKER, like every hush API function: they
-- run as the role the calling code runs as, and read in a privileged step
-- (plpython/hush_plpy/privileged.py) that checks that role's grant and writes
-- the read record. search_path is pinned and every name inside is
-- schema-qualified, so the caller's search_path cannot steer them.

CREATE OR REPLACE FUNCTION hush.get_secret(tenant text, name text, version integer DEFAULT NULL, stage text DEFAULT NULL)
RETURNS hush.secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secrets.get_secret(tenant, name, version, stage)}}$py$;
COMMENT ON FUNCTION hush.get_secret(text, text, integer, text) IS
    'Read a secret''s value (the current version, the given one, or the one staged ''current'', ''pending'' or '
    '''previous''); audited.';

CREATE OR REPLACE FUNCTION hush.get_secret_by_id(tenant text, id uuid, version integer DEFAULT NULL, stage text DEFAULT NULL)
RETURNS hush.secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secrets.get_secret_by_id(tenant, id, version, stage)}}$py$;
COMMENT ON FUNCTION hush.get_secret_by_id(text, uuid, integer, text) IS
    'Read a secret''s value by id (the current version, the given one, or a stage''s); audited.';

CREATE OR REPLACE FUNCTION hush.get_secrets(tenant text, names hush.secret_names)
RETURNS SETOF hush.secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secrets.get_secrets(tenant, names)}}$py$;
COMMENT ON FUNCTION hush.get_secrets(text, hush.secret_names) IS
    'Read the latest values of several secrets (up to 10,000) in one call, in the order named; one audit row each.';
