-- Whether the transaction that read a value committed, worked out when asked
-- (the record itself, committed apart and append-only, is never updated).
CREATE OR REPLACE FUNCTION hush.caller_xact(detail jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $sql$
SELECT CASE
    WHEN NOT detail OPERATOR(pg_catalog.?) 'caller_txid' THEN NULL  -- written in the caller's own transaction
    WHEN detail OPERATOR(pg_catalog.->) 'caller_txid' OPERATOR(pg_catalog.=) 'null'::jsonb THEN 'none'
    -- Not a transaction id (a detail made by hand): no cast below may fail on it.
    WHEN pg_catalog.jsonb_typeof(detail OPERATOR(pg_catalog.->) 'caller_txid') OPERATOR(pg_catalog.<>) 'number'
         OR (detail OPERATOR(pg_catalog.->) 'caller_txid')::pg_catalog.numeric OPERATOR(pg_catalog.<) 0
         OR (detail OPERATOR(pg_catalog.->) 'caller_txid')::pg_catalog.numeric OPERATOR(pg_catalog.<>)
            pg_catalog.trunc((detail OPERATOR(pg_catalog.->) 'caller_txid')::pg_catalog.numeric) THEN 'unknown'
    -- txid_status() raises for an id this node has not reached (a record from a lost timeline)
    WHEN (detail OPERATOR(pg_catalog.->) 'caller_txid')::pg_catalog.numeric
         OPERATOR(pg_catalog.>=) pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()) THEN 'unknown'
    ELSE COALESCE(pg_catalog.txid_status((detail OPERATOR(pg_catalog.->>) 'caller_txid')::bigint), 'unknown')
END
$sql$;
COMMENT ON FUNCTION hush.caller_xact(jsonb) IS
    'Of a read record (audit_log.detail): whether the reading transaction committed, aborted or is in progress; '
    '''none'' when it wrote nothing before the read, ''unknown'' when this node cannot tell; NULL for rows written in '
    'the caller''s own transaction.';

-- A tenant's own audit trail, for the application roles granted that tenant
-- (hush_auditor and hush_admin read the table itself, every tenant). Rows come
-- with a cursor, not the trail's id and txid: those count every tenant's
-- activity (plpython/hush_plpy/audit.py).

CREATE OR REPLACE FUNCTION hush.audit_log(
    tenant text, since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL, action text DEFAULT NULL,
    secret_name text DEFAULT NULL, max_rows integer DEFAULT 1000, after text DEFAULT NULL,
    oldest_first boolean DEFAULT false)
RETURNS TABLE (cursor text, at timestamptz, action text, secret_id uuid, secret_name text, version integer,
               db_role name, session_role name, application_name text, client_addr inet,
               outcome text, detail jsonb, caller_xact text)
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: audit.read_log(tenant, since, until, action, secret_name, max_rows, after, oldest_first)}}$py$;
COMMENT ON FUNCTION hush.audit_log(text, timestamptz, timestamptz, text, text, integer, text, boolean) IS
    'The audit rows of a tenant granted to the caller (at most max_rows, up to 10,000), newest first, or oldest first '
    'and only those of finished transactions; each with an opaque cursor: after => one of them, the rows that follow it. '
    'Never a value.';
