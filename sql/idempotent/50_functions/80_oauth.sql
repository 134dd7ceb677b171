-- OAuth2/OIDC storage (plpython/hush_plpy/oauth.py). The Python client speaks
-- HTTP between these calls, with no transaction open; these functions hold
-- no connection to the provider. Tables and result types: sql/incremental/.

CREATE OR REPLACE FUNCTION hush.oauth_save_provider(tenant text, provider text, config jsonb, client_secret text DEFAULT NULL)
RETURNS hush.oauth_provider_saved
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.save_provider(tenant, provider, config, client_secret)}}$py$;
COMMENT ON FUNCTION hush.oauth_save_provider(text, text, jsonb, text) IS
    'Register an OAuth provider of a tenant, or replace its configuration and client secret (sealed; NULL for a public client).';

CREATE OR REPLACE FUNCTION hush.oauth_providers(tenant text)
RETURNS SETOF hush.oauth_provider_info
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.providers(tenant)}}$py$;
COMMENT ON FUNCTION hush.oauth_providers(text) IS
    'The OAuth providers of a tenant with their configuration; never a client secret.';

CREATE OR REPLACE FUNCTION hush.oauth_provider(tenant text, provider text)
RETURNS hush.oauth_client
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.provider(tenant, provider)}}$py$;
COMMENT ON FUNCTION hush.oauth_provider(text, text) IS
    'A provider''s configuration and client secret, for the client that speaks HTTP; audited.';

CREATE OR REPLACE FUNCTION hush.oauth_remove_provider(tenant text, provider text)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.remove_provider(tenant, provider)}}$py$;
COMMENT ON FUNCTION hush.oauth_remove_provider(text, text) IS
    'Remove an OAuth provider with its pending authorizations and connections (nothing is revoked at the provider).';

-- binding comes last, after the arguments with defaults (which PostgreSQL requires it to
-- follow), with a default that is refused: a call written for the signature without it
-- fails with a message saying what to pass, not with a binding taken from the wrong place.
CREATE OR REPLACE FUNCTION hush.oauth_begin(tenant text, provider text, state text, code_verifier text, nonce text, redirect_uri text, scopes hush.oauth_scopes, account text DEFAULT NULL, ttl_seconds integer DEFAULT 600, binding text DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.begin(tenant, provider, state, code_verifier, nonce, redirect_uri, scopes, account, ttl_seconds, binding)}}$py$;
COMMENT ON FUNCTION hush.oauth_begin(text, text, text, text, text, text, hush.oauth_scopes, text, integer, text) IS
    'Store a pending authorization (the state''s and the browser binding''s SHA-256, the sealed PKCE verifier and nonce); returns when it expires.';

CREATE OR REPLACE FUNCTION hush.oauth_consume(state text, binding text)
RETURNS hush.oauth_callback
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.consume(state, binding)}}$py$;
COMMENT ON FUNCTION hush.oauth_consume(text, text) IS
    'Take the pending authorization a callback''s state names, once, whatever its tenant (the caller must be granted it), if the callback brings the binding of the browser that started it (SH080 otherwise, and nothing is taken).';

CREATE OR REPLACE FUNCTION hush.oauth_store_tokens(tenant text, provider text, account text, grant_type text, tokens jsonb)
RETURNS hush.oauth_stored
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.store_tokens(tenant, provider, account, grant_type, tokens)}}$py$;
COMMENT ON FUNCTION hush.oauth_store_tokens(text, text, text, text, jsonb) IS
    'Store a token endpoint response as the connection of an account: tokens and secret-bearing fields sealed, other fields in clear; a response without a refresh token keeps the stored one; SH081 for a grant type the provider does not enable.';

CREATE OR REPLACE FUNCTION hush.oauth_token(tenant text, provider text, account text DEFAULT NULL)
RETURNS hush.oauth_access
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.token(tenant, provider, account)}}$py$;
COMMENT ON FUNCTION hush.oauth_token(text, text, text) IS
    'The stored access token of a connection, how long it stays valid (valid_for, seconds) and the token response''s fields and secret_fields; audited. Does not refresh.';

CREATE OR REPLACE FUNCTION hush.oauth_claim_refresh(tenant text, provider text, account text, holder text, lease_seconds integer, seen_generation integer)
RETURNS hush.oauth_lease
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.claim(tenant, provider, account, holder, lease_seconds, seen_generation)}}$py$;
COMMENT ON FUNCTION hush.oauth_claim_refresh(text, text, text, text, integer, integer) IS
    'Take a connection''s refresh lease (commit before calling the provider): claimed (with the lease token), fresh, leased or needs_reauth; holder is a label, or the token of a lease held (renewed). A role that is only a reader gets at most 120 s.';

CREATE OR REPLACE FUNCTION hush.oauth_finish_refresh(tenant text, provider text, account text, holder text, generation integer, tokens jsonb)
RETURNS hush.oauth_stored
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.finish(tenant, provider, account, holder, generation, tokens)}}$py$;
COMMENT ON FUNCTION hush.oauth_finish_refresh(text, text, text, text, integer, jsonb) IS
    'Store a refresh''s response over the generation claimed and free the lease; holder is the lease token (SH075 unless it is the current lease''s). What is over a limit is left out (named in the audit row), the tokens kept.';

CREATE OR REPLACE FUNCTION hush.oauth_release_refresh(tenant text, provider text, account text, holder text, generation integer, error text, needs_reauth boolean DEFAULT false, retry_after_seconds integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.release(tenant, provider, account, holder, generation, error, needs_reauth, retry_after_seconds)}}$py$;
COMMENT ON FUNCTION hush.oauth_release_refresh(text, text, text, text, integer, text, boolean, integer) IS
    'Free a refresh lease (holder: its token); with an error, count it, back off (retry_after_seconds, not a reader''s, else 30 s doubling to an hour), mark needs_reauth on invalid_grant (a reader''s report: due for the worker at once), record the event.';

CREATE OR REPLACE FUNCTION hush.oauth_request_refresh(tenant text, provider text, account text)
RETURNS hush.oauth_refresh_request
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth_lease.request_refresh(tenant, provider, account)}}$py$;
COMMENT ON FUNCTION hush.oauth_request_refresh(text, text, text) IS
    'Ask the worker to refresh a connection now (no token material, no lock on the connection; wakes it with an empty NOTIFY); returns the current generation, which moves when it is done, and whether it was recorded (not within 60 s of the last refresh: the stored token is that fresh).';

CREATE OR REPLACE FUNCTION hush.oauth_connections(tenant text, provider text DEFAULT NULL)
RETURNS SETOF hush.oauth_connection
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.connections(tenant, provider)}}$py$;
COMMENT ON FUNCTION hush.oauth_connections(text, text) IS
    'A tenant''s OAuth connections: status, expiry, scopes, last error, the token response''s clear fields; never a token.';

CREATE OR REPLACE FUNCTION hush.oauth_connection_tokens(tenant text, provider text, account text DEFAULT NULL)
RETURNS hush.oauth_tokens
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.connection_tokens(tenant, provider, account)}}$py$;
COMMENT ON FUNCTION hush.oauth_connection_tokens(text, text, text) IS
    'Every token of a connection and the client secret, for revocation; audited.';

CREATE OR REPLACE FUNCTION hush.oauth_disconnect(tenant text, provider text, account text)
RETURNS boolean
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.delete_connection(tenant, provider, account)}}$py$;
COMMENT ON FUNCTION hush.oauth_disconnect(text, text, text) IS
    'Erase a connection''s tokens (revoke them at the provider first: the client''s revoke() does both).';

CREATE OR REPLACE FUNCTION hush.oauth_access_token(tenant text, provider text, account text DEFAULT NULL, min_valid_seconds integer DEFAULT 30)
RETURNS text
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.access_token_sql(tenant, provider, account, min_valid_seconds)}}$py$;
COMMENT ON FUNCTION hush.oauth_access_token(text, text, text, integer) IS
    'For SQL callers: the stored access token while it stays valid beyond min_valid_seconds, else SH076 (the worker refreshes ahead of time; SQL never does); audited.';

CREATE OR REPLACE FUNCTION hush.oauth_events(tenant text, since timestamptz DEFAULT NULL, max_rows integer DEFAULT 1000)
RETURNS SETOF hush.oauth_event
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.events(tenant, since, max_rows)}}$py$;
COMMENT ON FUNCTION hush.oauth_events(text, timestamptz, integer) IS
    'A tenant''s OAuth events (refresh_failed, needs_reauth, recovered), oldest first.';

-- The scans run as hush_refresher (a privileged step, 90_privileges.sql): its
-- row policy shows it every tenant's connections, and the step confines it to
-- the tenants the calling worker may act on.
CREATE OR REPLACE FUNCTION hush.oauth_worker_claim(holder text, batch_size integer DEFAULT 100, window_seconds integer DEFAULT 900, lease_seconds integer DEFAULT 60, keepalive_seconds integer DEFAULT NULL)
RETURNS SETOF hush.oauth_due
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.worker_claim(holder, batch_size, window_seconds, lease_seconds, keepalive_seconds)}}$py$;
COMMENT ON FUNCTION hush.oauth_worker_claim(text, integer, integer, integer, integer) IS
    'Lease connections due for a refresh (expiring within window_seconds, or half their lifetime if shorter; or idle for keepalive_seconds) in the tenants the calling worker serves; SKIP LOCKED; commit before refreshing.';

CREATE OR REPLACE FUNCTION hush.oauth_worker_next_due(window_seconds integer DEFAULT 900, keepalive_seconds integer DEFAULT NULL)
RETURNS double precision
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth.worker_next_due(window_seconds, keepalive_seconds)}}$py$;
COMMENT ON FUNCTION hush.oauth_worker_next_due(integer, integer) IS
    'Seconds until a connection the calling worker serves falls due (0: now; NULL: none will): how long it may sleep.';
