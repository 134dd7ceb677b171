-- Size limits on array arguments, as domains over the arrays' types. PostgreSQL checks a
-- domain where it turns an argument into its parameter's type, so every call is checked
-- before PL/Python turns the array into Python objects: a Python string takes up to 4
-- bytes a character and every element some 60 bytes more, so a call over its limit would
-- otherwise cost several times its size in memory before hush's own code could refuse it.
-- Refused calls get SH004 (README, "Limits"); the Python code checks the same arguments
-- again, in detail, after this.

-- Raises SH004 for an array over its limit, after the failure line hush's functions log
-- (README, "Logs"; the action is the domain, which is all a domain's check knows). Only
-- ever called to refuse: the checks below call it after OR.
CREATE OR REPLACE FUNCTION hush._too_large(what text, items bigint, max_items bigint, bytes bigint, max_bytes bigint,
                                           hint text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    RAISE LOG 'hush-failure %', pg_catalog.json_build_object(
        'action', 'hush.' OPERATOR(pg_catalog.||) what, 'application_name', pg_catalog.current_setting('application_name'),
        'role', CURRENT_USER, 'session_role', SESSION_USER, 'sqlstate', 'SH004', 'tenant', NULL);
    IF items OPERATOR(pg_catalog.>) max_items THEN
        RAISE EXCEPTION 'hush: an argument of type hush.% has % elements; at most % are allowed', what, items, max_items
            USING ERRCODE = 'SH004', HINT = COALESCE(hint, 'See the README, "Limits".');
    END IF;
    RAISE EXCEPTION 'hush: an argument of type hush.% takes % bytes; at most % are allowed', what, bytes, max_bytes
        USING ERRCODE = 'SH004', HINT = COALESCE(hint, 'See the README, "Limits".');
END
$fn$;

-- Raises SH004 for an array of more than one dimension, after the failure line as above:
-- PL/Python hands one over as nested lists, which no argument of hush's takes. Only ever
-- called to refuse, after OR.
CREATE OR REPLACE FUNCTION hush._not_flat(what text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    RAISE LOG 'hush-failure %', pg_catalog.json_build_object(
        'action', 'hush.' OPERATOR(pg_catalog.||) what, 'application_name', pg_catalog.current_setting('application_name'),
        'role', CURRENT_USER, 'session_role', SESSION_USER, 'sqlstate', 'SH004', 'tenant', NULL);
    RAISE EXCEPTION 'hush: an argument of type hush.% has more than one dimension', what
        USING ERRCODE = 'SH004', HINT = 'Pass a one-dimensional array: a list, not a list of lists.';
END
$fn$;

-- Whether a text array is within max_items elements and max_bytes bytes as PL/Python will
-- hold it (refused with SH004 if not): an all-ASCII element counts its length, any other 4
-- bytes a character (its UTF-8 bytes are no more than that). Exact, so a compressed array
-- (a column of a table) is measured as it will be unpacked. Characters are counted only
-- when the UTF-8 bytes alone cannot decide. unnest() runs in a SELECT list, never in FROM:
-- a function in FROM stores its rows, and past work_mem in a temporary file, which would
-- put secret values on disk in clear.
CREATE OR REPLACE FUNCTION hush._text_array_fits(a text[], what text, max_items integer, max_bytes bigint,
                                                 hint text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT CASE
    WHEN pg_catalog.cardinality(a) OPERATOR(pg_catalog.>) max_items
        THEN hush._too_large(what, pg_catalog.cardinality(a), max_items, NULL, max_bytes, hint)
    WHEN u.bytes OPERATOR(pg_catalog.>) max_bytes
        THEN hush._too_large(what, 0, max_items, u.bytes, max_bytes, hint)
    WHEN u.bytes OPERATOR(pg_catalog.*) 4 OPERATOR(pg_catalog.<=) max_bytes THEN true
    ELSE COALESCE((SELECT w.bytes OPERATOR(pg_catalog.<=) max_bytes
                            OR hush._too_large(what, 0, max_items, w.bytes, max_bytes, hint)
                     FROM (SELECT pg_catalog.sum(CASE WHEN pg_catalog.octet_length(v) OPERATOR(pg_catalog.=)
                                                           pg_catalog.char_length(v)
                                                      THEN pg_catalog.octet_length(v)
                                                      ELSE pg_catalog.char_length(v) OPERATOR(pg_catalog.*) 4 END)
                                   AS bytes  -- each element is at most max_bytes here: no overflow
                             FROM (SELECT pg_catalog.unnest(a) AS v) AS e) AS w), true)
END
  FROM (SELECT COALESCE(pg_catalog.sum(pg_catalog.octet_length(e.v)), 0) AS bytes
          FROM (SELECT pg_catalog.unnest(a) AS v) AS e) AS u
$fn$;

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
