-- The OAuth egress policy (plpython/hush_plpy/egress.py): where hush's client may
-- send requests beyond https to public addresses. A tenant's writer chooses its
-- providers' endpoints, and the worker and applications then send refresh tokens
-- and client secrets there from inside the network; so plain http, and addresses
-- outside the public internet (loopback, private, link-local, CGNAT), are refused
-- unless an admin allowed the host here. One policy for the database, no tenant:
-- configuration, like hush.tenants. Empty by default.
CREATE TABLE hush.oauth_egress (
    -- a host name (lowercase, no trailing dot), an IP address or a CIDR network,
    -- in the one form egress.host() writes, which the client compares
    host          text PRIMARY KEY CHECK (pg_catalog.length(host) BETWEEN 1 AND 255),
    allow_http    boolean NOT NULL,
    allow_private boolean NOT NULL,
    created_by    name NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (allow_http OR allow_private)
);
SELECT pg_catalog.pg_extension_config_dump('hush.oauth_egress'::regclass, '');

-- Read and written only in hush_owner's steps (no application role holds a privilege
-- on it); the policy says so again, FORCE'd like every other table's.
ALTER TABLE hush.oauth_egress ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.oauth_egress FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.oauth_egress
    USING (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name)
    WITH CHECK (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name);

CREATE TYPE hush.oauth_egress_rule AS (
    host text, allow_http boolean, allow_private boolean, created_by name, created_at timestamptz);
