-- The OAuth egress policy (plpython/hush_plpy/egress.py; table and type:
-- incremental/004-oauth.sql). Admins change it; every role that speaks to providers
-- reads it, and the Python client enforces it on every request.

CREATE OR REPLACE FUNCTION hush.oauth_allow_egress(host text, allow_http boolean DEFAULT false, allow_private boolean DEFAULT false)
RETURNS hush.oauth_egress_rule
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: egress.allow(host, allow_http, allow_private)}}$py$;
COMMENT ON FUNCTION hush.oauth_allow_egress(text, boolean, boolean) IS
    'Let OAuth requests reach a host (name, IP address or CIDR network) over plain http, at a non-public address (loopback, private, link-local, CGNAT), or both; replaces its entry; audited.';

CREATE OR REPLACE FUNCTION hush.oauth_disallow_egress(host text)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: egress.disallow(host)}}$py$;
COMMENT ON FUNCTION hush.oauth_disallow_egress(text) IS
    'Remove a host''s egress entry (https to public addresses only, again); true when there was one; audited.';

CREATE OR REPLACE FUNCTION hush.oauth_egress_policy()
RETURNS SETOF hush.oauth_egress_rule
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: egress.policy()}}$py$;
COMMENT ON FUNCTION hush.oauth_egress_policy() IS
    'The OAuth egress policy: the hosts allowed plain http or non-public addresses (none by default).';
