-- OAuth2 / OIDC state (DESIGN.md section 6): providers, pending authorizations
-- and connections (tokens per tenant, provider and account). Everything secret
-- (client secrets, PKCE verifiers and nonces, tokens) is sealed like a secret
-- value: its own data key under the active root key, with associated data
-- naming the table's part, the tenant, the row id and its generation, so a
-- sealed column copied to another row or table does not open. Each row keeps
-- the same three columns as hush.secret_versions (key_id, wrapped_dek,
-- ciphertext), so rotation (hush.rewrap) re-seals them alongside secrets.

-- One registered client per (tenant, provider name). config holds endpoints,
-- client id, auth method, scopes, redirect URIs, grant types and the discovery
-- document's cache: nothing secret. The sealed part is the client secret
-- (NULL columns for a public client).
CREATE TABLE hush.oauth_providers (
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    id          uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    generation  integer NOT NULL DEFAULT 1 CHECK (generation > 0),
    config      jsonb NOT NULL,
    key_id      text REFERENCES hush.root_keys (key_id),
    wrapped_dek bytea,
    ciphertext  bytea,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  name NOT NULL,
    PRIMARY KEY (tenant_id, name),
    UNIQUE (id),
    CHECK ((ciphertext IS NULL) = (wrapped_dek IS NULL) AND (ciphertext IS NULL) = (key_id IS NULL))
);
CREATE INDEX oauth_providers_key ON hush.oauth_providers (key_id) WHERE key_id IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('hush.oauth_providers'::regclass, '');

-- An authorization started and not yet completed. The state value itself is
-- only in the authorization URL; the table keeps its SHA-256, which the
-- callback looks up across tenants (the callback handler does not know the
-- tenant). Sealed: the PKCE code verifier and the OIDC nonce. Single use:
-- the callback deletes the row. binding_hash: the SHA-256 of the binding the
-- app keeps in the starting browser's session (a cookie); a callback that does
-- not bring it back is refused and the row stays (login CSRF, RFC 9700 4.7).
CREATE TABLE hush.oauth_pending (
    tenant_id    text NOT NULL,
    state_hash   bytea NOT NULL CHECK (pg_catalog.length(state_hash) = 32),
    id           uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    generation   integer NOT NULL DEFAULT 1 CHECK (generation > 0),
    provider     text NOT NULL,
    account      text,
    redirect_uri text,
    scopes       text[] NOT NULL DEFAULT '{}',
    key_id       text NOT NULL REFERENCES hush.root_keys (key_id),
    wrapped_dek  bytea NOT NULL,
    ciphertext   bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at   timestamptz NOT NULL,
    created_by   name NOT NULL,
    binding_hash bytea NOT NULL CHECK (pg_catalog.length(binding_hash) = 32),
    PRIMARY KEY (tenant_id, state_hash),
    FOREIGN KEY (tenant_id, provider) REFERENCES hush.oauth_providers (tenant_id, name) ON DELETE CASCADE
);
CREATE UNIQUE INDEX oauth_pending_state ON hush.oauth_pending (state_hash);
CREATE INDEX oauth_pending_key ON hush.oauth_pending (key_id);
SELECT pg_catalog.pg_extension_config_dump('hush.oauth_pending'::regclass, '');

-- Tokens of one account at one provider. The sealed part is a JSON object of
-- access_token, refresh_token and id_token, and secret_fields: the token
-- response's other members that may carry a credential (Slack's
-- authed_user.access_token); type, scopes and expiry stay in clear for listing
-- and scheduling, and so do the other members, in fields (Salesforce's
-- instance_url). What goes where: plpython/hush_plpy/oauth_response.py.
-- generation goes up with every store, so a refresh finishes only over the
-- generation it claimed. The refresh lease
-- (lease_holder, lease_until) is what makes refresh single-flight without a
-- transaction held open across HTTP: claimed and released in committed UPDATEs.
CREATE TABLE hush.oauth_connections (
    tenant_id         text NOT NULL,
    provider          text NOT NULL,
    account           text NOT NULL,
    id                uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    generation        integer NOT NULL DEFAULT 1 CHECK (generation > 0),
    grant_type        text NOT NULL,
    key_id            text NOT NULL REFERENCES hush.root_keys (key_id),
    wrapped_dek       bytea NOT NULL,
    ciphertext        bytea NOT NULL,
    token_type        text,
    scopes            text[] NOT NULL DEFAULT '{}',
    expires_at        timestamptz,
    has_refresh_token boolean NOT NULL DEFAULT false,
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth')),
    last_error        text,
    last_error_at     timestamptz,
    lease_holder      text,
    lease_until       timestamptz,
    -- failed refreshes in a row, and when the worker may try again (backoff,
    -- or the provider's Retry-After); on-demand callers do not wait for it
    failures          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz,
    refreshed_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by        name NOT NULL,
    -- The lease is a credential: claim hands out a random token and only its SHA-256
    -- stays here; finish and release need the token (lease_holder is the claimer's
    -- label, which audit rows show, and proves nothing). A newer claim replaces it.
    lease_token_hash  bytea CHECK (pg_catalog.length(lease_token_hash) = 32),
    fields            jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (pg_catalog.jsonb_typeof(fields) = 'object'),
    PRIMARY KEY (tenant_id, provider, account),
    UNIQUE (id),
    FOREIGN KEY (tenant_id, provider) REFERENCES hush.oauth_providers (tenant_id, name) ON DELETE CASCADE
);
CREATE INDEX oauth_connections_key ON hush.oauth_connections (key_id);
CREATE INDEX oauth_connections_expiry ON hush.oauth_connections (expires_at) WHERE status = 'active';
SELECT pg_catalog.pg_extension_config_dump('hush.oauth_connections'::regclass, '');

-- What happened to connections that an operator or the application must know
-- about: refresh_failed (the first failure of a streak), needs_reauth,
-- recovered (a refresh succeeded after failures). NOTIFY hush_oauth_events
-- announces each, with no payload: any role may LISTEN on any channel.
CREATE SEQUENCE IF NOT EXISTS hush.oauth_events_id_seq;
SELECT pg_catalog.pg_extension_config_dump('hush.oauth_events_id_seq'::regclass, '');
CREATE TABLE hush.oauth_events (
    tenant_id text NOT NULL,
    id        bigint NOT NULL DEFAULT pg_catalog.nextval('hush.oauth_events_id_seq'::regclass),
    at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    provider  text NOT NULL,
    account   text NOT NULL,
    event     text NOT NULL CHECK (event IN ('refresh_failed', 'needs_reauth', 'recovered')),
    detail    jsonb,
    PRIMARY KEY (tenant_id, id)
);
ALTER SEQUENCE hush.oauth_events_id_seq OWNED BY hush.oauth_events.id;
SELECT pg_catalog.pg_extension_config_dump('hush.oauth_events'::regclass, '');

ALTER TABLE hush.oauth_providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.oauth_providers FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.oauth_providers USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});

ALTER TABLE hush.oauth_connections ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.oauth_connections FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.oauth_connections USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});

-- The worker's steps (run as hush_refresher, privileged.py) look for due
-- connections across the tenants the calling worker may act on (the steps
-- check which) and lease them: reading and updating, nothing else (its UPDATE
-- privilege covers the lease columns alone).
CREATE POLICY worker_scan ON hush.oauth_connections FOR SELECT TO hush_refresher USING (true);
CREATE POLICY worker_lease ON hush.oauth_connections FOR UPDATE TO hush_refresher USING (true);

ALTER TABLE hush.oauth_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.oauth_events FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.oauth_events USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});

ALTER TABLE hush.oauth_pending ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.oauth_pending FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.oauth_pending USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});
-- The callback's lookup: the one row whose state hash the step set in
-- hush.oauth_state (hex), whatever its tenant. Knowing the hash means having
-- had the state value, which only the authorization URL carried. Reading,
-- locking (SELECT ... FOR UPDATE checks UPDATE policies: by_state_lock, whose
-- WITH CHECK lets no row be written) and taking it only; no insert or update;
-- and only in hush_owner's steps, which then check the caller's grant on its
-- tenant and the browser binding before they take it.
CREATE POLICY by_state_read ON hush.oauth_pending FOR SELECT
    USING (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name
           AND state_hash OPERATOR(pg_catalog.=)
           pg_catalog.decode(COALESCE(NULLIF(pg_catalog.current_setting('hush.oauth_state', true), ''), '00'), 'hex'));
CREATE POLICY by_state_take ON hush.oauth_pending FOR DELETE
    USING (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name
           AND state_hash OPERATOR(pg_catalog.=)
           pg_catalog.decode(COALESCE(NULLIF(pg_catalog.current_setting('hush.oauth_state', true), ''), '00'), 'hex'));
CREATE POLICY by_state_lock ON hush.oauth_pending FOR UPDATE
    USING (CURRENT_USER OPERATOR(pg_catalog.=) 'hush_owner'::pg_catalog.name
           AND state_hash OPERATOR(pg_catalog.=)
           pg_catalog.decode(COALESCE(NULLIF(pg_catalog.current_setting('hush.oauth_state', true), ''), '00'), 'hex'))
    WITH CHECK (false);
-- Maintenance (hush.cleanup_oauth, run as hush_retention) removes expired
-- pending authorizations and old events of every tenant, one statement each:
-- these let it see and delete those rows only (events a day old at least,
-- whatever retention it is asked for), and nothing else.
CREATE POLICY retention_expired ON hush.oauth_pending FOR SELECT TO hush_retention
    USING (expires_at OPERATOR(pg_catalog.<=) pg_catalog.now());
CREATE POLICY retention_purge ON hush.oauth_pending FOR DELETE TO hush_retention
    USING (expires_at OPERATOR(pg_catalog.<=) pg_catalog.now());
CREATE POLICY retention_expired ON hush.oauth_events FOR SELECT TO hush_retention
    USING (at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval));
CREATE POLICY retention_purge ON hush.oauth_events FOR DELETE TO hush_retention
    USING (at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval));

-- Result types of the OAuth functions (composite types, as in 20_types.sql:
-- output columns named like arguments would clash in RETURNS TABLE).
CREATE TYPE hush.oauth_provider_saved AS (name text, created boolean, generation integer);
CREATE TYPE hush.oauth_provider_info AS (
    name text, config jsonb, has_client_secret boolean, created_at timestamptz, updated_at timestamptz);
CREATE TYPE hush.oauth_client AS (name text, config jsonb, client_secret text);
CREATE TYPE hush.oauth_callback AS (
    tenant_id text, provider text, account text, redirect_uri text, scopes text[], expired boolean,
    code_verifier text, nonce text, config jsonb, client_secret text);
CREATE TYPE hush.oauth_stored AS (
    account text, generation integer, expires_at timestamptz, scopes text[], fields jsonb, secret_fields jsonb);
CREATE TYPE hush.oauth_access AS (
    account text, access_token text, token_type text, scopes text[], expires_at timestamptz,
    valid_for double precision, generation integer, grant_type text, lease_until timestamptz, fields jsonb,
    secret_fields jsonb);
CREATE TYPE hush.oauth_lease AS (
    outcome text, account text, generation integer, lease_until timestamptz, grant_type text, scopes text[],
    refresh_token text, config jsonb, client_secret text, lease_token text);
CREATE TYPE hush.oauth_connection AS (
    provider text, account text, grant_type text, status text, token_type text, scopes text[],
    expires_at timestamptz, has_refresh_token boolean, last_error text, last_error_at timestamptz,
    refreshed_at timestamptz, lease_until timestamptz, created_at timestamptz, updated_at timestamptz,
    failures integer, next_attempt_at timestamptz, fields jsonb);
CREATE TYPE hush.oauth_event AS (
    id bigint, at timestamptz, provider text, account text, event text, detail jsonb);
CREATE TYPE hush.oauth_due AS (
    tenant_id text, provider text, account text, generation integer, expires_at timestamptz, lease_token text);
CREATE TYPE hush.oauth_tokens AS (
    account text, access_token text, refresh_token text, id_token text, config jsonb, client_secret text);
