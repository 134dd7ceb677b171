-- The OAuth worker's batched calls (plpython/hush_plpy/oauth_batch.py): what
-- oauth_worker_claim + oauth_claim_refresh do for each connection, and
-- oauth_finish_refresh for each refresh, for many at once, with the same checks
-- per connection. hush_oauth_worker's only (90_privileges.sql); the
-- per-connection functions stay for on-demand callers.

CREATE OR REPLACE FUNCTION hush.oauth_worker_lease(holder text, batch_size integer DEFAULT 100, window_seconds integer DEFAULT 900, lease_seconds integer DEFAULT 60, keepalive_seconds integer DEFAULT NULL)
RETURNS SETOF hush.oauth_worker_leased
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth_batch.worker_lease(holder, batch_size, window_seconds, lease_seconds, keepalive_seconds)}}$py$;
COMMENT ON FUNCTION hush.oauth_worker_lease(text, integer, integer, integer, integer) IS
    'oauth_worker_claim''s leases, each opened as oauth_claim_refresh opens one (refresh token, provider config and client secret; audited per connection), in one statement; commit before refreshing.';

CREATE OR REPLACE FUNCTION hush.oauth_worker_finish(tenants hush.oauth_batch_names, providers hush.oauth_batch_names, accounts hush.oauth_batch_names, lease_tokens hush.oauth_batch_names, generations hush.oauth_batch_generations, responses hush.oauth_batch_tokens)
RETURNS SETOF hush.oauth_worker_stored
LANGUAGE plpython3u VOLATILE SET search_path = pg_catalog, pg_temp
AS $py${{py: oauth_batch.worker_finish(tenants, providers, accounts, lease_tokens, generations, responses)}}$py$;
COMMENT ON FUNCTION hush.oauth_worker_finish(hush.oauth_batch_names, hush.oauth_batch_names, hush.oauth_batch_names, hush.oauth_batch_names, hush.oauth_batch_generations, hush.oauth_batch_tokens) IS
    'Store up to 1,000 refreshes'' responses, each as oauth_finish_refresh does (its lease token and generation, one audit row); a row per refresh in order, with SH075 and the like for those refused.';
