"""hush.OAuth's tokens: a valid one on demand, refreshed single-flight under the lease
in hush.oauth_connections (see _oauth.py), or by a worker that leased the connection;
events, revocation, userinfo and the list of connections."""
from __future__ import annotations

import os
import secrets
import socket
import threading
from datetime import datetime
from typing import Any, Callable

import psycopg

from . import _oauth_calls as q
from ._errors import (HushError, OAuthError, OAuthLeaseLost, OAuthReaderRefreshDisabled, OAuthRefreshUnanswered,
                      ReauthorizationRequired)
from ._log import logger
from ._oauth_db import code_of, transient
from ._oauth_extra import missing
from ._oauth_models import Connection, OAuthEvent, TokenSet
from ._oauth_providers import Providers

try:
    from ._oauth_response import checked, describe, join_scopes, refresh_grant, require_grant, screen_id_token
except ModuleNotFoundError as e:
    raise missing(e) from None

# Seconds before each further attempt at storing a refresh whose store failed for a passing
# reason (a lock timeout, a lost connection): the provider may already have rotated the
# refresh token presented, so its answer is not dropped at the first failure.
STORE_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)


class Tokens(Providers):
    """Tokens read, refreshed, revoked; connections listed."""

    def _valid(self, provider: str, account: str | None, force: bool = False, own: bool = False) -> TokenSet:
        row = (self._w if own else self._r)(q.token(self.tenant, provider, account))
        if not force and (row["valid_for"] is None or row["valid_for"] > self.skew):
            return self._token_set(provider, row["account"], row, row["expires_at"])
        return self._refresh(provider, row["account"], row["generation"])

    def access_token(self, provider: str, account: str | None = None) -> str:
        """A valid access token, refreshed first when it expires within `skew` seconds. Any
        number of threads and processes asking at once cause one refresh request."""
        return self._valid(provider, account).access_token

    def token(self, provider: str, account: str | None = None) -> TokenSet:
        """Like access_token(), with the expiry, scopes and account."""
        return self._valid(provider, account)

    def refresh(self, provider: str, account: str | None = None) -> TokenSet:
        """Refresh now, whatever the expiry (single-flight all the same)."""
        return self._valid(provider, account, force=True)

    def _refresh(self, provider: str, account: str, generation: int) -> TokenSet:
        # A label, which audit rows show; the lease itself is the token the claim returns.
        holder = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{secrets.token_hex(4)}"
        while True:
            try:
                lease = self._w(q.claim(self.tenant, provider, account, holder, self.lease_seconds, generation))
            except OAuthReaderRefreshDisabled:
                return self._requested(provider, account, generation)
            outcome = lease["outcome"]
            if outcome == "claimed":
                return self._refresh_claimed(provider, account, lease["lease_token"], lease)
            if outcome == "fresh":  # another caller refreshed meanwhile: its tokens, read committed
                row = self._w(q.token(self.tenant, provider, account))
                return self._token_set(provider, account, row, row["expires_at"])
            if outcome == "needs_reauth":
                raise ReauthorizationRequired(f"account {account!r} of tenant {self.tenant} at OAuth provider "
                                              f"{provider!r} must authorize again", sqlstate="SH074")
            self.sleep(self.poll_interval)  # leased: someone is refreshing right now

    def _requested(self, provider: str, account: str, generation: int) -> TokenSet:
        """For a reader that may not refresh (SH077): ask the worker (hush.oauth_request_refresh,
        an empty NOTIFY wakes it), then poll the stored token (no LISTEN: it must work through
        a transaction pooler) until its generation moves, for up to `refresh_wait` seconds. A
        request within a minute of the last refresh is not recorded: that token is the answer."""
        asked = self._w(q.request_refresh(self.tenant, provider, account))
        current = asked["generation"] if asked["requested"] else generation + 1  # not asked: read it now
        deadline = self.clock() + self.refresh_wait
        pause = self.poll_interval
        row: dict[str, Any] | None = None
        while current == generation:
            if self.clock() >= deadline:
                raise OAuthRefreshUnanswered(
                    f"nobody answered the refresh request for account {account!r} of tenant {self.tenant} at OAuth "
                    f"provider {provider!r} within {self.refresh_wait:g} s: is hush oauth-worker running and "
                    "serving this tenant?", sqlstate="SH078",
                    hint="This tenant keeps readers from refreshing tokens (reader_refresh => false): the worker "
                         "or a writer must.")
            self.sleep(max(0.0, min(pause, deadline - self.clock())))
            pause = min(pause * 2, 1.0)  # each poll is an audited token read: they thin out
            row = self._w(q.token(self.tenant, provider, account))  # SH074 once the worker finds it dead
            current = row["generation"]
        if row is None:  # it had moved on before the request
            row = self._w(q.token(self.tenant, provider, account))
        return self._token_set(provider, account, row, row["expires_at"])

    def _refresh_claimed(self, provider: str, account: str, lease_token: str, lease: dict[str, Any],
                         answered: Callable[[], None] | None = None) -> TokenSet:
        # `answered`: called once the provider has answered (or failed), before the result is
        # stored; the worker frees the provider host's slot there, not after the database work.
        response, claims, rejected = self._refresh_request(provider, account, lease_token, lease, answered)
        finish = q.finish(self.tenant, provider, account, lease_token, lease["generation"], response)
        for attempt in range(len(STORE_RETRY_DELAYS) + 1):
            try:
                stored = self._w(finish)
                break
            except OAuthLeaseLost:  # our lease expired and another caller stored first: theirs stands
                row = self._w(q.token(self.tenant, provider, account))
                return self._token_set(provider, account, row, row["expires_at"])
            except (HushError, psycopg.Error) as e:
                if transient(e) and attempt < len(STORE_RETRY_DELAYS):
                    self.sleep(STORE_RETRY_DELAYS[attempt])
                    continue
                # Not left silently: the failure is recorded on the connection (never a token).
                code = code_of(e)
                logger.error("tenant=%s provider=%s account=%s: the provider answered the refresh, and its tokens "
                             "could not be stored [%s]; the refresh token it replaced may be spent", self.tenant,
                             provider, account, code)
                self._release_failed(provider, account, lease_token, lease["generation"],
                                     f"the provider answered, and its tokens could not be stored [{code}]", False,
                                     None)
                raise
        return self._token_set(provider, account, response, stored["expires_at"], claims, stored=stored,
                               rejected=rejected)

    def _release_failed(self, provider: str, account: str, lease_token: str, generation: int, error: str,
                        reauth: bool, retry_after: int | None) -> None:
        """Give the lease back with the failure recorded, if the database takes it: best effort
        (a row locked elsewhere, the database gone), logged, and the lease then runs out on its
        own; the failure being reported is what the caller sees."""
        try:
            self._w(q.release(self.tenant, provider, account, lease_token, generation, error, reauth, retry_after))
        except OAuthLeaseLost:  # superseded once it ran out: the failure is the new holder's to find
            pass
        except (HushError, psycopg.Error) as e:
            logger.warning("tenant=%s provider=%s account=%s: the failed refresh could not be recorded [%s]; its "
                           "lease runs out", self.tenant, provider, account, code_of(e))

    def _refresh_request(self, provider: str, account: str, lease_token: str, lease: dict[str, Any],
                         answered: Callable[[], None] | None = None
                         ) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
        """The refresh request of a claimed lease: the response to store under it (with the
        ID token's claims, or why it was kept out). A failure gives the lease back, recorded
        (invalid_grant: ReauthorizationRequired), and raises. The worker stores the response
        with others (_oauth_batch.py), hence the split."""
        config, generation = lease["config"], lease["generation"]
        http = self._http(config, lease["client_secret"])
        try:
            require_grant(config, provider, refresh_grant(lease["grant_type"]))
            if lease["grant_type"] == "client_credentials":
                scopes = lease["scopes"] or []
                response = http.token("client_credentials", {"scope": join_scopes(config, scopes)} if scopes else {})
            elif lease["refresh_token"]:
                response = http.token("refresh_token", {"refresh_token": lease["refresh_token"]})
            else:
                raise ReauthorizationRequired(f"account {account!r} at OAuth provider {provider!r} has no refresh "
                                              "token; it must authorize again", sqlstate="SH074")
            response = checked(response)  # expires_in out of bounds: a failed refresh, recorded
        except BaseException as e:
            if answered is not None:
                answered()
            reauth = isinstance(e, ReauthorizationRequired) or (
                isinstance(e, OAuthError) and e.error == "invalid_grant")
            self._release_failed(provider, account, lease_token, generation, describe(e), reauth,
                                 getattr(e, "retry_after", None))
            if reauth and not isinstance(e, ReauthorizationRequired):
                raise ReauthorizationRequired(f"OAuth provider {provider!r} refused the refresh token of account "
                                              f"{account!r} (invalid_grant): it must authorize again",
                                              sqlstate="SH074") from None
            raise
        if answered is not None:
            answered()
        # The provider has issued these tokens (and may have spent the refresh token presented):
        # an ID token that does not verify is kept out, never the tokens with it.
        screened, claims, rejected = screen_id_token(
            response, config, None, http.jwks, self.clock, refresh=True,
            where=f"tenant={self.tenant} provider={provider} account={account} refresh")
        return dict(screened), claims, rejected

    def refresh_leased(self, provider: str, account: str, lease_token: str, generation: int) -> TokenSet | None:
        """For a worker that leased this connection (hush.oauth_worker_claim, whose row carries
        `lease_token`): refresh it now, under that lease (renewed for the request). None when it
        moved on meanwhile (an on-demand caller refreshed it, or claimed it once it ran out)."""
        try:
            lease = self._w(q.claim(self.tenant, provider, account, lease_token, self.lease_seconds, generation))
        except OAuthLeaseLost:
            return None
        if lease["outcome"] != "claimed":
            return None
        return self._refresh_claimed(provider, account, lease_token, lease)

    def release_lease(self, provider: str, account: str, lease_token: str, generation: int) -> bool:
        """Give back a lease without refreshing (a worker stopping): nothing is recorded. False
        when it is no longer this token's (it ran out and another call claimed it, or stored tokens)."""
        try:
            return bool(self._w(q.release(self.tenant, provider, account, lease_token, generation, None, False)))
        except OAuthLeaseLost:
            return False

    def events(self, since: datetime | None = None, max_rows: int = 1000) -> list[OAuthEvent]:
        """The tenant's OAuth events (refresh_failed, needs_reauth, recovered), oldest first."""
        result: list[OAuthEvent] = self._r(q.events(self.tenant, since, max_rows))
        return result

    def revoke(self, provider: str, account: str | None = None) -> bool:
        """Revoke at the provider (RFC 7009: the refresh token, then the access token), then erase
        the tokens here. Returns False when the provider has no revocation endpoint (erased all
        the same)."""
        t = self._w(q.connection_tokens(self.tenant, provider, account))
        revocable = bool(t["config"].get("revocation_endpoint"))
        if revocable:
            http = self._http(t["config"], t["client_secret"])
            if t["refresh_token"]:
                http.revoke(t["refresh_token"], "refresh_token")
            if t["access_token"]:
                http.revoke(t["access_token"], "access_token")
        self._w(q.disconnect(self.tenant, provider, t["account"]))
        return revocable

    def userinfo(self, provider: str, account: str | None = None) -> dict[str, Any]:
        """The OIDC userinfo of an account (with a valid access token, refreshed if need be)."""
        config = self.provider(provider).config
        return self._http(config, None).userinfo(self.access_token(provider, account))

    def connections(self, provider: str | None = None) -> list[Connection]:
        """Connections with status, expiry, scopes and last error; never a token."""
        result: list[Connection] = self._r(q.connections(self.tenant, provider))
        return result
