"""One exception class per SQLSTATE hush documents, under one base, HushError.

The server's messages name the tenant and the secret, never a value, so they
are passed on as they are (a tenant the caller may not act on, or a name that
was not found or refused, only by `masked`: it may be a value passed in its
place). Only hush's own codes (class SH, and 42501 for a
role without the hush role a function needs) are translated: everything else,
serialization failures (40001) above all, reaches the caller untouched so its
retry logic (DBOS runs SERIALIZABLE) sees what it expects.
"""
from __future__ import annotations

from typing import ClassVar


def masked(x: str) -> str:
    """A caller-given name that was not found or refused, for a message: its first 4 characters
    (never all of it) and its length, e.g. 'sk_l...' (32 chars); as the server shows one."""
    return "%r (%d char%s)" % (x[:min(4, len(x) - 1)] + "...", len(x), "" if len(x) == 1 else "s")


class HushError(Exception):
    """Base of every error hush raises; `sqlstate` is the server's code."""

    sqlstate: ClassVar[str | None] = None

    def __init__(self, message: str, *, sqlstate: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if sqlstate is not None:
            self.code: str | None = sqlstate
        else:
            self.code = type(self).sqlstate

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class InvalidInput(HushError):
    """A name, tenant, value or argument the server refused; nothing was written."""


class InvalidName(InvalidInput):
    sqlstate = "SH001"


class InvalidTenant(InvalidInput):
    sqlstate = "SH002"


class ValueTooLarge(InvalidInput):
    sqlstate = "SH003"


class InvalidArgument(InvalidInput):
    sqlstate = "SH004"


class SecretNotFound(HushError):
    sqlstate = "SH010"


class VersionNotFound(SecretNotFound):
    sqlstate = "SH011"


class SecretExpired(HushError):
    sqlstate = "SH012"


class VersionConflict(HushError):
    """Check-and-set failed: the secret is not at the expected version."""

    sqlstate = "SH013"


class SecretDeleted(HushError):
    """The secret is soft-deleted: restore or destroy it first."""

    sqlstate = "SH014"


class VersionDestroyed(HushError):
    sqlstate = "SH015"


class TenantAccessDenied(HushError):
    """The calling role has no grant for this tenant."""

    sqlstate = "SH020"


class ReadOnlyWrite(HushError):
    """A call that writes, in a read-only transaction or on a standby (reads work there)."""

    sqlstate = "SH021"


AuditedReadOnly = ReadOnlyWrite  # its name before 0.5.0, when audited reads also failed there


class ReadNotRecorded(HushError):
    """The read's record could not be committed on the primary, so no value was returned.

    The primary (or the recorder hush.recorder_conninfo names) was unreachable or refused."""

    sqlstate = "SH022"


class AuditRateLimited(HushError):
    """The tenant wrote as many audit rows in the last second as its limit allows
    (hush.configure_tenant(audit_rows_per_second => n)): nothing was done; retry shortly."""

    sqlstate = "SH023"


class CapabilityNotCallable(InvalidInput):
    """hush.grant refused a capability whose functions the role cannot call (`read` for a role
    without hush_reader, for one): grant it the hush role first. Nothing was granted."""

    sqlstate = "SH024"


class GrantNotFound(HushError):
    """hush.revoke: the role holds no grant on exactly that tenant and prefix (a broader or
    narrower one is another grant); hush.effective_access shows which it holds."""

    sqlstate = "SH025"


class KeyUnavailable(HushError):
    sqlstate = "SH030"


class DecryptionFailed(HushError):
    sqlstate = "SH031"


class RootKeyInUse(HushError):
    """The root key is active, or still seals data keys: it cannot be retired yet."""

    sqlstate = "SH032"


class RootKeyUnknown(HushError):
    """No registered root key has this id (or it is retired)."""

    sqlstate = "SH033"


class AuditAppendOnly(HushError):
    sqlstate = "SH040"


class AuditTampered(HushError):
    """The audit trail does not match its seals: retention refused to run (see hush.verify_audit())."""

    sqlstate = "SH041"


class NoScheduler(HushError):
    """pg_cron is not installed in this database; the hint says what to schedule instead."""

    sqlstate = "SH060"


class MaintenanceBusy(HushError):
    """A maintenance call gave up waiting for a lock (its lock_timeout; 5 s when none); nothing changed.

    Another maintenance call was running, or a session kept a table it needs: retry later."""

    sqlstate = "SH061"


class DropRefused(HushError):
    """DROP EXTENSION hush or DROP SCHEMA hush without hush.allow_drop() in the same transaction."""

    sqlstate = "SH050"


class OAuthProviderNotFound(HushError):
    """No OAuth provider of this name is registered in the tenant."""

    sqlstate = "SH070"


class OAuthConnectionNotFound(HushError):
    """No account of the tenant is connected to the provider (or not the one named)."""

    sqlstate = "SH071"


class OAuthAccountAmbiguous(HushError):
    """The tenant has several accounts at the provider: name one (the message lists them)."""

    sqlstate = "SH072"


class OAuthStateInvalid(HushError):
    """A callback's state is unknown, already used, or expired: start the authorization again."""

    sqlstate = "SH073"


class ReauthorizationRequired(HushError):
    """The provider refused the refresh token (invalid_grant): the account must authorize again."""

    sqlstate = "SH074"


class OAuthLeaseLost(HushError):
    """Another call stored new tokens while this one was refreshing; read the token again."""

    sqlstate = "SH075"


class OAuthTokenExpiring(HushError):
    """hush.oauth_access_token from SQL: the stored token is expired or about to be (the worker refreshes)."""

    sqlstate = "SH076"


class OAuthReaderRefreshDisabled(HushError):
    """The tenant keeps readers from writing token material (configure_tenant(reader_refresh => false)):
    a role that is only a reader may not claim, finish or release a refresh lease. hush.OAuth then
    asks the worker (hush.oauth_request_refresh) and waits for it instead."""

    sqlstate = "SH077"


class OAuthRefreshUnanswered(HushError):
    """hush.OAuth asked for a refresh it may not make itself (SH077) and nobody (the worker, or a
    writer's own refresh) stored new tokens within its `refresh_wait`: is hush oauth-worker running
    and serving this tenant? Raised by the client; the stored tokens are as they were."""

    sqlstate = "SH078"


class OAuthGrantNotEnabled(HushError):
    """The provider's config does not enable this grant type (register_provider(grant_types=...));
    refused before any request to the provider, and by the server for tokens stored through it."""

    sqlstate = "SH081"


class AuthorizationBindingMismatch(HushError):
    """An OAuth callback that did not bring back the binding of the browser that started the
    authorization (another browser's, or none): refused, and the authorization stays pending
    for its own browser. Login CSRF looks like this: a victim's browser sent to complete an
    attacker's authorization."""

    sqlstate = "SH080"


class OAuthError(HushError):
    """The provider answered with an OAuth error (`error`, `description`), or broke the protocol."""

    def __init__(self, message: str, *, error: str | None = None, description: str | None = None,
                 status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.error = error
        self.description = description
        self.status = status


class AccessDenied(OAuthError):
    """The user (or the provider) refused the authorization (error=access_denied)."""


class AuthorizationPending(OAuthError):
    """Device flow: the user has not finished yet; poll again after the interval."""


class SlowDown(AuthorizationPending):
    """Device flow: polling too fast; the interval went up by 5 seconds."""


class ExpiredToken(OAuthError):
    """Device flow: the device code expired before the user finished; start again."""


class InvalidCallback(OAuthError):
    """A callback that must not be trusted: no code, or an `iss` that is not the provider's (RFC 9207)."""


class InvalidIdToken(OAuthError):
    """The ID token failed verification: signature (JWKS), iss, aud, exp or nonce."""


class ProviderUnavailable(OAuthError):
    """The provider kept failing (5xx, timeouts) through every retry; stored tokens were kept."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(message, error="temporarily_unavailable", status=status)
        self.retry_after = retry_after  # seconds, from the provider's Retry-After header


class EgressRefused(ProviderUnavailable):
    """hush refused to send a request to a provider (SH079; raised by the client): the URL is
    plain http, or its host is (or resolves to) a loopback, private, link-local or CGNAT
    address, and no admin allowed it (hush.oauth_allow_egress); or the provider answered with
    a redirect, which hush never follows. `host` and `reason` say which; never the URL.

    Refused at connect time (a name resolving to such an address), the message reads like any
    unreachable provider's, as do last_error and the worker's log: what a name resolves to is
    not told to whoever reads those; str() and `reason` tell the caller."""

    sqlstate = "SH079"

    def __init__(self, message: str, *, host: str = "", reason: str = "", status: int | None = None,
                 sqlstate: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, status=status)
        self.error = "egress_refused"
        self.host = host
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        detail = f"egress to {self.host} refused: {self.reason}"
        if not self.host or detail in self.message:
            return super().__str__()
        return f"{super().__str__()} ({detail})"


class DatabaseUnavailable(HushError):
    """No connection to the server: hush.connect() could not open one within its
    `connect_timeout`, or a pooled call waited `timeout` for one. The message says why
    (refused, unknown host, authentication...) when libpq said; nothing was sent."""

    sqlstate = "08001"


class TransactionAborted(HushError):
    """A statement in a client.transaction() block failed and the error was caught: the
    server aborted the transaction, so nothing in the block was committed."""

    sqlstate = "25P02"


class PermissionDenied(HushError):
    """The role lacks the hush role (hush_reader, hush_writer, ...) the function needs."""

    sqlstate = "42501"


_BY_CODE: dict[str, type[HushError]] = {
    c.sqlstate: c for c in (
        InvalidName, InvalidTenant, ValueTooLarge, InvalidArgument, SecretNotFound, VersionNotFound,
        SecretExpired, VersionConflict, SecretDeleted, VersionDestroyed, TenantAccessDenied,
        ReadOnlyWrite, ReadNotRecorded, AuditRateLimited, CapabilityNotCallable, GrantNotFound, KeyUnavailable, DecryptionFailed, RootKeyInUse, RootKeyUnknown, AuditAppendOnly, AuditTampered,
        DropRefused, NoScheduler, MaintenanceBusy, PermissionDenied, OAuthProviderNotFound, OAuthConnectionNotFound,
        OAuthAccountAmbiguous, OAuthStateInvalid, ReauthorizationRequired, OAuthLeaseLost, OAuthTokenExpiring,
        AuthorizationBindingMismatch,
        OAuthGrantNotEnabled,
        OAuthReaderRefreshDisabled, OAuthRefreshUnanswered, EgressRefused,
    ) if c.sqlstate
}


def from_sqlstate(code: str, message: str, hint: str | None = None) -> HushError:
    """The exception for a SQLSTATE; unknown SH codes (a newer server) give HushError."""
    return _BY_CODE.get(code, HushError)(message, sqlstate=code, hint=hint)


def translate(exc: BaseException) -> HushError | None:
    """The HushError for a driver exception, or None when it is not hush's to translate.

    Understands psycopg (e.sqlstate, e.diag), psycopg2 (e.pgcode), asyncpg
    (e.sqlstate) and SQLAlchemy's DBAPIError wrapper (e.orig)."""
    orig = getattr(exc, "orig", None)
    if orig is not None and type(exc).__module__.startswith("sqlalchemy"):
        exc = orig
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if not isinstance(code, str) or not (code.startswith("SH") or code == PermissionDenied.sqlstate):
        return None
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None) or str(exc).split("\n", 1)[0]
    hint = getattr(diag, "message_hint", None) or getattr(exc, "hint", None)
    return from_sqlstate(code, message.removeprefix("hush: "), hint)
