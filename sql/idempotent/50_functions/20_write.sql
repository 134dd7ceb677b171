-- Writing secrets: privileged steps run as hush_owner for the caller (plpython/hush_plpy/privileged.py).
-- Each write adds its audit row in the same transaction.

CREATE OR REPLACE FUNCTION hush.save_secret(
    tenant text, name text, value text,
    description text DEFAULT NULL, tags hush.secret_tags DEFAULT NULL, metadata jsonb DEFAULT NULL,
    kind text DEFAULT NULL, expected_version integer DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
    max_versions integer DEFAULT NULL, destroy_versions_after interval DEFAULT NULL,
    rotate_every interval DEFAULT NULL, stage text DEFAULT NULL)
RETURNS hush.saved_secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $py${{py: secret_writes.save_secret(tenant, name, value, description, tags, metadata, kind, expected_version, expires_at, max_versions, destroy_versions_after, rotate_every, stage)}}$py$;
COMMENT ON FUNCTION hush.save_secret(text, text, text, text, hush.secret_tags, jsonb, text, integer, timestamptz,
                                     integer, interval, interval, text) IS
    'Create a secret or add a version; expected_version makes it check-and-set (0 = create only); '
    'stage => ''pending'' stages the value for promote_secret and leaves the current one; max_versions and '
    'destroy_versions_after set the secret''s retention (0: the tenant''s), rotate_every its rotation schedule '
    '(''0'': none); NULL keeps what is set.';

CREATE OR REPLACE FUNCTION hush.update_secret(
    tenant text, name text, value text DEFAULT NULL,
    description text DEFAULT NULL, tags hush.secret_tags DEFAULT NULL, metadata jsonb DEFAULT NULL,
    expected_version integer DEFAULT NULL, kind text DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
    max_versions integer DEFAULT NULL, destroy_versions_after interval DEFAULT NULL,
    rotate_every interval DEFAULT NULL, stage text DEFAULT NULL)
RETURNS hush.saved_secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $py${{py: secret_writes.update_secret(tenant, name, value, description, tags, metadata, expected_version, kind, expires_at, max_versions, destroy_versions_after, rotate_every, stage)}}$py$;
COMMENT ON FUNCTION hush.update_secret(text, text, text, text, hush.secret_tags, jsonb, integer, text, timestamptz,
                                       integer, interval, interval, text) IS
    'Update an existing secret: a new value makes a new version (staged pending with stage => ''pending''); '
    'NULL arguments keep what is there.';

CREATE OR REPLACE FUNCTION hush.update_secret_by_id(
    tenant text, id uuid, value text DEFAULT NULL,
    description text DEFAULT NULL, tags hush.secret_tags DEFAULT NULL, metadata jsonb DEFAULT NULL,
    expected_version integer DEFAULT NULL, kind text DEFAULT NULL, expires_at timestamptz DEFAULT NULL,
    max_versions integer DEFAULT NULL, destroy_versions_after interval DEFAULT NULL,
    rotate_every interval DEFAULT NULL, stage text DEFAULT NULL)
RETURNS hush.saved_secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $py${{py: secret_writes.update_secret_by_id(tenant, id, value, description, tags, metadata, expected_version, kind, expires_at, max_versions, destroy_versions_after, rotate_every, stage)}}$py$;
COMMENT ON FUNCTION hush.update_secret_by_id(text, uuid, text, text, hush.secret_tags, jsonb, integer, text, timestamptz,
                                             integer, interval, interval, text) IS
    'update_secret by id.';

CREATE OR REPLACE FUNCTION hush.delete_secret(tenant text, name text)
RETURNS void
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_removal.delete_secret(tenant, name)}}$py$;
COMMENT ON FUNCTION hush.delete_secret(text, text) IS
    'Soft-delete a secret: reads fail as not found until restore_secret.';

CREATE OR REPLACE FUNCTION hush.delete_secret_by_id(tenant text, id uuid)
RETURNS void
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_removal.delete_secret_by_id(tenant, id)}}$py$;
COMMENT ON FUNCTION hush.delete_secret_by_id(text, uuid) IS 'delete_secret by id.';

CREATE OR REPLACE FUNCTION hush.restore_secret(tenant text, name text)
RETURNS hush.secret_metadata
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_removal.restore_secret(tenant, name)}}$py$;
COMMENT ON FUNCTION hush.restore_secret(text, text) IS 'Undo a soft delete.';

CREATE OR REPLACE FUNCTION hush.destroy_secret(tenant text, name text, versions hush.version_list DEFAULT NULL)
RETURNS integer
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_removal.destroy_secret(tenant, name, versions)}}$py$;
COMMENT ON FUNCTION hush.destroy_secret(text, text, hush.version_list) IS
    'Erase the ciphertext and data keys of the given versions (all when NULL) for good.';

CREATE OR REPLACE FUNCTION hush.save_secrets(
    tenant text, names hush.secret_names, "values" hush.secret_values,
    kind text DEFAULT NULL, tags hush.secret_tags DEFAULT NULL, metadata jsonb DEFAULT NULL)
RETURNS SETOF hush.saved_secret
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $py${{py: bulk.save_secrets(tenant, names, values, kind, tags, metadata)}}$py$;
COMMENT ON FUNCTION hush.save_secrets(text, hush.secret_names, hush.secret_values, text, hush.secret_tags, jsonb) IS
    'save_secret for many secrets in one set-based call (up to 10,000 and 64 MiB of values); all or nothing; one audit row each.';
