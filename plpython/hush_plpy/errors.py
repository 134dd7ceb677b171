"""hush's SQLSTATEs and the bridge from Python failures to PostgreSQL errors.

Class SH is implementation-defined (SQLSTATE classes I-Z are), and client
libraries leave it alone: psycopg files H... codes under foreign-data-wrapper
errors, so hush avoids them. Messages name the tenant and the secret, never a
value. The README's SQLSTATE table mirrors CODES.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any, Callable, TypeVar
    F = TypeVar("F", bound=Callable[..., Any])

INVALID_NAME = "SH001"
INVALID_TENANT = "SH002"
VALUE_TOO_LARGE = "SH003"
INVALID_ARGUMENT = "SH004"
SECRET_NOT_FOUND = "SH010"
VERSION_NOT_FOUND = "SH011"
SECRET_EXPIRED = "SH012"
VERSION_CONFLICT = "SH013"
SECRET_DELETED = "SH014"
VERSION_DESTROYED = "SH015"
TENANT_ACCESS_DENIED = "SH020"
READ_ONLY = "SH021"
RECORD_FAILED = "SH022"
KEY_UNAVAILABLE = "SH030"
DECRYPTION_FAILED = "SH031"
AUDIT_APPEND_ONLY = "SH040"
AUDIT_TAMPERED = "SH041"
ROOT_KEY_IN_USE = "SH032"
ROOT_KEY_UNKNOWN = "SH033"
DROP_REFUSED = "SH050"  # raised by the plpgsql event trigger hush._guard_drop
NO_SCHEDULER = "SH060"  # raised by the plpgsql function hush.schedule_maintenance
OAUTH_PROVIDER_NOT_FOUND = "SH070"
OAUTH_CONNECTION_NOT_FOUND = "SH071"
OAUTH_ACCOUNT_AMBIGUOUS = "SH072"
OAUTH_STATE_INVALID = "SH073"
OAUTH_REAUTH_REQUIRED = "SH074"
OAUTH_LEASE_LOST = "SH075"
OAUTH_TOKEN_EXPIRING = "SH076"
# PostgreSQL's own code for a refused privilege (a dispatcher called without a ticket).
INSUFFICIENT_PRIVILEGE = "42501"

CODES = {
    INVALID_NAME: "invalid secret name",
    INVALID_TENANT: "invalid tenant id",
    VALUE_TOO_LARGE: "value too large",
    INVALID_ARGUMENT: "invalid argument",
    SECRET_NOT_FOUND: "secret not found",
    VERSION_NOT_FOUND: "version not found",
    SECRET_EXPIRED: "secret expired",
    VERSION_CONFLICT: "version conflict (check-and-set)",
    SECRET_DELETED: "secret is soft-deleted",
    VERSION_DESTROYED: "version destroyed",
    TENANT_ACCESS_DENIED: "tenant access denied",
    READ_ONLY: "a call that writes, in a read-only transaction or on a standby",
    RECORD_FAILED: "the record of a read could not be written (no value returned)",
    KEY_UNAVAILABLE: "root key unavailable",
    DECRYPTION_FAILED: "decryption failed",
    AUDIT_APPEND_ONLY: "audit log is append-only",
    AUDIT_TAMPERED: "audit trail does not match its seals",
    ROOT_KEY_IN_USE: "root key still in use (active, or sealing data keys)",
    ROOT_KEY_UNKNOWN: "root key not registered",
    DROP_REFUSED: "DROP EXTENSION/SCHEMA hush without hush.allow_drop()",
    NO_SCHEDULER: "pg_cron is not installed in this database",
    OAUTH_PROVIDER_NOT_FOUND: "OAuth provider not registered",
    OAUTH_CONNECTION_NOT_FOUND: "no OAuth connection for this provider and account",
    OAUTH_ACCOUNT_AMBIGUOUS: "several OAuth accounts: name one",
    OAUTH_STATE_INVALID: "OAuth state unknown, already used or expired",
    OAUTH_REAUTH_REQUIRED: "OAuth connection needs re-authorization",
    OAUTH_LEASE_LOST: "OAuth refresh lease lost to another refresh",
    OAUTH_TOKEN_EXPIRING: "stored OAuth access token expired or about to (SQL callers do not refresh)",
}


class Fail(Exception):
    """A failure with a hush SQLSTATE; raised by pure code, turned into a
    PostgreSQL error at the API boundary by @api."""

    def __init__(self, code: str, message: str, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.detail = detail



_error_class: Any = None


def to_plpy_error(plpy: Any, f: Fail) -> Exception:
    """A plpy.Error carrying the SQLSTATE, detail and hint. PL/Python prefixes
    a message with the exception's module and class name unless the module is
    __main__: a subclass named `hush` makes the message read "hush: ..."."""
    global _error_class
    if _error_class is None:
        _error_class = type("hush", (plpy.Error,), {"__module__": "__main__"})
    e = _error_class(f.message)
    e.sqlstate = f.code
    if f.detail is not None:
        e.detail = f.detail
    if f.hint is not None:
        e.hint = f.hint
    return e


# A failed call rolls back with its transaction, audit row and all: PostgreSQL
# has no autonomous transactions, and a dblink back to the server would turn a
# flood of refused calls into a flood of connections. What stays is one server
# log line per failure, "hush-failure " + a JSON object (README, "Logs"). It
# names the caller, never an argument but a well-formed tenant id.
FAILURE_TAG = "hush-failure "
# The role a call acts as is the role the calling code runs as: CURRENT_USER
# in hush's API functions, which are SECURITY INVOKER (README, "Whose
# authority"). SESSION_USER says who logged in, which is not the same thing
# inside other roles' definer code or a maintenance command's index expressions.
CALLER_SQL = """
SELECT CURRENT_USER::pg_catalog.text AS role, SESSION_USER::pg_catalog.text AS session_role,
       pg_catalog.current_setting('application_name') AS application_name
"""
_caller_plan: Any = None


def failure_line(action: str, tenant: Any, sqlstate: str, caller: dict[str, Any]) -> str:
    from .validate import tenant_ok  # validate imports this module
    well_formed = tenant == "*" or tenant_ok(tenant)
    fields = {"action": action, "sqlstate": sqlstate, "tenant": tenant if well_formed else None,
              "role": caller.get("role"), "session_role": caller.get("session_role"),
              "application_name": caller.get("application_name")}
    import json  # here: only a failure pays for it
    return FAILURE_TAG + json.dumps(fields, sort_keys=True)


def log_failure(plpy: Any, action: str, tenant: Any, sqlstate: str) -> None:
    global _caller_plan
    try:
        if _caller_plan is None:
            _caller_plan = plpy.prepare(CALLER_SQL, [])
        caller = dict(plpy.execute(_caller_plan)[0])
    except Exception:  # the error being reported matters more than who made it
        caller = {}
    plpy.log(failure_line(action, tenant, sqlstate, caller))


def api(fn: F) -> F:
    """Entry point of an SQL function: Fail becomes a PostgreSQL error with its
    SQLSTATE, and every failure (Fail or a database error) leaves a log line."""
    params = fn.__code__.co_varnames[:fn.__code__.co_argcount]  # not inspect: ~5 ms to import
    tenant_at = params.index("tenant") - 1 if "tenant" in params else None

    def wrapper(plpy: Any, *args: Any) -> Any:
        try:
            return fn(plpy, *args)
        except Fail as f:
            log_failure(plpy, fn.__name__, None if tenant_at is None else args[tenant_at], f.code)
            raise to_plpy_error(plpy, f) from None
        except plpy.SPIError as e:
            log_failure(plpy, fn.__name__, None if tenant_at is None else args[tenant_at],
                        getattr(e, "sqlstate", None) or "XX000")
            raise

    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
