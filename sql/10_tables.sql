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

-- The keyrings of standbys, by key id only, as each reports it over its read
-- recorder's connection (a standby's keyring file is out of the primary's
-- sight): add_root_key and activate_root_key warn about a node lacking the key.
-- Not dumped: every node reports again on its next recorder connection.
CREATE TABLE hush.node_keyrings (
    node        text PRIMARY KEY,
    key_ids     text[] NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

-- Per-tenant settings; a tenant without a row uses the defaults.
CREATE TABLE hush.tenants (
    tenant_id       text PRIMARY KEY,
    audit_reads     boolean NOT NULL DEFAULT true,
    max_value_bytes integer NOT NULL DEFAULT 65536 CHECK (max_value_bytes BETWEEN 1 AND 1048576),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- how long a soft-deleted secret can be restored before maintenance purges it
    recovery_days   integer NOT NULL DEFAULT 30 CHECK (recovery_days BETWEEN 1 AND 3650),
    -- audit rows the tenant may write in any one second before its audited calls are
    -- refused (SH023; 0: no limit): one tenant cannot flood the trail every tenant shares
    audit_rows_per_second integer NOT NULL DEFAULT 0 CHECK (audit_rows_per_second BETWEEN 0 AND 10000),
    -- whether roles that are only readers may refresh OAuth tokens through the lease, and so
    -- store token material the database cannot tell from a forged one (false: they ask the
    -- worker or a writer with hush.oauth_request_refresh)
    reader_refresh  boolean NOT NULL DEFAULT true,
    -- version retention (0: none): keep a secret's newest max_versions versions, destroy
    -- versions older than destroy_versions_after; a secret's own setting overrides these
    max_versions    integer NOT NULL DEFAULT 0 CHECK (max_versions BETWEEN 0 AND 10000),
    destroy_versions_after interval NOT NULL DEFAULT '0'
                    CHECK (destroy_versions_after >= '0' AND destroy_versions_after <= '100 years'),
    -- how far ahead due_for_rotation and the expiry events look by default
    expiry_warning  interval NOT NULL DEFAULT '14 days'
                    CHECK (expiry_warning >= '0' AND expiry_warning <= '10 years'),
    -- the channel hush NOTIFYs (empty payload) when a secret of the tenant changes: random,
    -- handed out only by the grant-checked hush.change_channel() (any role may LISTEN on
    -- any name it knows); NULL until first asked for, and no NOTIFY is sent before
    change_channel  text UNIQUE CHECK (change_channel ~ '^hush_changes_[0-9a-f]{32}$')
);
SELECT pg_catalog.pg_extension_config_dump('hush.tenants'::regclass, '');

-- What roles may do in which tenants ('*' = every tenant): capabilities on the
-- secrets (and OAuth providers) whose names start with a literal prefix ('' =
-- the whole tenant). Grants add up; there are no deny rules. Role names, not
-- OIDs, so grants survive a dump and restore into another cluster. The primary
-- key leads with (tenant, role): a check probes it with the caller's role set
-- (access.py), not one row per grant of the tenant.
CREATE TABLE hush.tenant_grants (
    tenant_id    text NOT NULL,
    role_name    name NOT NULL,
    granted_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    granted_by   name NOT NULL,
    prefix       text NOT NULL DEFAULT '' CHECK (pg_catalog.length(prefix) <= 255),
    capabilities text[] NOT NULL
                 CHECK (pg_catalog.cardinality(capabilities) > 0
                        AND capabilities <@ '{{capabilities}}'::text[]),
    PRIMARY KEY (tenant_id, role_name, prefix)
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
    -- retention for this secret (NULL: the tenant's), and its rotation schedule
    max_versions    integer CHECK (max_versions BETWEEN 1 AND 10000),
    destroy_versions_after interval CHECK (destroy_versions_after > '0' AND destroy_versions_after <= '100 years'),
    rotate_every    interval CHECK (rotate_every > '0' AND rotate_every <= '100 years'),
    -- when current_version last changed: a rotation falls due at rotated_at + rotate_every
    rotated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- the staged versions besides current_version: a value saved with stage => 'pending'
    -- (promote_secret makes it current), and the current one before the last change of
    -- current_version. Retention never destroys a staged version. A new version's number
    -- is GREATEST(current_version, pending_version) + 1.
    pending_version integer,
    previous_version integer,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
-- What may fall due (due_for_rotation, the expiry events of hush.maintain_secrets).
CREATE INDEX secrets_due ON hush.secrets (tenant_id)
    WHERE deleted_at IS NULL AND (rotate_every IS NOT NULL OR expires_at IS NOT NULL);
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
-- Retention's scan: the versions not yet destroyed, so a secret with many destroyed
-- versions costs a save no more than one with few.
CREATE INDEX secret_versions_live ON hush.secret_versions (tenant_id, secret_id, version) WHERE destroyed_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('hush.secret_versions'::regclass, '');

-- The audit trail's tables are in 15_audit.sql.
