-- 0.5.0: a secret's lifecycle: retention per tenant and per secret, a rotation schedule,
-- staged versions, a change channel, expiry reminders.

-- A secret's retention (NULL: the tenant's) and its rotation schedule; rotated_at: when
-- current_version last changed (a rotation falls due at rotated_at + rotate_every); the
-- staged versions besides current_version: a value saved with stage => 'pending'
-- (promote_secret makes it current), and the current one before the last change of
-- current_version. Retention never destroys a staged version. A new version's number
-- is GREATEST(current_version, pending_version) + 1.
ALTER TABLE hush.secrets
    ADD COLUMN max_versions integer CHECK (max_versions BETWEEN 1 AND 10000),
    ADD COLUMN destroy_versions_after interval
               CHECK (destroy_versions_after > '0' AND destroy_versions_after <= '100 years'),
    ADD COLUMN rotate_every interval CHECK (rotate_every > '0' AND rotate_every <= '100 years'),
    ADD COLUMN rotated_at timestamptz,
    ADD COLUMN pending_version integer,
    ADD COLUMN previous_version integer;
-- A secret's current version became current when it was written.
UPDATE hush.secrets s SET rotated_at = COALESCE(
    (SELECT v.created_at FROM hush.secret_versions v
      WHERE v.tenant_id = s.tenant_id AND v.secret_id = s.id AND v.version = s.current_version), s.updated_at);
ALTER TABLE hush.secrets ALTER COLUMN rotated_at SET NOT NULL, ALTER COLUMN rotated_at SET DEFAULT pg_catalog.now();
-- What may fall due (due_for_rotation, the expiry events of hush.maintain_secrets).
CREATE INDEX secrets_due ON hush.secrets (tenant_id)
    WHERE deleted_at IS NULL AND (rotate_every IS NOT NULL OR expires_at IS NOT NULL);
-- Retention's scan: the versions not yet destroyed, so a secret with many destroyed
-- versions costs a save no more than one with few.
CREATE INDEX secret_versions_live ON hush.secret_versions (tenant_id, secret_id, version) WHERE destroyed_at IS NULL;

-- A secret's lifecycle beyond its versions: reminders that a
-- secret expires or falls due for rotation soon, written by hush.maintain_secrets()
-- (plpython/hush_plpy/upkeep.py), read by hush.secret_events(), retained by the
-- same job. Tenant-scoped as hush.oauth_events is: ids come from a sequence
-- every tenant shares, so callers see opaque ones (audit.opaque_id).
CREATE SEQUENCE IF NOT EXISTS hush.secret_events_id_seq;
SELECT pg_catalog.pg_extension_config_dump('hush.secret_events_id_seq'::regclass, '');
CREATE TABLE hush.secret_events (
    tenant_id text NOT NULL,
    id        bigint NOT NULL DEFAULT pg_catalog.nextval('hush.secret_events_id_seq'::regclass),
    at        timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    secret_id uuid NOT NULL,
    name      text NOT NULL,
    event     text NOT NULL CHECK (event IN ('expiring', 'expired', 'rotation_due', 'rotation_overdue')),
    -- the expiry or the rotation's due time the event is about: one event of a kind per due time
    due_at    timestamptz NOT NULL,
    detail    jsonb,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, secret_id, event, due_at)
);
ALTER SEQUENCE hush.secret_events_id_seq OWNED BY hush.secret_events.id;
SELECT pg_catalog.pg_extension_config_dump('hush.secret_events'::regclass, '');
CREATE INDEX secret_events_at ON hush.secret_events (at);

-- Version retention (0: none): keep a secret's newest max_versions versions, destroy
-- versions older than destroy_versions_after; a secret's own setting overrides these.
-- expiry_warning: how far ahead due_for_rotation and the expiry events look by default.
-- change_channel: the channel hush NOTIFYs (empty payload) when a secret of the tenant
-- changes: random, handed out only by the grant-checked hush.change_channel() (any role
-- may LISTEN on any name it knows); NULL until first asked for, and no NOTIFY is sent before.
ALTER TABLE hush.tenants
    ADD COLUMN max_versions integer NOT NULL DEFAULT 0 CHECK (max_versions BETWEEN 0 AND 10000),
    ADD COLUMN destroy_versions_after interval NOT NULL DEFAULT '0'
               CHECK (destroy_versions_after >= '0' AND destroy_versions_after <= '100 years'),
    ADD COLUMN expiry_warning interval NOT NULL DEFAULT '14 days'
               CHECK (expiry_warning >= '0' AND expiry_warning <= '10 years'),
    ADD COLUMN change_channel text UNIQUE CHECK (change_channel ~ '^hush_changes_[0-9a-f]{32}$');
ALTER TYPE hush.tenant_settings ADD ATTRIBUTE max_versions integer, ADD ATTRIBUTE destroy_versions_after interval,
    ADD ATTRIBUTE expiry_warning interval;

-- The result types say which stage a version is in ('current', 'pending' or 'previous',
-- secrets.stage_of; NULL for another version) and a secret's retention and schedule.
ALTER TYPE hush.secret ADD ATTRIBUTE stage text;
ALTER TYPE hush.secret_metadata ADD ATTRIBUTE max_versions integer, ADD ATTRIBUTE destroy_versions_after interval,
    ADD ATTRIBUTE rotate_every interval, ADD ATTRIBUTE rotated_at timestamptz, ADD ATTRIBUTE pending_version integer;
ALTER TYPE hush.secret_version ADD ATTRIBUTE stage text;

-- What falls due (hush.due_for_rotation): reason 'rotation_overdue' or 'rotation_due'
-- (due_at = rotated_at + rotate_every), 'expired' or 'expiring' (due_at = expires_at).
CREATE TYPE hush.secret_due AS (
    name            text,
    reason          text,
    due_at          timestamptz,
    rotate_every    interval,
    rotated_at      timestamptz,
    expires_at      timestamptz,
    version         integer,
    pending_version integer
);

-- A change to a secret (hush.changes): metadata only; change is the audit action
-- (create, new_version, pending_version, promote, rollback, update_metadata, delete,
-- restore, destroy, purge); cursor goes on `since` to read what followed.
CREATE TYPE hush.secret_change AS (
    cursor  text,
    name    text,
    version integer,
    change  text,
    at      timestamptz
);

-- A reminder hush.maintain_secrets() wrote (hush.secret_events): event 'expiring',
-- 'expired', 'rotation_due' or 'rotation_overdue' about the due time due_at.
CREATE TYPE hush.secret_event AS (
    id      bigint,
    at      timestamptz,
    name    text,
    event   text,
    due_at  timestamptz,
    detail  jsonb
);
