-- A secret's lifecycle beyond its versions (10_tables.sql): reminders that a
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

ALTER TABLE hush.secret_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.secret_events FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.secret_events USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});
-- hush.maintain_secrets() (run as hush_retention) removes old reminders of every
-- tenant in one statement: these let it see and delete those rows only (a day old
-- at least, whatever retention it is asked for), and nothing else.
CREATE POLICY retention_expired ON hush.secret_events FOR SELECT TO hush_retention
    USING (at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval));
CREATE POLICY retention_purge ON hush.secret_events FOR DELETE TO hush_retention
    USING (at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval));
