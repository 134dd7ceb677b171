"""hush.OAuth: OAuth2/OIDC flows whose state (client secrets, pending
authorizations, tokens) lives in hush, sealed, per tenant.

Two rules shape this module. HTTP never runs inside a database transaction:
every flow reads what it needs, commits, calls the provider, then stores in a
second statement. And token state is committed on hush's own connection (the
client's pool, or a connection of its own next to yours), never inside your
transaction: a rollback after a refresh would lose a rotated refresh token.

Refresh is single-flight across threads and processes through the lease in
hush.oauth_connections (see plpython/hush_plpy/oauth.py): one caller claims it
in a committed UPDATE and calls the token endpoint; the others poll the claim
until new tokens are stored or the lease expires. This works behind
transaction-mode poolers: no session state, no lock held across a call.

OAuth is put together from one module per concern: _oauth_base.py (state,
connections, HTTP under the egress policy), _oauth_providers.py over it,
_oauth_authorize.py (the authorization code flow) and _oauth_tokens.py (tokens,
the refresh lease) over that, _oauth_grants.py (the other grants) over the tokens.
"""
from __future__ import annotations

from ._oauth_authorize import Authorization
from ._oauth_base import AUTH_METHODS as AUTH_METHODS, _conninfo_of as _conninfo_of, _OwnConnection
from ._oauth_grants import Grants
from ._oauth_providers import Providers
from ._oauth_tokens import Tokens


class OAuth(Authorization, Grants):
    """OAuth2/OIDC for one tenant: providers, authorizations, tokens.

    `conn` is where reads of a still-valid token run: the client's pool (its read
    pool, given hush.connect(read_dsn=...)), or a connection of yours (a psycopg
    Connection, whose open transaction the read joins, audit row included). Writes
    of token state commit on `writer`: by default the pool (the primary's), or a new
    connection with your connection's parameters.
    `clock` and `sleep` are injectable (tests, simulations); `skew` is how long
    before expiry a token counts as expired; `lease_seconds` bounds how long
    other callers wait for a refresh that died with its process. A reader of a
    tenant that keeps readers from refreshing (configure_tenant(reader_refresh =>
    false)) asks the worker instead and polls for up to `refresh_wait` seconds
    (OAuthRefreshUnanswered, SH078, after that).
    """

    def __repr__(self) -> str:
        return f"OAuth(tenant={self.tenant!r})"

    def close(self) -> None:
        """Close hush's own connection, if it opened one."""
        if isinstance(self._write, _OwnConnection):
            self._write.close()

    # The public methods, named here in the order the reference lists them: hush.aio.OAuth,
    # tests/test_client_surface.py and tools/pydoc_md.py read a class's own members.
    register_provider = Providers.register_provider
    register_providers = Providers.register_providers
    refresh_discovery = Providers.refresh_discovery
    providers = Providers.providers
    provider = Providers.provider
    remove_provider = Providers.remove_provider
    start_authorization = Authorization.start_authorization
    complete_authorization = Authorization.complete_authorization
    client_credentials = Grants.client_credentials
    start_device_authorization = Grants.start_device_authorization
    poll_device_token = Grants.poll_device_token
    wait_for_device_token = Grants.wait_for_device_token
    password_grant = Grants.password_grant
    grant = Grants.grant
    access_token = Tokens.access_token
    token = Tokens.token
    refresh = Tokens.refresh
    refresh_leased = Tokens.refresh_leased
    release_lease = Tokens.release_lease
    events = Tokens.events
    revoke = Tokens.revoke
    userinfo = Tokens.userinfo
    connections = Tokens.connections
