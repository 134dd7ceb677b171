"""What the OAuth API returns. Token values are never in a repr: a TokenSet
printed in a log or a traceback shows which tokens it holds, not them."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Mapping, NamedTuple


@dataclass(frozen=True)
class TokenSet:
    """Tokens of one account at one provider, as the provider issued them."""

    provider: str
    account: str
    access_token: str = field(repr=False)
    token_type: str | None
    expires_at: datetime | None
    scopes: tuple[str, ...]
    refresh_token: str | None = field(default=None, repr=False)
    id_token: str | None = field(default=None, repr=False)
    # The verified ID token's claims (sub, email, ...), when there was one.
    claims: dict[str, Any] | None = field(default=None, repr=False)
    # The tenant the tokens are stored in (a callback completes the tenant that started it).
    tenant: str | None = None
    # The token response's other members (Salesforce's instance_url, Slack's team): the clear
    # ones, and those that may carry a credential (Slack's authed_user.access_token), stored
    # sealed with the tokens. Which is which is the server's rule (docs/oauth.md, "What is kept of a token response").
    fields: Mapping[str, Any] = field(default_factory=dict, repr=False)
    secret_fields: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # Why the provider's ID token was kept out (not stored, id_token None): it could not be
    # verified, or (on a refresh) failed verification. None: none came, or it verified.
    id_token_rejected: str | None = None

    def __repr__(self) -> str:
        held = [k for k in ("access_token", "refresh_token", "id_token") if getattr(self, k)]
        return (f"TokenSet(provider={self.provider!r}, account={self.account!r}, token_type={self.token_type!r}, "
                f"expires_at={self.expires_at!r}, scopes={self.scopes!r}, tenant={self.tenant!r}, holds={held!r})")


class AuthorizationRequest(NamedTuple):
    """Where to send the user (`url`), the state that will come back on the callback, and the
    `binding` to keep in that user's browser session (an HttpOnly, Secure, SameSite=Lax
    cookie) and pass to complete_authorization: a callback that comes back to another browser
    is refused (login CSRF). The binding is a secret of that browser: it is not in `url`."""

    url: str
    state: str
    binding: str

    def __repr__(self) -> str:
        return f"AuthorizationRequest(url={self.url!r}, state={self.state!r}, binding=...)"


@dataclass(frozen=True)
class DeviceAuthorization:
    """RFC 8628: show the user `user_code` and `verification_uri` (or the _complete one)."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    # when it expires, on the OAuth object's clock (seconds since the epoch)
    expires_at: float
    scopes: tuple[str, ...] = ()
    account: str | None = None


@dataclass(frozen=True)
class Provider:
    """A registered provider: its configuration, never its client secret."""

    name: str
    config: dict[str, Any]
    has_client_secret: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Provider:
        return cls(row["name"], dict(row["config"]), bool(row["has_client_secret"]), row["created_at"],
                   row["updated_at"])


@dataclass(frozen=True)
class Connection:
    """One account's connection to a provider: status and expiry, never a token."""

    provider: str
    account: str
    grant_type: str
    status: str
    token_type: str | None
    scopes: tuple[str, ...]
    expires_at: datetime | None
    has_refresh_token: bool
    last_error: str | None
    last_error_at: datetime | None
    refreshed_at: datetime | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime
    failures: int = 0                      # failed refreshes in a row
    next_attempt_at: datetime | None = None  # the worker's backoff
    # The token response's clear members (Salesforce's instance_url, Slack's team); never a secret one.
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Connection:
        return cls(**{f.name: row[f.name] for f in fields(cls)} | {"scopes": tuple(row["scopes"] or ())})


@dataclass(frozen=True)
class OAuthEvent:
    """refresh_failed (first failure of a streak), needs_reauth, or recovered."""

    id: int
    at: datetime
    provider: str
    account: str
    event: str
    detail: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OAuthEvent:
        return cls(row["id"], row["at"], row["provider"], row["account"], row["event"], row["detail"])
