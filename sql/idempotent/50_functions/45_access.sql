-- Scoped grants (hush_admin): capabilities on a name prefix, and what a role may
-- do where (plpython/hush_plpy/grants.py). Changes are audited.
-- "grant" and "revoke" are reserved words: declared and called schema-qualified.

CREATE OR REPLACE FUNCTION hush."grant"(role name, tenant text, prefix text, capabilities text[])
RETURNS hush.access_grant
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: grants.grant(role, tenant, prefix, capabilities)}}$py$;
COMMENT ON FUNCTION hush."grant"(name, text, text, text[]) IS
    'Let a role (and its members) use capabilities (read, list, write, delete, destroy, oauth_use, oauth_manage, '
    'audit) on the names that start with a prefix in a tenant (''*'' = every tenant; prefix '''' = the whole '
    'tenant), added to what it holds there; SH024 for a capability whose functions the role cannot call.';

CREATE OR REPLACE FUNCTION hush."revoke"(role name, tenant text, prefix text, capabilities text[])
RETURNS hush.access_grant
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: grants.revoke(role, tenant, prefix, capabilities)}}$py$;
COMMENT ON FUNCTION hush."revoke"(name, text, text, text[]) IS
    'Remove capabilities from exactly the (role, tenant, prefix) grant (gone when none remain: returned with no '
    'capabilities); SH025 when there is none; a NOTICE when another grant still allows a removed capability.';

CREATE OR REPLACE FUNCTION hush.effective_access(role name, tenant text)
RETURNS SETOF hush.access_entry
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: grants.effective_access(role, tenant)}}$py$;
COMMENT ON FUNCTION hush.effective_access(name, text) IS
    'What a role may do in a tenant: each capability and prefix it holds, the grant that gives it, and whether the '
    'role may call that capability''s functions now. Admins for any role; others for themselves and the roles '
    'whose privileges they have.';
