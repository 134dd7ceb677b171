"""What the loopback OAuth server (oauth_server.py) keeps and what a test steers: the
clients, codes, tokens and device credentials in authlib's model interfaces, and
`Control`, the switches and counters tests read and set (server.control)."""
from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Client:
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    auth_method: str
    grant_types: list[str]
    scope: str = "openid profile email offline_access api:read api:write"
    jwks: dict[str, Any] | None = None  # private_key_jwt: the public keys its assertions are checked with

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Token:
    client_id: str
    user: str | None
    scope: str
    access_token: str
    refresh_token: str | None
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str | None:
        return self.user

    def get_client(self) -> Any:
        return None


@dataclass
class DeviceCredential:
    client_id: str
    scope: str
    device_code: str
    user_code: str
    expires_at: float
    last_poll: float = 0.0

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code

    def get_nonce(self) -> None:
        return None

    def get_auth_time(self) -> None:
        return None

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


class Control:
    """What a test steers and reads. Counters are per grant type."""

    def __init__(self) -> None:
        self.token_requests: Counter[str] = Counter()
        self.fail_token_requests = 0          # answer the next N token requests with 503
        self.retry_after: str | None = None   # the Retry-After header of those 503s
        self.refresh_uses: Counter[str] = Counter()  # how often each refresh token was presented
        self.token_lifetime = 3600            # expires_in of the tokens issued
        self.rotate_refresh_tokens = True
        self.tamper_id_token = False
        self.wrong_nonce = False
        self.callback_issuer: str | None = None  # RFC 9207 iss in the callback (default: the issuer)
        self.user = "alice"                    # who "logs in" at /authorize
        self.deny = False                      # the user refuses at /authorize
        self.device_slow_down_within = 0.0     # polls closer than this answer slow_down
        self.token_delay = 0.0                 # seconds the token endpoint takes
        # Token requests, once counted, wait until this is set (30 s at most): a test acts while
        # they are in flight, by events rather than by time.
        self.token_gate: threading.Event | None = None
        self.revoked: list[str] = []           # token_type_hint of every revocation that hit a token
        self.userinfo_requests = 0
        self.echo_in_errors = False            # a careless provider: error descriptions repeat what was sent
        self.client_assertions: list[dict[str, Any]] = []  # {header, claims} of each client assertion accepted
        # Token responses as real providers shape them (tests/test_oauth_responses.py): "slack" (comma
        # scopes, ok, team, authed_user with a user token, incoming_webhook) or "salesforce"
        # (instance_url, id, issued_at, signature, no expires_in); None: RFC 6749's.
        self.response_style: str | None = None
        self.id_token_grants: tuple[str, ...] = ()  # grants answered with an ID token too (openid in scope)
        self.token_scopes: list[str | None] = []   # the scope parameter of each token request
        self.last_token_response: dict[str, Any] | None = None  # as shaped by the switches above
        # Egress and redaction (tests/test_oauth_egress.py): answer token requests with a 307 to
        # this URL; or with this error, whose description repeats what the request carried in
        # the forms named in echo_forms ("form", "json", "b64", "b64body", "basic": OAuthServer.echo).
        self.redirect_token_to: str | None = None
        self.echo_request: str | None = None
        self.echo_forms: tuple[str, ...] = ("form", "json", "b64", "b64body", "basic")

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]
