-- 0.5.0: size limits on array arguments, as domains over the arrays' types. PostgreSQL
-- checks a domain where it turns an argument into its parameter's type, so every call is
-- checked before PL/Python turns the array into Python objects (the reasons, and the
-- functions the checks call: sql/idempotent/20_limits.sql). Each API function that takes
-- one has a new signature; the update drops the old ones (tools/build_sql.py).

-- The checks call functions the idempotent part defines: they run right after those exist.
-- hush:after idempotent/20_limits.sql

-- The names of one call (save_secrets, get_secrets): at most 10,000, each at most 255
-- characters (checked one by one after this). An array of at most 64 KiB as it came
-- skips the exact count: compressed, it unpacks to a few MiB at most.
CREATE DOMAIN hush.secret_names AS text[]
    CONSTRAINT within_limits CHECK (
        VALUE IS NULL
        OR (pg_catalog.cardinality(VALUE) OPERATOR(pg_catalog.<=) 10000
            AND pg_catalog.pg_column_size(VALUE) OPERATOR(pg_catalog.<=) 65536)
        OR hush._text_array_fits(VALUE, 'secret_names', 10000, 10200000,
                                 'Split the call into calls of at most 10,000 names.'))
    CONSTRAINT flat CHECK (
        COALESCE(pg_catalog.array_ndims(VALUE), 1) OPERATOR(pg_catalog.<=) 1 OR hush._not_flat('secret_names'));

-- The values of one save_secrets call: at most 10,000, and at most 64 MiB in all (each
-- also within its tenant's max_value_bytes, checked after this).
CREATE DOMAIN hush.secret_values AS text[]
    CONSTRAINT within_limits CHECK (
        VALUE IS NULL
        OR hush._text_array_fits(VALUE, 'secret_values', 10000, 67108864,
                                 'A value counts its UTF-8 bytes when it is all ASCII, else 4 bytes a character. '
                                 'Split the call: Secrets.save_many in the Python client does.'))
    CONSTRAINT flat CHECK (
        COALESCE(pg_catalog.array_ndims(VALUE), 1) OPERATOR(pg_catalog.<=) 1 OR hush._not_flat('secret_values'));

-- A secret's tags: at most 64 of at most 64 characters each (checked one by one after
-- this); 32 KiB as it came holds them with room to spare, and unpacks to a few MiB at most.
CREATE DOMAIN hush.secret_tags AS text[]
    CONSTRAINT within_limits CHECK (
        VALUE IS NULL
        OR (pg_catalog.cardinality(VALUE) OPERATOR(pg_catalog.<=) 64
            AND pg_catalog.pg_column_size(VALUE) OPERATOR(pg_catalog.<=) 32768)
        OR hush._too_large('secret_tags', pg_catalog.cardinality(VALUE), 64, pg_catalog.pg_column_size(VALUE),
                           32768, 'A secret has at most 64 tags of at most 64 characters each.'))
    CONSTRAINT flat CHECK (
        COALESCE(pg_catalog.array_ndims(VALUE), 1) OPERATOR(pg_catalog.<=) 1 OR hush._not_flat('secret_tags'));

-- Version numbers (destroy_secret): at most 10,000 (a Python integer takes some 36 bytes).
CREATE DOMAIN hush.version_list AS integer[]
    CONSTRAINT within_limits CHECK (
        VALUE IS NULL
        OR pg_catalog.cardinality(VALUE) OPERATOR(pg_catalog.<=) 10000
        OR hush._too_large('version_list', pg_catalog.cardinality(VALUE), 10000, NULL, NULL,
                           'Destroy the versions in calls of at most 10,000, or all of them with versions => NULL.'))
    CONSTRAINT flat CHECK (
        COALESCE(pg_catalog.array_ndims(VALUE), 1) OPERATOR(pg_catalog.<=) 1 OR hush._not_flat('version_list'));

-- The scopes of an OAuth authorization (oauth_begin): at most 100, at most 64 KiB in all
-- (as PL/Python will hold them, exactly), so a huge array is refused before PL/Python
-- turns it into Python strings.
CREATE DOMAIN hush.oauth_scopes AS text[]
    CONSTRAINT within_limits CHECK (
        VALUE IS NULL
        OR (pg_catalog.cardinality(VALUE) OPERATOR(pg_catalog.<=) 100
            AND pg_catalog.pg_column_size(VALUE) OPERATOR(pg_catalog.<=) 16384)
        OR hush._text_array_fits(VALUE, 'oauth_scopes', 100, 65536,
                                 'An authorization asks for at most 100 scopes of at most 64 KiB in all.'))
    CONSTRAINT flat CHECK (
        COALESCE(pg_catalog.array_ndims(VALUE), 1) OPERATOR(pg_catalog.<=) 1 OR hush._not_flat('oauth_scopes'));

-- The OAuth worker's batched calls (idempotent/50_functions/82_oauth_batch.sql):
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
