-- A guard against losing every secret by accident: DROP EXTENSION hush and
-- DROP SCHEMA hush (CASCADE) are refused unless hush.allow_drop() was called
-- earlier in the same transaction.
--
-- The trigger fires at ddl_command_start: an sql_drop trigger that belongs to
-- the extension is dropped along with it and never fires. At that point the
-- targets of the command are not known yet, so it reads the statement text and
-- refuses any DROP EXTENSION / DROP SCHEMA that names hush (a false alarm is
-- cheap: call hush.allow_drop() first).

CREATE OR REPLACE FUNCTION hush.allow_drop() RETURNS text
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT pg_catalog.set_config('hush.allow_drop_in', pg_catalog.txid_current()::text, true);
    SELECT 'DROP EXTENSION hush / DROP SCHEMA hush is allowed until this transaction ends'::text;
$fn$;
COMMENT ON FUNCTION hush.allow_drop() IS
    'Let DROP EXTENSION hush or DROP SCHEMA hush run in this transaction (superusers only): every secret goes with it.';

CREATE OR REPLACE FUNCTION hush._guard_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF pg_catalog.current_query() OPERATOR(pg_catalog.~*)
           '\mdrop\s+(extension|schema)\s+(if\s+exists\s+)?([^;]*[\s,"])?hush("|\M)'
       AND pg_catalog.current_setting('hush.allow_drop_in', true) IS DISTINCT FROM pg_catalog.txid_current()::text
    THEN
        RAISE EXCEPTION 'hush: % would destroy every secret, version and audit row in this database', tg_tag
            USING ERRCODE = 'SH050',
                  HINT = 'If that is what you want: BEGIN; SELECT hush.allow_drop(); ' || tg_tag || ' ...; COMMIT;';
    END IF;
END
$fn$;

CREATE EVENT TRIGGER hush_guard_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION hush._guard_drop();
