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
    recovery_days   integer,
    audit_rows_per_second integer,
    reader_refresh  boolean
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
