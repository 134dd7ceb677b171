"""Exit codes, documented in docs/cli.md and in `hush --help`, and the error that carries one."""
from __future__ import annotations

import click

from .. import _errors as E

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2          # click's own code for bad usage
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
EXIT_CONFLICT = 5
EXIT_INVALID = 6
EXIT_GONE = 7           # expired or destroyed
EXIT_KEY = 8            # root key unavailable, decryption failed
EXIT_CONNECT = 9        # cannot reach the database (or the primary, to record a read)
EXIT_TAMPERED = 10      # the audit trail does not match its seals
EXIT_OAUTH = 11         # the OAuth provider refused or failed; or the account must authorize again
EXIT_DUE = 12           # `hush due`: something comes due within the window (nothing is past due)
EXIT_OVERDUE = 13       # `hush due`: a rotation is overdue or a secret has expired

EXIT_CODES: list[tuple[type[E.HushError], int]] = [
    (E.SecretNotFound, EXIT_NOT_FOUND),          # VersionNotFound included
    (E.TenantAccessDenied, EXIT_DENIED), (E.PermissionDenied, EXIT_DENIED),
    (E.VersionConflict, EXIT_CONFLICT), (E.SecretDeleted, EXIT_CONFLICT),
    (E.InvalidInput, EXIT_INVALID),
    (E.SecretExpired, EXIT_GONE), (E.VersionDestroyed, EXIT_GONE),
    (E.KeyUnavailable, EXIT_KEY), (E.DecryptionFailed, EXIT_KEY),
    (E.RootKeyUnknown, EXIT_NOT_FOUND), (E.RootKeyInUse, EXIT_CONFLICT), (E.GrantNotFound, EXIT_NOT_FOUND),
    (E.AuditTampered, EXIT_TAMPERED), (E.ReadNotRecorded, EXIT_CONNECT),
    (E.OAuthProviderNotFound, EXIT_NOT_FOUND), (E.OAuthConnectionNotFound, EXIT_NOT_FOUND),
    (E.OAuthAccountAmbiguous, EXIT_INVALID), (E.OAuthStateInvalid, EXIT_GONE), (E.OAuthLeaseLost, EXIT_CONFLICT),
    (E.AuthorizationBindingMismatch, EXIT_DENIED),
    (E.ReauthorizationRequired, EXIT_OAUTH), (E.OAuthError, EXIT_OAUTH),
]

EXIT_HELP = """Exit codes: 0 ok, 1 other error, 2 usage, 3 not found (also `run` with no
secret to pass), 4 access denied, 5 conflict (check-and-set, deleted), 6 invalid
input, 7 expired or destroyed, 8 root key or decryption, 9 cannot connect
(or a read's record could not be written on the primary, so no value),
10 audit trail does not match its seals, 11 the OAuth provider refused or
failed (or the account must authorize again); `hush due`: 12 something
comes due within the window, 13 something is overdue or expired."""


class Fail(click.ClickException):
    """An error for the user, with the exit code scripts branch on."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        setattr(self, "exit_code", code)  # a ClassVar in click's stubs; click reads it per instance


def exit_code(err: E.HushError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(err, cls):
            return code
    return EXIT_ERROR
