-- A tenant's own audit trail, for the application roles granted that tenant
-- (hush_auditor and hush_admin read the table itself, every tenant).

CREATE OR REPLACE FUNCTION hush.audit_log(
    tenant text, since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL, action text DEFAULT NULL,
    secret_name text DEFAULT NULL, max_rows integer DEFAULT 1000)
RETURNS TABLE (id bigint, at timestamptz, action text, secret_id uuid, secret_name text, version integer,
               db_role name, session_role name, application_name text, client_addr inet, txid bigint,
               outcome text, detail jsonb)
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: audit.read_log(tenant, since, until, action, secret_name, max_rows)}}$py$;
COMMENT ON FUNCTION hush.audit_log(text, timestamptz, timestamptz, text, text, integer) IS
    'The newest audit rows of a tenant granted to the caller (at most max_rows, up to 10,000), newest first; never a value.';
