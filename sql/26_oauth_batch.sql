-- The OAuth worker's batched calls (50_functions/82_oauth_batch.sql,
-- plpython/hush_plpy/oauth_batch.py): their result types, and the limits of their
-- array arguments as domains (checked as 25_limits.sql's are, before PL/Python turns
-- an array into Python objects).

-- A lease of hush.oauth_worker_lease, opened: what hush.oauth_claim_refresh returns for
-- one, or (sqlstate, message) when it could not be opened (its lease then runs out).
CREATE TYPE hush.oauth_worker_leased AS (
    tenant_id text, provider text, account text, generation integer, expires_at timestamptz, lease_token text,
    grant_type text, scopes text[], refresh_token text, config jsonb, client_secret text, sqlstate text,
    message text);
-- One refresh of hush.oauth_worker_finish (item: its place in the arrays, from 1): what
-- hush.oauth_finish_refresh returns for one, or (sqlstate, message) when it was refused.
CREATE TYPE hush.oauth_worker_stored AS (
    item integer, tenant_id text, provider text, account text, generation integer, expires_at timestamptz,
    scopes text[], fields jsonb, secret_fields jsonb, sqlstate text, message text);

-- Tenants, providers, accounts and lease tokens of one oauth_worker_finish call: at most
-- 1,000 (a batch), each at most 255 characters (checked one by one after this).
CREATE DOMAIN hush.oauth_batch_names AS text[]
    CONSTRAINT within_limits CHECK (
        VALUE IS NULL
        OR (pg_catalog.cardinality(VALUE) OPERATOR(pg_catalog.<=) 1000
            AND pg_catalog.pg_column_size(VALUE) OPERATOR(pg_catalog.<=) 65536)
        OR hush._text_array_fits(VALUE, 'oauth_batch_names', 1000, 1020000,
                                 'The worker stores at most 1,000 refreshes a call.'))
    CONSTRAINT flat CHECK (
        COALESCE(pg_catalog.array_ndims(VALUE), 1) OPERATOR(pg_catalog.<=) 1 OR hush._not_flat('oauth_batch_names'));
CREATE DOMAIN hush.oauth_batch_generations AS integer[]
    CONSTRAINT within_limits CHECK (
        VALUE IS NULL
        OR pg_catalog.cardinality(VALUE) OPERATOR(pg_catalog.<=) 1000
        OR hush._too_large('oauth_batch_generations', pg_catalog.cardinality(VALUE), 1000, NULL, NULL,
                           'The worker stores at most 1,000 refreshes a call.'))
    CONSTRAINT flat CHECK (
        COALESCE(pg_catalog.array_ndims(VALUE), 1) OPERATOR(pg_catalog.<=) 1
        OR hush._not_flat('oauth_batch_generations'));
-- Their token responses: each at most 64 KiB (oauth_finish_refresh's limit, checked one by
-- one after this), 16 MiB in all as PL/Python will hold them.
CREATE DOMAIN hush.oauth_batch_tokens AS jsonb[]
    CONSTRAINT within_limits CHECK (
        VALUE IS NULL
        OR (pg_catalog.cardinality(VALUE) OPERATOR(pg_catalog.<=) 1000
            AND pg_catalog.pg_column_size(VALUE) OPERATOR(pg_catalog.<=) 65536)
        OR hush._text_array_fits(VALUE::pg_catalog.text[], 'oauth_batch_tokens', 1000, 16777216,
                                 'The worker stores at most 1,000 refreshes a call, 16 MiB of responses in all.'))
    CONSTRAINT flat CHECK (
        COALESCE(pg_catalog.array_ndims(VALUE), 1) OPERATOR(pg_catalog.<=) 1 OR hush._not_flat('oauth_batch_tokens'));
