-- The size checks of the array arguments' domains (sql/incremental/005-limits.sql, which
-- creates those domains right after this file). PostgreSQL checks a domain where it turns
-- an argument into its parameter's type, so every call is checked before PL/Python turns
-- the array into Python objects: a Python string takes up to 4 bytes a character and every
-- element some 60 bytes more, so a call over its limit would otherwise cost several times
-- its size in memory before hush's own code could refuse it. Refused calls get SH004
-- (docs/reference.md, "Limits"); the Python code checks the same arguments again, in detail, after this.

-- Writes the failure line hush's functions log (docs/operations.md, "The server log") for
-- an argument refused with SH004; the action is the domain, which is all a domain's check
-- knows. The refusals below log through it before they raise.
CREATE OR REPLACE FUNCTION hush._log_refusal(what text)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    RAISE LOG 'hush-failure %', pg_catalog.json_build_object(
        'action', 'hush.' OPERATOR(pg_catalog.||) what, {{caller_json}},
        'sqlstate', 'SH004', 'tenant', NULL);
END
$fn$;

-- Raises SH004 for an array over its limit, after the failure line. Only ever called to
-- refuse: the domains' checks call it after OR.
CREATE OR REPLACE FUNCTION hush._too_large(what text, items bigint, max_items bigint, bytes bigint, max_bytes bigint,
                                           hint text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    advice text := COALESCE(hint, 'See docs/reference.md, "Limits".');
BEGIN
    PERFORM hush._log_refusal(what);
    IF items OPERATOR(pg_catalog.>) max_items THEN
        RAISE EXCEPTION 'hush: an argument of type hush.% has % elements; at most % are allowed', what, items, max_items
            USING ERRCODE = 'SH004', HINT = advice;
    END IF;
    RAISE EXCEPTION 'hush: an argument of type hush.% takes % bytes; at most % are allowed', what, bytes, max_bytes
        USING ERRCODE = 'SH004', HINT = advice;
END
$fn$;

-- Raises SH004 for an array of more than one dimension, after the failure line:
-- PL/Python hands one over as nested lists, which no argument of hush's takes. Only ever
-- called to refuse, after OR.
CREATE OR REPLACE FUNCTION hush._not_flat(what text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM hush._log_refusal(what);
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
