-- The schema of hush 0.4.0, the release that began sql/incremental/: its tables, indexes,
-- sequences and result types, squashed from that release's install script. A database
-- installed at 0.4.0 or updated to it has run this file (releases/manifest.json); later
-- changes are the files after it. What 0.4.0 re-created on every install and update
-- (roles, policies, functions, grants, triggers) is sql/idempotent/'s.

-- Tables. tenant_id leads every primary key (the layout a sharded Postgres
-- distributes by). Each table holding user data is registered with
-- pg_extension_config_dump right after it is created: pg_dump skips extension
-- tables otherwise, and a restore would silently lose every secret.

-- Root keys are known here by id only (BLAKE2b of the key); the keys themselves
-- stay in the keyring file outside the database.
CREATE TABLE hush.root_keys (
    key_id       text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{32}$'),
    state        text NOT NULL DEFAULT 'decrypt_only'
                 CHECK (state IN ('active', 'decrypt_only', 'retired')),
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    activated_at timestamptz
);
-- At most one active key at a time.
CREATE UNIQUE INDEX root_keys_one_active ON hush.root_keys (state) WHERE state = 'active';
SELECT pg_catalog.pg_extension_config_dump('hush.root_keys'::regclass, '');

-- Per-tenant settings; a tenant without a row uses the defaults.
CREATE TABLE hush.tenants (
    tenant_id       text PRIMARY KEY,
    audit_reads     boolean NOT NULL DEFAULT true,
    max_value_bytes integer NOT NULL DEFAULT 65536 CHECK (max_value_bytes BETWEEN 1 AND 1048576),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- how long a soft-deleted secret can be restored before maintenance purges it
    recovery_days   integer NOT NULL DEFAULT 30 CHECK (recovery_days BETWEEN 1 AND 3650)
);
SELECT pg_catalog.pg_extension_config_dump('hush.tenants'::regclass, '');

-- Which roles may act on which tenants ('*' = every tenant). Role names, not
-- OIDs, so grants survive a dump and restore into another cluster.
CREATE TABLE hush.tenant_grants (
    tenant_id  text NOT NULL,
    role_name  name NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    granted_by name NOT NULL,
    PRIMARY KEY (tenant_id, role_name)
);
CREATE INDEX tenant_grants_role ON hush.tenant_grants (role_name);
SELECT pg_catalog.pg_extension_config_dump('hush.tenant_grants'::regclass, '');

CREATE TABLE hush.secrets (
    tenant_id       text NOT NULL,
    id              uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    name            text NOT NULL,
    kind            text NOT NULL DEFAULT 'generic',
    description     text,
    tags            text[] NOT NULL DEFAULT '{}',
    metadata        jsonb NOT NULL DEFAULT '{}',
    current_version integer NOT NULL DEFAULT 1,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by      name NOT NULL,
    deleted_at      timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
SELECT pg_catalog.pg_extension_config_dump('hush.secrets'::regclass, '');

-- One row per version. ciphertext = nonce || XChaCha20-Poly1305 seal of the
-- value under the version's data key; wrapped_dek = nonce || seal of the data
-- key under root key key_id. Both seals carry (tenant, secret id, version) as
-- associated data. destroy_secret sets both to NULL for good.
CREATE TABLE hush.secret_versions (
    tenant_id    text NOT NULL,
    secret_id    uuid NOT NULL,
    version      integer NOT NULL CHECK (version > 0),
    key_id       text REFERENCES hush.root_keys (key_id),
    wrapped_dek  bytea,
    ciphertext   bytea,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by   name NOT NULL,
    destroyed_at timestamptz,
    PRIMARY KEY (tenant_id, secret_id, version),
    FOREIGN KEY (tenant_id, secret_id) REFERENCES hush.secrets (tenant_id, id),
    CHECK ((destroyed_at IS NULL) = (ciphertext IS NOT NULL AND wrapped_dek IS NOT NULL AND key_id IS NOT NULL))
);
-- Which data keys a root key seals: status counts, retire checks, rewrap batches.
CREATE INDEX secret_versions_key ON hush.secret_versions (key_id) WHERE key_id IS NOT NULL;
SELECT pg_catalog.pg_extension_config_dump('hush.secret_versions'::regclass, '');


-- The audit trail: who did what to which secret, never a value; its seals and
-- the log of the maintenance that keeps it.
--
-- Storage is partitioned by month (bounds in UTC) so that retention drops
-- whole partitions instead of deleting rows. The install script creates only
-- the DEFAULT partition, the safety net for rows with no monthly partition
-- yet; hush.create_audit_partitions() creates the monthly ones ahead of time
-- (run by the maintenance schedule, never on the hot path). What that means
-- for pg_dump:
--   * the parent holds no rows, so it is not registered with
--     pg_extension_config_dump (a partitioned parent dumps nothing anyway);
--   * the DEFAULT partition is an extension member, so it is registered, and
--     its rows are dumped as configuration data;
--   * monthly partitions are not members: pg_dump dumps them whole, as tables
--     attached to the parent. So the parent has no indexes of its own (CREATE
--     EXTENSION would give a restored partition a second, clashing copy of
--     each) and every partition gets its indexes when it is created.
-- The sequence is registered too, or ids would restart after a restore.
CREATE SEQUENCE IF NOT EXISTS hush.audit_log_id_seq;
SELECT pg_catalog.pg_extension_config_dump('hush.audit_log_id_seq'::regclass, '');
CREATE TABLE hush.audit_log (
    tenant_id        text NOT NULL,
    id               bigint NOT NULL DEFAULT pg_catalog.nextval('hush.audit_log_id_seq'::regclass),
    at               timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    action           text NOT NULL,
    secret_id        uuid,
    secret_name      text,
    version          integer,
    -- the role the calling code ran as (its default: 002-authority.sql), beside the
    -- session's login role
    db_role          name NOT NULL DEFAULT (CASE pg_catalog.current_setting('role')
                         WHEN 'none' THEN SESSION_USER ELSE pg_catalog.current_setting('role')::name END),
    session_role     name NOT NULL DEFAULT SESSION_USER,
    application_name text DEFAULT pg_catalog.current_setting('application_name'),
    client_addr      inet DEFAULT pg_catalog.inet_client_addr(),
    -- the writing transaction: seals cover rows by (txid, id), below the
    -- oldest transaction still running, so no late commit slips under a seal
    txid             bigint NOT NULL DEFAULT pg_catalog.txid_current(),
    outcome          text NOT NULL DEFAULT 'ok',
    detail           jsonb
) PARTITION BY RANGE (at);
ALTER SEQUENCE hush.audit_log_id_seq OWNED BY hush.audit_log.id;

CREATE TABLE hush.audit_log_default PARTITION OF hush.audit_log DEFAULT;
-- Its indexes and TRUNCATE trigger, which every partition carries, are the partition
-- set-up's (sql/idempotent/80_triggers.sql, maintenance.SETUP_SQL).
SELECT pg_catalog.pg_extension_config_dump('hush.audit_log_default'::regclass, '');

-- Seals: a hash chain over the trail. A regular seal covers the rows after the
-- previous seal's end up to (last_txid, last_id), in (txid, id) order; an
-- anchor, written by retention, re-seals what survives up to its end after
-- rows before it were removed. hash = SHA-256 of the seal's own fields and the
-- previous seal's hash (hush._seal_digest).
CREATE TABLE hush.audit_seals (
    id          bigint PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('seal', 'anchor')),
    sealed_at   timestamptz NOT NULL,
    sealed_by   name NOT NULL,
    after_txid  bigint,
    after_id    bigint,
    last_txid   bigint NOT NULL,
    last_id     bigint NOT NULL,
    row_count   bigint NOT NULL,
    rows_hash   bytea NOT NULL,
    prev_hash   bytea,
    hash        bytea NOT NULL
);
CREATE SEQUENCE hush.audit_seals_id_seq OWNED BY hush.audit_seals.id;
SELECT pg_catalog.pg_extension_config_dump('hush.audit_seals'::regclass, '');
SELECT pg_catalog.pg_extension_config_dump('hush.audit_seals_id_seq'::regclass, '');

-- What maintenance did: partitions created, rows expired, secrets purged.
CREATE TABLE hush.maintenance_log (
    id      bigint PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    task    text NOT NULL,
    run_by  name NOT NULL DEFAULT SESSION_USER,
    detail  jsonb NOT NULL
);
CREATE SEQUENCE hush.maintenance_log_id_seq OWNED BY hush.maintenance_log.id;
ALTER TABLE hush.maintenance_log ALTER COLUMN id SET DEFAULT pg_catalog.nextval('hush.maintenance_log_id_seq'::regclass);
SELECT pg_catalog.pg_extension_config_dump('hush.maintenance_log'::regclass, '');
SELECT pg_catalog.pg_extension_config_dump('hush.maintenance_log_id_seq'::regclass, '');

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
-- the callback deletes the row.
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
    PRIMARY KEY (tenant_id, state_hash),
    FOREIGN KEY (tenant_id, provider) REFERENCES hush.oauth_providers (tenant_id, name) ON DELETE CASCADE
);
CREATE UNIQUE INDEX oauth_pending_state ON hush.oauth_pending (state_hash);
CREATE INDEX oauth_pending_key ON hush.oauth_pending (key_id);
SELECT pg_catalog.pg_extension_config_dump('hush.oauth_pending'::regclass, '');

-- Tokens of one account at one provider. The sealed part is a JSON object of
-- access_token, refresh_token and id_token; type, scopes and expiry stay in
-- clear for listing and scheduling. generation goes up with every store, so
-- a refresh finishes only over the generation it claimed. The refresh lease
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

-- Result types of the OAuth functions (composite types, as below:
-- output columns named like arguments would clash in RETURNS TABLE).
CREATE TYPE hush.oauth_provider_saved AS (name text, created boolean, generation integer);
CREATE TYPE hush.oauth_provider_info AS (
    name text, config jsonb, has_client_secret boolean, created_at timestamptz, updated_at timestamptz);
CREATE TYPE hush.oauth_client AS (name text, config jsonb, client_secret text);
CREATE TYPE hush.oauth_callback AS (
    tenant_id text, provider text, account text, redirect_uri text, scopes text[], expired boolean,
    code_verifier text, nonce text, config jsonb, client_secret text);
CREATE TYPE hush.oauth_stored AS (account text, generation integer, expires_at timestamptz);
CREATE TYPE hush.oauth_access AS (
    account text, access_token text, token_type text, scopes text[], expires_at timestamptz,
    valid_for double precision, generation integer, grant_type text, lease_until timestamptz);
CREATE TYPE hush.oauth_lease AS (
    outcome text, account text, generation integer, lease_until timestamptz, grant_type text, scopes text[],
    refresh_token text, config jsonb, client_secret text);
CREATE TYPE hush.oauth_connection AS (
    provider text, account text, grant_type text, status text, token_type text, scopes text[],
    expires_at timestamptz, has_refresh_token boolean, last_error text, last_error_at timestamptz,
    refreshed_at timestamptz, lease_until timestamptz, created_at timestamptz, updated_at timestamptz,
    failures integer, next_attempt_at timestamptz);
CREATE TYPE hush.oauth_event AS (
    id bigint, at timestamptz, provider text, account text, event text, detail jsonb);
CREATE TYPE hush.oauth_due AS (
    tenant_id text, provider text, account text, generation integer, expires_at timestamptz);
CREATE TYPE hush.oauth_tokens AS (
    account text, access_token text, refresh_token text, id_token text, config jsonb, client_secret text);

-- Result types of the API functions. Composite types rather than RETURNS
-- TABLE: the output columns `name` and `version` would clash with the
-- arguments of the same names.

-- A secret with its value (get_secret, get_secret_by_id, get_secrets).
CREATE TYPE hush.secret AS (
    id          uuid,
    tenant_id   text,
    name        text,
    value       text,
    kind        text,
    description text,
    tags        text[],
    metadata    jsonb,
    version     integer,
    created_at  timestamptz,
    updated_at  timestamptz,
    expires_at  timestamptz
);

-- What a write returns (save_secret, update_secret*).
CREATE TYPE hush.saved_secret AS (
    id         uuid,
    tenant_id  text,
    name       text,
    version    integer,
    created_at timestamptz,
    updated_at timestamptz
);

-- A secret without its value (list_secrets, search_secrets, restore_secret);
-- total is the number of matching secrets across all pages, counted up to
-- 1,000 (total_exact is false when there are more).
CREATE TYPE hush.secret_metadata AS (
    id          uuid,
    tenant_id   text,
    name        text,
    kind        text,
    description text,
    tags        text[],
    metadata    jsonb,
    version     integer,
    expires_at  timestamptz,
    created_at  timestamptz,
    updated_at  timestamptz,
    deleted_at  timestamptz,
    total       bigint,
    total_exact boolean
);

-- One version of a secret (secret_versions).
CREATE TYPE hush.secret_version AS (
    version      integer,
    created_at   timestamptz,
    created_by   name,
    key_id       text,
    destroyed    boolean,
    destroyed_at timestamptz,
    is_current   boolean
);

CREATE TYPE hush.tenant_settings AS (
    tenant_id       text,
    audit_reads     boolean,
    max_value_bytes integer,
    updated_at      timestamptz,
    recovery_days   integer
);
