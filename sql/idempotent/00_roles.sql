-- Roles hush relies on. Roles are cluster-wide, so they are created only when
-- missing (a second database with hush reuses them) and never dropped by
-- DROP EXTENSION.
--   hush_owner   NOLOGIN, not a superuser: owns every table and API function,
--                so RLS (FORCE'd) applies inside SECURITY DEFINER functions.
--   hush_reader  reads secret values where the caller's grants allow it (hush.grant:
--                capabilities on name prefixes of a tenant).
--   hush_writer  hush_reader + save, update, delete, restore, destroy.
--   hush_admin   tenants, grants, keys; reads no secret values (no grant can give
--                it read: grants.py refuses capabilities a role cannot call).
--   hush_auditor reads the audit trail; reads no secret values.
--   hush_keykeeper NOLOGIN, BYPASSRLS: owns only the root key functions, which
--                count and re-seal data keys across every tenant; it reads
--                no secret value and no application role is a member of it.
--   hush_retention NOLOGIN, a member of hush_owner: owns only the audit
--                maintenance functions (partitions, seals, retention, purge).
--                The audit trail's trigger lets a DELETE through only when it
--                runs as this role, and no one logs in as it or is its member.
--   hush_oauth_worker  for the login role of `hush oauth-worker`: claims due
--                connections of the tenants granted to it and refreshes them
--                (it opens refresh tokens and client secrets, nothing else:
--                it is not a reader and reads no secret value).
--   hush_refresher NOLOGIN: the OAuth worker's scans run as it (steps of
--                hush.oauth_worker_claim and _next_due), across the tenants the
--                calling worker serves (a row policy lets it see them); it reads no token.
--   hush_recorder NOLOGIN: may call hush._record(), which stores read records
--                signed by hush's own reads (plpython/hush_plpy/recorder.py),
--                and hush._register_first_root_key() (a database's first key).
--                Give it to the login role that hush.recorder_conninfo names,
--                if records are not to be written as the bootstrap superuser.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['hush_owner', 'hush_reader', 'hush_writer', 'hush_admin', 'hush_auditor',
                             'hush_oauth_worker', 'hush_refresher', 'hush_recorder'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'hush_keykeeper') THEN
        CREATE ROLE hush_keykeeper NOLOGIN BYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'hush_retention') THEN
        CREATE ROLE hush_retention NOLOGIN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'hush_owner' AND (rolsuper OR rolbypassrls)) THEN
        RAISE EXCEPTION 'role hush_owner must be neither superuser nor BYPASSRLS: row-level security would not apply to it';
    END IF;
END
$roles$;

-- A writer can read: the writer role includes the reader role.
GRANT hush_reader TO hush_writer;
-- The maintenance functions create, own and drop audit partitions: rights that
-- come with the owner role.
GRANT hush_owner TO hush_retention;

-- The owner must reach its own schema; application roles get USAGE only
-- through the hush_* roles (see 90_privileges.sql).
GRANT USAGE ON SCHEMA hush TO hush_owner, hush_keykeeper, hush_refresher;
-- Monthly audit partitions are created at run time, in the hush schema.
GRANT CREATE ON SCHEMA hush TO hush_retention;
