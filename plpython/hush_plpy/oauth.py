"""OAuth2/OIDC storage: providers, pending authorizations, connections, and the
refresh lease. The SQL functions (hush.oauth_*) call the
names below; each concern has a module of its own:

  oauth_providers    providers: their config and client secrets
  oauth_authorize    an authorization's begin and callback: state, PKCE, browser binding
  oauth_tokens       a connection's tokens: stored, read (access token, every token)
  oauth_refresh      single-flight refresh: claim, finish, release of the lease
  oauth_worker       what the worker leases, and when (oauth_batch: by the batch)
  oauth_connections  listings of connections and events; disconnects
  oauth_base         what they share: limits, sealing, the rows, notifications
  oauth_lease        the lease as a credential; a refresh asked of the worker
  oauth_grants       which providers a role may use or manage
  oauth_response     what is kept of a token response, and how

The database never speaks HTTP: the Python client does, with no transaction
open, and comes here before and after. What is secret (client secrets, PKCE
verifiers and nonces, tokens) is sealed like a secret value (crypto.seal_part)
and opened only in these functions; every opening and every store writes an
audit row (secret_name = the provider, detail.account = the account), never a
value. Single-flight refresh is a lease: claim() takes it in one committed
UPDATE, the client calls the token endpoint, finish() stores the result over
the generation it claimed and frees the lease, release() frees it on failure;
the lease is a credential, a random token only its claimer has (oauth_lease.py).

Every function's work is a privileged step (privileged.py) run as hush_owner
for the caller its ticket names, whose grant access.enter checks (for the
provider's name: oauth_grants.py); the worker's cross-tenant scan runs as
hush_refresher, confined to the connections whose provider that caller may
use (oauth_grants.SERVES).
"""
from __future__ import annotations

from .oauth_authorize import begin, consume
from .oauth_connections import connections, delete_connection, events
from .oauth_providers import provider, providers, remove_provider, save_provider
from .oauth_refresh import claim, finish, release
from .oauth_tokens import access_token_sql, connection_tokens, store_tokens, token
from .oauth_worker import worker_claim, worker_next_due

__all__ = ["access_token_sql", "begin", "claim", "connection_tokens", "connections", "consume", "delete_connection",
           "events", "finish", "provider", "providers", "release", "remove_provider", "save_provider", "store_tokens",
           "token", "worker_claim", "worker_next_due"]
