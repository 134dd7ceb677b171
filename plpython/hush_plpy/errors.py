"""hush's SQLSTATEs and the bridge from Python failures to PostgreSQL errors.

Class SH is implementation-defined (SQLSTATE classes I-Z are), and client
libraries leave it alone: psycopg files H... codes under foreign-data-wrapper
errors, so hush avoids them. Messages name the tenant and the secret, never a
value; a tenant the caller may not act on, and a name that was not found or is
invalid, only by its first characters and length (show): it may be a
value passed in the wrong place. docs/errors.md's SQLSTATE table is generated
from CODES (tools/errors_md.py).
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
AUDIT_RATE_LIMITED = "SH023"
# hush.grant of a capability whose functions the role cannot call (it lacks the hush role).
CAPABILITY_NOT_CALLABLE = "SH024"
# hush.revoke of a (role, tenant, prefix) grant that does not exist.
GRANT_NOT_FOUND = "SH025"
KEY_UNAVAILABLE = "SH030"
DECRYPTION_FAILED = "SH031"
AUDIT_APPEND_ONLY = "SH040"
AUDIT_TAMPERED = "SH041"
ROOT_KEY_IN_USE = "SH032"
ROOT_KEY_UNKNOWN = "SH033"
DROP_REFUSED = "SH050"  # raised by the DROP guard (sql/idempotent/60_guard.sql), in plpgsql
NO_SCHEDULER = "SH060"  # raised by the plpgsql function hush.schedule_maintenance
MAINTENANCE_BUSY = "SH061"
OAUTH_PROVIDER_NOT_FOUND = "SH070"
OAUTH_CONNECTION_NOT_FOUND = "SH071"
OAUTH_ACCOUNT_AMBIGUOUS = "SH072"
OAUTH_STATE_INVALID = "SH073"
OAUTH_REAUTH_REQUIRED = "SH074"
OAUTH_LEASE_LOST = "SH075"
OAUTH_TOKEN_EXPIRING = "SH076"
OAUTH_READER_REFRESH_DISABLED = "SH077"
# Raised by the Python client, which waits for the refresh it asked for; listed so codes stay unique.
OAUTH_REFRESH_UNANSWERED = "SH078"
# Raised by the Python client, which enforces the egress policy (egress.py) on every request.
OAUTH_EGRESS_REFUSED = "SH079"
OAUTH_BINDING_MISMATCH = "SH080"
OAUTH_GRANT_NOT_ENABLED = "SH081"
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
    AUDIT_RATE_LIMITED: "the tenant wrote as many audit rows in the last second as its limit allows",
    CAPABILITY_NOT_CALLABLE: "the role cannot call the functions of a capability granted to it (it lacks the hush role)",
    GRANT_NOT_FOUND: "no grant of this role, tenant and prefix",
    KEY_UNAVAILABLE: "root key unavailable",
    DECRYPTION_FAILED: "decryption failed",
    AUDIT_APPEND_ONLY: "audit log is append-only",
    AUDIT_TAMPERED: "audit trail does not match its seals",
    ROOT_KEY_IN_USE: "root key still in use (active, or sealing data keys)",
    ROOT_KEY_UNKNOWN: "root key not registered",
    DROP_REFUSED: "a command that drops the extension hush, without hush.allow_drop()",
    NO_SCHEDULER: "pg_cron is not installed in this database",
    MAINTENANCE_BUSY: "maintenance gave up waiting for a lock (another maintenance call, or a session using the tables)",
    OAUTH_PROVIDER_NOT_FOUND: "OAuth provider not registered",
    OAUTH_CONNECTION_NOT_FOUND: "no OAuth connection for this provider and account",
    OAUTH_ACCOUNT_AMBIGUOUS: "several OAuth accounts: name one",
    OAUTH_STATE_INVALID: "OAuth state unknown, already used or expired",
    OAUTH_REAUTH_REQUIRED: "OAuth connection needs re-authorization",
    OAUTH_LEASE_LOST: "OAuth refresh lease lost to another refresh",
    OAUTH_TOKEN_EXPIRING: "stored OAuth access token expired or about to (SQL callers do not refresh)",
    OAUTH_READER_REFRESH_DISABLED: "the tenant does not let readers refresh OAuth tokens (ask with oauth_request_refresh)",
    OAUTH_REFRESH_UNANSWERED: "nobody answered an OAuth refresh request in time (is hush oauth-worker running?)",
    OAUTH_EGRESS_REFUSED: "a request to an OAuth provider the egress policy refuses (http, a non-public address, a redirect)",
    OAUTH_BINDING_MISMATCH: "OAuth callback without the binding of the browser that started the authorization",
    OAUTH_GRANT_NOT_ENABLED: "grant type not enabled for the OAuth provider (its config's grant_types)",
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
# Messages, details and hints are cut to this many characters: one that lists what it
# refused (missing versions, names) must not grow with the argument.
MAX_MESSAGE_CHARS = 1000


def bounded(text: Any) -> Any:
    if text is None or len(text) <= MAX_MESSAGE_CHARS:
        return text
    return "%s... (%d characters in all)" % (text[:MAX_MESSAGE_CHARS], len(text))


def show(x: Any) -> str:
    """A caller-given tenant, name or kind that was refused or not found, for a message or
    log line: its first 4 characters (never all of it) and its length, e.g. 'sk_l...' (32 chars).
    It may be a value passed in the wrong place (an API key as the tenant, a token as the
    name), and errors reach logs and clients that must never hold one. ASCII dots: a client
    encoding without an ellipsis must still get the message."""
    if not isinstance(x, str):
        return "NULL" if x is None else type(x).__name__
    return "%r (%d char%s)" % (x[:min(4, len(x) - 1)] + "...", len(x), "" if len(x) == 1 else "s")


def to_plpy_error(plpy: Any, f: Fail) -> Exception:
    """A plpy.Error carrying the SQLSTATE, detail and hint. PL/Python prefixes
    a message with the exception's module and class name unless the module is
    __main__: a subclass named `hush` makes the message read "hush: ..."."""
    global _error_class
    if _error_class is None:
        _error_class = type("hush", (plpy.Error,), {"__module__": "__main__"})
    e = _error_class(bounded(f.message))
    e.sqlstate = f.code
    if f.detail is not None:
        e.detail = bounded(f.detail)
    if f.hint is not None:
        e.hint = bounded(f.hint)
    return e


def input_error(code: str, message: str) -> Fail:
    """A data exception (class 22) or integrity violation (class 23) that PostgreSQL raised in
    one of hush's own statements: hush's stored data is well formed, so an argument it passed
    on was not (a page past any offset, a time past the calendar, a state used twice).
    SH004, with PostgreSQL's code and message in the detail, quoted values left out."""
    if '"' in message:
        import re  # here: only a failure pays for it
        message = re.sub(r'"[^"]*"', '"..."', message)
    return Fail(INVALID_ARGUMENT, "an argument is out of range or malformed",
                detail="PostgreSQL reported %s: %s" % (code, message[:200]))


def unexpected(kind: str) -> Fail:
    """SH004 for a Python exception hush's code did not raise itself; only its class is named."""
    if not kind.isidentifier():
        kind = "exception"
    return Fail(INVALID_ARGUMENT, "an argument has a form this function does not take",
                detail="Python raised %s" % kind)


# A failed call rolls back with its transaction, audit row and all: PostgreSQL
# has no autonomous transactions, and a dblink back to the server would turn a
# flood of refused calls into a flood of connections. What stays is one server
# log line per failure, "hush-failure " + a JSON object (docs/operations.md, "The server log"). It
# names the caller, and no argument but the tenant: in full only when the caller
# may act on it, else by its first characters and length (an API key passed as
# the tenant by mistake is well-formed, and would otherwise be in the log).
FAILURE_TAG = "hush-failure "
# Who made a call, as (key, SQL expression) pairs. The role a call acts as is the role the
# calling code runs as: CURRENT_USER in hush's API functions, which are SECURITY INVOKER
# (docs/access.md, "Whose authority"). SESSION_USER says who logged in, which is not the same
# thing inside other roles' definer code or a maintenance command's index expressions;
# it and the application name say where the call came from, in any code the session runs
# (the audit trail's read records take them so: audit.WHO_SQL).
ACTING_ROLE = ("role", "CURRENT_USER::pg_catalog.text")
SESSION = (("application_name", "pg_catalog.current_setting('application_name')"),
           ("session_role", "SESSION_USER::pg_catalog.text"))
CALLER = tuple(sorted((ACTING_ROLE, *SESSION)))


def columns(pairs: tuple) -> str:
    """SQL select list of (key, expression) pairs: each expression AS its key."""
    return ", ".join("%s AS %s" % (expr, key) for key, expr in pairs)


CALLER_SQL = "SELECT " + columns(CALLER)
# The same as json_build_object arguments, in key order as the Python lines are: for the
# failure lines plpgsql writes (sql/idempotent/20_limits.sql, {{caller_json}}).
CALLER_JSON = ", ".join("'%s', %s" % pair for pair in CALLER)
_caller_plan: Any = None


def failure_line(action: str, tenant: Any, sqlstate: str, caller: dict[str, Any], granted: bool = False) -> str:
    """`granted`: the caller passed its grant check on `tenant`, a well-formed tenant id
    (access.admit): only then is it shown in full."""
    shown = tenant == "*" or granted
    fields = {"action": action, "sqlstate": sqlstate, "tenant": tenant if shown else None,
              "role": caller.get("role"), "session_role": caller.get("session_role"),
              "application_name": caller.get("application_name")}
    if not shown and isinstance(tenant, str):
        fields["tenant_masked"] = show(tenant)
    import json  # here: only a failure pays for it
    return FAILURE_TAG + json.dumps(fields, sort_keys=True)


# Codes after which the failure path runs no SQL at all: a cancel or a statement timeout
# (57014) is spent once caught, so a statement run after it (the caller lookup below) would
# have no timeout left and could wait on the very lock that timed out; a lock timeout
# (55P03) is the same case; after a shutdown request (57P01) or in an aborted transaction
# (25P02) SQL fails or must not run.
NO_SQL_AFTER = frozenset(("57014", "55P03", "57P01", "25P02"))

# The well-formed tenant the running call's own grant check admitted (access.admit), if any:
# a failed call's log line shows the tenant in full only then. Taken from the check the call ran
# anyway, never asked again on failure: a grant check there costs more for a tenant with
# many grants than for one nobody has (the timing oracle SH020's floor closes), and is SQL
# after a cancel. A failure before the call's check (a bad argument) masks the tenant.
admitted: Any = None


def _granted(tenant: Any, sqlstate: str) -> bool:
    """Whether the caller may act on `tenant`, for the log line; False when unsure."""
    return sqlstate != TENANT_ACCESS_DENIED and admitted is not None and admitted == tenant


def log_failure(plpy: Any, action: str, tenant: Any, sqlstate: str) -> None:
    global _caller_plan
    caller: dict[str, Any] = {}
    if sqlstate not in NO_SQL_AFTER:
        try:
            if _caller_plan is None:
                _caller_plan = plpy.prepare(CALLER_SQL, [])
            caller = dict(plpy.execute(_caller_plan)[0])
        except plpy.SPIError as e:  # the error being reported matters more than who made it...
            if (getattr(e, "sqlstate", None) or "") in NO_SQL_AFTER:
                raise  # ...but a cancel that arrived meanwhile ends the call now
    plpy.log(failure_line(action, tenant, sqlstate, caller, _granted(tenant, sqlstate)))


# Every text and array argument of an API function, at most: larger ones are refused
# before anything reads them (docs/reference.md, "Limits"). The largest text hush takes is a value,
# up to 1 MiB of UTF-8 (configure_tenant's highest max_value_bytes); the largest array, a
# call's 10,000 names or values (their domains, sql/idempotent/20_limits.sql, check them sooner).
MAX_TEXT_CHARS = 1 << 20
MAX_ITEMS = 10000
# hush._record()'s body, the signed record of up to 10,000 reads (recorder.py), may be larger.
TEXT_LIMITS = {"body": 64 << 20}


def check_sizes(names: Any, args: tuple) -> None:
    # Every call runs this (get_secret too): the names are looked at only past a limit.
    for a in args:
        if (a.__class__ is str and len(a) > MAX_TEXT_CHARS) or (a.__class__ is list and len(a) > MAX_ITEMS):
            break
    else:
        return
    for name, a in zip(names, args):
        if isinstance(a, str):
            most = TEXT_LIMITS.get(name, MAX_TEXT_CHARS)
            if len(a) > most:
                raise Fail(VALUE_TOO_LARGE if name == "value" else INVALID_ARGUMENT,
                           "%s is %d characters long; at most %d are allowed" % (name, len(a), most))
        elif isinstance(a, list) and len(a) > MAX_ITEMS:
            raise Fail(INVALID_ARGUMENT, "%s has %d elements; at most %d are allowed" % (name, len(a), MAX_ITEMS))


def api(fn: F) -> F:
    """Entry point of an SQL function: Fail becomes a PostgreSQL error with its
    SQLSTATE, and every failure (Fail or a database error) leaves a log line."""
    params = fn.__code__.co_varnames[:fn.__code__.co_argcount]  # not inspect: ~5 ms to import
    tenant_at = params.index("tenant") - 1 if "tenant" in params else None

    def logged(plpy: Any, args: tuple, code: str) -> None:
        log_failure(plpy, fn.__name__, None if tenant_at is None else args[tenant_at], code)

    def refused(plpy: Any, args: tuple, f: Fail) -> Any:
        """The PostgreSQL error to raise for f, once its log line is written."""
        logged(plpy, args, f.code)
        return to_plpy_error(plpy, f)

    def wrapper(plpy: Any, *args: Any) -> Any:
        global admitted
        outer, admitted = admitted, None  # a call hush code makes inside another one has its own
        try:
            check_sizes(params[1:], args)
            return fn(plpy, *args)
        except Fail as f:
            if f.code[:2] in ("22", "23"):  # from a step's statement (privileged.call)
                f = input_error(f.code, f.message)
            elif f.code == "38000":  # a Python exception in a step: see the catch-all below
                f = unexpected(f.message.split(":", 1)[0])
            raise refused(plpy, args, f) from None
        except plpy.SPIError as e:
            code = getattr(e, "sqlstate", None) or "XX000"
            if code[:2] in ("22", "23"):
                raise refused(plpy, args, input_error(code, str(e.args[0]) if e.args else "")) from None
            logged(plpy, args, code)
            raise
        except (RecursionError, OverflowError) as e:
            # Arguments are all that can nest this deep (JSON) or hold a number this large.
            raise refused(plpy, args, Fail(INVALID_ARGUMENT, "an argument is nested too deeply or holds a number "
                                                             "out of range (%s)" % type(e).__name__)) from None
        except plpy.Error:
            raise  # already a PostgreSQL error with its SQLSTATE
        except Exception as e:
            # Arguments of a shape the code does not expect (a 2-D array where the domains let
            # one through, a JSON value of another type) end here: SH004 and a log line rather
            # than PostgreSQL's 38000. The exception's own message may quote an argument.
            raise refused(plpy, args, unexpected(type(e).__name__)) from None
        finally:
            admitted = outer

    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
