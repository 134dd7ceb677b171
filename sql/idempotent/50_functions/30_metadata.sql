-- Metadata only: these functions never return a value, so they write no audit row.
-- VOLATILE like the rest: each sets hush.tenant for the transaction.

CREATE OR REPLACE FUNCTION hush.list_secrets(
    tenant text, page integer DEFAULT 1, per_page integer DEFAULT 50,
    name_prefix text DEFAULT NULL, tags hush.secret_tags DEFAULT NULL, include_deleted boolean DEFAULT false,
    after text DEFAULT NULL)
RETURNS SETOF hush.secret_metadata
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_listing.list_secrets(tenant, page, per_page, name_prefix, tags, include_deleted, after)}}$py$;
COMMENT ON FUNCTION hush.list_secrets(text, integer, integer, text, hush.secret_tags, boolean, text) IS
    'One page of a tenant''s secrets by name (metadata only), by page number or after a name; rows carry the total.';

CREATE OR REPLACE FUNCTION hush.search_secrets(tenant text, query text, page integer DEFAULT 1, per_page integer DEFAULT 50,
                                    after text DEFAULT NULL)
RETURNS SETOF hush.secret_metadata
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_listing.search_secrets(tenant, query, page, per_page, after)}}$py$;
COMMENT ON FUNCTION hush.search_secrets(text, text, integer, integer, text) IS
    'Case-insensitive substring search over names, descriptions and tags (metadata only).';

CREATE OR REPLACE FUNCTION hush.secret_exists(tenant text, name text)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_listing.secret_exists(tenant, name)}}$py$;
COMMENT ON FUNCTION hush.secret_exists(text, text) IS 'Whether a live (not deleted) secret of this name exists.';

CREATE OR REPLACE FUNCTION hush.secret_exists_by_id(tenant text, id uuid)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_listing.secret_exists_by_id(tenant, id)}}$py$;
COMMENT ON FUNCTION hush.secret_exists_by_id(text, uuid) IS 'Whether a live (not deleted) secret with this id exists.';

CREATE OR REPLACE FUNCTION hush.secret_versions(tenant text, name text)
RETURNS SETOF hush.secret_version
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: secret_listing.secret_versions(tenant, name)}}$py$;
COMMENT ON FUNCTION hush.secret_versions(text, text) IS 'The versions of a secret, metadata only.';
