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

ALTER TABLE hush.oauth_refresh_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.oauth_refresh_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.oauth_refresh_requests USING ({{owner_steps}}) WITH CHECK ({{owner_steps}});
-- The worker's scans (run as hush_refresher) read every tenant's requests beside the
-- connections they find due, confined as those are (oauth.SERVES); they write none.
CREATE POLICY worker_scan ON hush.oauth_refresh_requests FOR SELECT TO hush_refresher USING (true);

-- What hush.oauth_request_refresh answers: the generation the refresh will move on from, and
-- whether the request was recorded (false within 60 s of the last refresh: read the token).
CREATE TYPE hush.oauth_refresh_request AS (generation integer, requested boolean);
