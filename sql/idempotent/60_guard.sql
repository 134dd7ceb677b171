-- A guard against losing every secret by accident: a command that would take
-- the extension with it (DROP EXTENSION hush, DROP SCHEMA hush CASCADE, DROP
-- EXTENSION plpython3u CASCADE, DROP OWNED BY the role that owns the
-- extension, however spelt, commented or built in dynamic SQL) is refused
-- unless hush.allow_drop() was called earlier in the same transaction.
--
-- Decided by what the command drops, never by its text. Only an sql_drop event
-- trigger sees that (pg_event_trigger_dropped_objects()), and one that belongs
-- to the extension is dropped with it before it can fire. So hush_guard_drop
-- (ddl_command_start, on the tags that can reach the extension) arms, for
-- that one command, an sql_drop trigger that belongs to nothing: its function
-- in the session's pg_temp (out of reach of DROP SCHEMA hush), in a language
-- of the command's own (out of reach of DROP EXTENSION plpgsql CASCADE), all
-- owned by the bootstrap superuser (DROP OWNED BY the extension's owner leaves them;
-- PostgreSQL refuses DROP OWNED BY the bootstrap superuser). hush_guard_drop_end
-- removes them when the command ends with hush still there; a refused command
-- rolls them back. Nothing of the guard outlives the command or reaches a dump.
-- (PostgreSQL collects a command's dropped objects only when an sql_drop,
-- table_rewrite or ddl_command_end trigger exists as it starts:
-- hush_guard_drop_end is one.)

-- The confirmation lives in this backend's PL/Python memory, which no SQL can
-- write: a setting (set_config) could be forged by any role's code running in
-- the superuser's transaction (a function it calls, a trigger). Memory does not
-- roll back, so it holds a random nonce that must also be in a transaction-local
-- setting: ROLLBACK TO SAVEPOINT takes the setting, and the confirmation, back.
CREATE OR REPLACE FUNCTION hush.allow_drop() RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp AS $py$
row = plpy.execute("SELECT {{superuser: CURRENT_USER}} AS superuser, pg_catalog.txid_current() AS txid")[0]
if not row["superuser"]:
    e = plpy.Error("hush: only a superuser may allow dropping hush")
    e.sqlstate = "42501"
    raise e
import os
nonce = os.urandom(16).hex()
plpy.execute(plpy.prepare("SELECT pg_catalog.set_config('hush.allow_drop_nonce', $1, true)", ["text"]), [nonce])
GD["hush drop allowed in"] = (row["txid"], nonce)
return "DROP EXTENSION hush / DROP SCHEMA hush is allowed until this transaction ends"
$py$;
COMMENT ON FUNCTION hush.allow_drop() IS
    'Let a command that drops the extension hush (DROP EXTENSION, DROP SCHEMA hush CASCADE, DROP OWNED BY its owner) run in this transaction (superusers only): every secret goes with it.';

CREATE OR REPLACE FUNCTION hush._drop_allowed() RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp AS $py$
allowed = GD.get("hush drop allowed in")
if allowed is None:
    return False
now = plpy.execute("SELECT pg_catalog.txid_current_if_assigned() AS txid,"
                   " pg_catalog.current_setting('hush.allow_drop_nonce', true) AS nonce")[0]
return allowed == (now["txid"], now["nonce"])
$py$;

CREATE OR REPLACE FUNCTION hush._guard_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    -- One per backend: a concurrent command elsewhere arms its own.
    armed text := 'hush_guard_drop_' OPERATOR(pg_catalog.||) pg_catalog.pg_backend_pid();
    ext oid;
    nsp oid;
    owners oid[];
    boot name;
BEGIN
    IF tg_event OPERATOR(pg_catalog.=) 'ddl_command_end' THEN  -- hush is still here
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger t WHERE t.evtname OPERATOR(pg_catalog.=) armed) THEN
            EXECUTE pg_catalog.format('DROP EVENT TRIGGER %I', armed);
            DROP FUNCTION pg_temp.hush_guard_dropped();
            EXECUTE pg_catalog.format('DROP LANGUAGE %I', armed);
            DROP FUNCTION pg_temp.hush_guard_language();
        END IF;
        RETURN;
    END IF;
    SELECT e.oid, e.extnamespace, ARRAY[e.extowner, n.nspowner] INTO ext, nsp, owners
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
     WHERE e.extname OPERATOR(pg_catalog.=) 'hush';
    IF NOT {{superuser: CURRENT_USER}} THEN
        -- Only a superuser creates event triggers. A role that is not one can drop hush only
        -- with the privileges of its owner (rare): refused by tag, since it cannot be checked.
        IF pg_catalog.pg_has_role(CURRENT_USER, owners[1], 'USAGE')
           OR pg_catalog.pg_has_role(CURRENT_USER, owners[2], 'USAGE') THEN
            RAISE EXCEPTION 'hush: % by role %, which has the privileges of the owner of hush: hush cannot check what it drops', tg_tag, CURRENT_USER
                USING ERRCODE = 'SH050',
                      HINT = 'A superuser can run it; if it is meant to drop hush: BEGIN; SELECT hush.allow_drop(); '
                             OPERATOR(pg_catalog.||) tg_tag OPERATOR(pg_catalog.||) ' ...; COMMIT;';
        END IF;
        RETURN;
    END IF;
    IF hush._drop_allowed() THEN
        RETURN;
    END IF;
    SELECT r.rolname INTO boot FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) 10;
    -- The check is PL/pgSQL code in a language of its own, served by plpgsql's
    -- library but no part of any extension: DROP EXTENSION plpgsql CASCADE (or
    -- plpython3u's, or both at once) drops every function in those languages
    -- before sql_drop fires, and would take a check written in either with it.
    -- (PL/Python cannot run event triggers before PostgreSQL 17.)
    CREATE OR REPLACE FUNCTION pg_temp.hush_guard_language() RETURNS language_handler
        LANGUAGE c AS '$libdir/plpgsql', 'plpgsql_call_handler';
    EXECUTE pg_catalog.format('ALTER FUNCTION pg_temp.hush_guard_language() OWNER TO %I', boot);
    EXECUTE pg_catalog.format('CREATE LANGUAGE %I HANDLER pg_temp.hush_guard_language', armed);
    EXECUTE pg_catalog.format('ALTER LANGUAGE %I OWNER TO %I', armed, boot);
    EXECUTE pg_catalog.format($arm$
CREATE OR REPLACE FUNCTION pg_temp.hush_guard_dropped() RETURNS event_trigger
LANGUAGE %3$I SET search_path = pg_catalog, pg_temp AS $check$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_dropped_objects() d
                WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
                      AND d.objid OPERATOR(pg_catalog.=) %1$s
                   OR d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass
                      AND d.objid OPERATOR(pg_catalog.=) %2$s) THEN
        RAISE EXCEPTION 'hush: %% would destroy every secret, version and audit row in this database', tg_tag
            USING ERRCODE = 'SH050',
                  HINT = 'If that is what you want: BEGIN; SELECT hush.allow_drop(); '
                         OPERATOR(pg_catalog.||) tg_tag OPERATOR(pg_catalog.||) ' ...; COMMIT;';
    END IF;
END
$check$$arm$, ext, nsp, armed);
    EXECUTE pg_catalog.format('ALTER FUNCTION pg_temp.hush_guard_dropped() OWNER TO %I', boot);
    EXECUTE pg_catalog.format('CREATE EVENT TRIGGER %I ON sql_drop EXECUTE FUNCTION pg_temp.hush_guard_dropped()', armed);
    EXECUTE pg_catalog.format('ALTER EVENT TRIGGER %I OWNER TO %I', armed, boot);
    -- Fires with session_replication_role = replica too (see below).
    EXECUTE pg_catalog.format('ALTER EVENT TRIGGER %I ENABLE ALWAYS', armed);
END
$fn$;

-- The tags of every command that can drop the extension: its own, its schema's
-- (CASCADE), plpython3u's (CASCADE), and DROP OWNED BY the role that owns it. An event
-- trigger cannot be replaced in place: an update drops the old ones and makes them again.
DROP EVENT TRIGGER IF EXISTS hush_guard_drop;
DROP EVENT TRIGGER IF EXISTS hush_guard_drop_end;
CREATE EVENT TRIGGER hush_guard_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION hush._guard_drop();
CREATE EVENT TRIGGER hush_guard_drop_end ON ddl_command_end
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION hush._guard_drop();
-- An event trigger left ENABLE (origin) does not fire while the session runs
-- with session_replication_role = replica, as data-fix scripts and logical
-- replication tools set it: the guard would be off exactly there.
ALTER EVENT TRIGGER hush_guard_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER hush_guard_drop_end ENABLE ALWAYS;
