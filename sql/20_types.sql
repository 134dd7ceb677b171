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
    expires_at  timestamptz,
    -- 'current', 'pending' or 'previous' (secrets.stage_of), NULL for another version
    stage       text
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
    total_exact boolean,
    -- the secret's own retention (NULL: the tenant's) and rotation schedule
    max_versions           integer,
    destroy_versions_after interval,
    rotate_every           interval,
    rotated_at             timestamptz,
    pending_version        integer
);

-- One version of a secret (secret_versions).
CREATE TYPE hush.secret_version AS (
    version      integer,
    created_at   timestamptz,
    created_by   name,
    key_id       text,
    destroyed    boolean,
    destroyed_at timestamptz,
    is_current   boolean,
    stage        text
);

CREATE TYPE hush.tenant_settings AS (
    tenant_id       text,
    audit_reads     boolean,
    max_value_bytes integer,
    updated_at      timestamptz,
    recovery_days   integer,
    audit_rows_per_second integer,
    reader_refresh  boolean,
    max_versions    integer,
    destroy_versions_after interval,
    expiry_warning  interval
);

-- A grant of capabilities on the names that start with a prefix ('' = the whole
-- tenant; '*' tenant = every tenant): what hush.grant and hush.revoke return.
CREATE TYPE hush.access_grant AS (
    tenant_id    text,
    role_name    name,
    prefix       text,
    capabilities text[],
    granted_at   timestamptz,
    granted_by   name
);

-- One capability a role holds on a prefix (hush.effective_access): the grant that
-- gives it (its tenant and role; implied_by 'read' or 'write' for a list that
-- one of them implies) and whether the role may call that capability's functions.
CREATE TYPE hush.access_entry AS (
    capability   text,
    prefix       text,
    grant_tenant text,
    grant_role   name,
    implied_by   text,
    callable     boolean
);

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
