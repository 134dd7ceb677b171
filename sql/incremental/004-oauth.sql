-- 0.5.0: OAuth. A pending authorization bound to the browser that started it, the refresh
-- lease as a credential, refreshes asked of the worker, a token response's other
-- members, grant types enforced, the egress policy, and the worker's batched calls.

-- A pending authorization is bound to the browser that started it: binding_hash is the
-- SHA-256 of the binding the app keeps in the starting browser's session (a cookie); a
-- callback that does not bring it back is refused and the row stays (login CSRF, RFC 9700
-- 4.7). Those started before the update have no binding and could never complete: they go
-- (they last minutes; the user starts again).
DELETE FROM hush.oauth_pending;
ALTER TABLE hush.oauth_pending ADD COLUMN binding_hash bytea NOT NULL CHECK (pg_catalog.length(binding_hash) = 32);

-- The lease is a credential: claim hands out a random token and only its SHA-256 stays
-- here; finish and release need the token (lease_holder is the claimer's label, which
-- audit rows show, and proves nothing). A newer claim replaces it. A lease held across the
-- update has no token, so its holder's finish is refused (SH075) and the lease runs out, as
-- one whose holder died would; it is not cleared here, which would let a second refresher
-- present the refresh token the first may be presenting right now.
ALTER TABLE hush.oauth_connections ADD COLUMN lease_token_hash bytea CHECK (pg_catalog.length(lease_token_hash) = 32);
ALTER TYPE hush.oauth_lease ADD ATTRIBUTE lease_token text;
ALTER TYPE hush.oauth_due ADD ATTRIBUTE lease_token text;

-- Refreshes asked of the worker (hush.oauth_request_refresh, plpython/hush_plpy/oauth_lease.py):
-- one row per connection that a caller, typically a reader of a tenant with
-- reader_refresh => false, wants refreshed now. A table of its own, not a column of
-- hush.oauth_connections: asking runs in the asker's transaction, and an UPDATE of the
-- connection row there (or a foreign key to it, whose check takes a KEY SHARE lock) would
-- hold a lock that the worker's claim skips (SKIP LOCKED) and its renew, store and release
-- wait for, for as long as the asker leaves its transaction open. Asking is an
-- INSERT ... ON CONFLICT DO NOTHING here, which locks no connection row, and an uncommitted
-- request is simply not seen. The worker's claim reads this table; a store of tokens,
-- a disconnect and a provider's removal delete the connection's requests (no foreign key,
-- so no ON DELETE CASCADE: they do it themselves).
-- Not dumped: a request is a moment's wish, whose asker stopped waiting long before any
-- restore (its wait is bounded: SH078).
CREATE TABLE hush.oauth_refresh_requests (
    tenant_id    text NOT NULL,
    provider     text NOT NULL,
    account      text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT pg_catalog.statement_timestamp(),
    PRIMARY KEY (tenant_id, provider, account)
);

-- What hush.oauth_request_refresh answers: the generation the refresh will move on from, and
-- whether the request was recorded (false within 60 s of the last refresh: read the token).
CREATE TYPE hush.oauth_refresh_request AS (generation integer, requested boolean);

-- A token response's other members are kept: the clear ones in fields (Salesforce's
-- instance_url), the ones that may carry a credential (Slack's authed_user.access_token)
-- sealed with the tokens, as secret_fields; token reads, listings and stores return them.
-- What goes where: plpython/hush_plpy/oauth_response.py.
ALTER TABLE hush.oauth_connections
    ADD COLUMN fields jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (pg_catalog.jsonb_typeof(fields) = 'object');
ALTER TYPE hush.oauth_stored ADD ATTRIBUTE scopes text[], ADD ATTRIBUTE fields jsonb, ADD ATTRIBUTE secret_fields jsonb;
ALTER TYPE hush.oauth_access ADD ATTRIBUTE fields jsonb, ADD ATTRIBUTE secret_fields jsonb;
ALTER TYPE hush.oauth_connection ADD ATTRIBUTE fields jsonb;

-- A provider's grant_types are enforced from 0.5.0 (SH081); a config without them allows
-- any grant, as before. The client used to store its default (authorization_code,
-- refresh_token) whatever grants a provider then served: each provider keeps the grants
-- its stored connections came from, so no connection stops working with the update. An
-- empty list, which enforced would refuse everything, goes first (any grant, as before).
UPDATE hush.oauth_providers p SET config = p.config - 'grant_types' WHERE p.config -> 'grant_types' = '[]'::jsonb;
UPDATE hush.oauth_providers p
   SET config = pg_catalog.jsonb_set(p.config, '{grant_types}', (
       SELECT pg_catalog.jsonb_agg(g.name ORDER BY g.name)
         FROM (SELECT pg_catalog.jsonb_array_elements_text(p.config -> 'grant_types')
               UNION SELECT c.grant_type FROM hush.oauth_connections c
                      WHERE c.tenant_id = p.tenant_id AND c.provider = p.name
               UNION SELECT 'refresh_token' FROM hush.oauth_connections c
                      WHERE c.tenant_id = p.tenant_id AND c.provider = p.name AND c.has_refresh_token) g (name)))
 WHERE pg_catalog.jsonb_typeof(p.config -> 'grant_types') = 'array'
   AND EXISTS (SELECT FROM hush.oauth_connections c WHERE c.tenant_id = p.tenant_id AND c.provider = p.name);

-- The OAuth egress policy (plpython/hush_plpy/egress.py): where hush's client may
-- send requests beyond https to public addresses. A tenant's writer chooses its
-- providers' endpoints, and the worker and applications then send refresh tokens
-- and client secrets there from inside the network; so plain http, and addresses
-- outside the public internet (loopback, private, link-local, CGNAT), are refused
-- unless an admin allowed the host here. One policy for the database, no tenant:
-- configuration, like hush.tenants. Empty at first, so an updated database refuses plain
-- http and non-public addresses until an admin allows them.
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
CREATE TYPE hush.oauth_egress_rule AS (
    host text, allow_http boolean, allow_private boolean, created_by name, created_at timestamptz);

-- The OAuth worker's batched calls (idempotent/50_functions/82_oauth_batch.sql,
-- plpython/hush_plpy/oauth_batch.py): their result types (the limits of their array
-- arguments are domains, 005-limits.sql).

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

-- hush:after idempotent
-- A provider's client secret is a writer's (90_privileges.sql): readers refresh with what a
-- claim returns. 0.4.0 granted it to readers.
REVOKE EXECUTE ON FUNCTION hush.oauth_provider(text, text) FROM hush_reader;
