"""Steps that need more than the caller's rights, run for the caller and no one else.

hush's API functions are SECURITY INVOKER: they run as the role the calling
code runs as (CURRENT_USER), whatever the context (a plain session, SET ROLE,
another role's definer function or trigger, an index expression that a
superuser's ANALYZE runs as the table's owner), so that role's grants decide.
Callers hold no privilege on any table or view (one that could query a
row-secured relation could count other tenants' rows with EXPLAIN ANALYZE),
so the work itself runs in a SECURITY DEFINER dispatcher, one per owning role
(hush._as_owner, _as_keykeeper, _as_retention, _as_refresher).

A dispatcher only runs a step that hush's own invoker code put into this
backend's PL/Python memory a moment before: a ticket, 128 random bits, used
once, naming the step and its arguments. No SQL can read or write that
memory (plpython3u is untrusted: only a superuser creates functions in it),
so calling a dispatcher directly gets nothing done. The caller comes with the
ticket, as CURRENT_USER evaluated in the invoker's own statement, and each
step checks that role's authority itself before it touches tenant data.
Arguments and results never pass through SQL: a secret value handed to a
write step is not a bind parameter of a second statement.
"""
from __future__ import annotations

import os
from time import perf_counter, sleep

from .errors import INSUFFICIENT_PRIVILEGE, READ_ONLY, TENANT_ACCESS_DENIED, Fail, to_plpy_error

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any, Callable, TypeVar
    F = TypeVar("F", bound=Callable[..., Any])


OWNER = "hush_owner"
KEYKEEPER = "hush_keykeeper"
RETENTION = "hush_retention"
REFRESHER = "hush_refresher"
DISPATCHERS = {OWNER: "_as_owner", KEYKEEPER: "_as_keykeeper", RETENTION: "_as_retention",
               REFRESHER: "_as_refresher"}

# The setting that names the tenant a step acts in, until its transaction ends: the
# owner_steps row policy (access.OWNER_STEPS) admits that tenant's rows only.
TENANT_SETTING = "'hush.tenant'"


def set_tenant(value: str) -> str:
    """SQL: set the step's tenant (TENANT_SETTING) to `value`, an SQL expression."""
    return f"pg_catalog.set_config({TENANT_SETTING}, {value}, true)"


# For a step that checks no grant of its own (an admin's, maintenance) and acts in a tenant.
SET_TENANT_SQL = "SELECT " + set_tenant("$1")

_steps: set[tuple[str, Callable[..., Any]]] = set()
_tickets: dict[str, tuple[str, Callable[..., Any], tuple]] = {}
_results: dict[str, Any] = {}
_plans: dict[str, Any] = {}
# A refusal (SH020) takes at least this long from the step's dispatch: checking a grant
# costs more for a tenant that has grants (one role test per grant row: ~0.4 µs each, ~2.5 µs
# for one, measured) than for a name nobody was granted, which would tell a role probing
# names which tenants exist. Far above the check's own cost, so every refusal ends at the
# same time, give or take the scheduler, which does not depend on the tenant.
DENY_FLOOR_S = 0.002
SPIN_S = 0.0002  # a sleep wakes up to ~0.1 ms late: the last stretch is waited out awake


def _hold_until(deadline: float) -> None:
    rest = deadline - SPIN_S - perf_counter()
    if rest > 0:
        sleep(rest)
    while perf_counter() < deadline:
        pass


def step(owner: str) -> Callable[[F], F]:
    """Mark a function as a step its owner's dispatcher may run: fn(plpy, caller, *args)."""
    def mark(fn: F) -> F:
        _steps.add((owner, fn))
        return fn
    return mark


def _unpacked(code: int) -> str:
    """A SQLSTATE from PostgreSQL's packed form (five 6-bit characters, PGUNSIXBIT)."""
    return "".join(chr(((code >> (6 * i)) & 0x3F) + ord("0")) for i in range(5))


def _error_data(e: Any) -> tuple[str, Any, Any]:
    """(sqlstate, detail, hint) of an error raised one level down. A plpy.SPIError carries
    them in `spidata`; `sqlstate` is only a class attribute of the spiexceptions classes
    PostgreSQL knows, not of hush's own codes."""
    data = getattr(e, "spidata", None)
    if data:
        return _unpacked(data[0]), data[1], data[2]
    return getattr(e, "sqlstate", None) or "XX000", None, None


def _message(e: Any) -> str:
    """The message of an error raised one level down, without the prefixes PL/Python added."""
    msg = str(e.args[0]) if getattr(e, "args", None) else str(e)
    for prefix in ("hush: ",):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if msg.startswith("spiexceptions.") and ": " in msg:
        msg = msg.split(": ", 1)[1]
    return msg


def call(plpy: Any, owner: str, fn: Callable[..., Any], *args: Any, tenant: str | None = None) -> Any:
    """Run step `fn` as `owner` for the role this code runs as; its result, or its error as a Fail.
    With `tenant`, the same statement sets hush.tenant first (left to right in its target list),
    which a reading step then needs no statement of its own for: the owner_steps row policy
    admits only hush_owner anyway, and the step's own WHERE checks the caller's grant."""
    ticket = os.urandom(16).hex()
    _tickets[ticket] = (owner, fn, args)
    key = owner if tenant is None else owner + " tenant"
    p = _plans.get(key)
    if p is None:
        # SELECT fn(...) of a function returning void: evaluated once (a composite in a target
        # list may be evaluated once per column).
        sql = "SELECT hush.%s($1, CURRENT_USER)" % DISPATCHERS[owner]
        if tenant is not None:
            sql = "SELECT %s, hush.%s($1, CURRENT_USER)" % (set_tenant("$2"), DISPATCHERS[owner])
        p = _plans[key] = plpy.prepare(sql, ["pg_catalog.text"] if tenant is None else ["pg_catalog.text"] * 2)
    began = perf_counter()
    try:
        plpy.execute(p, [ticket] if tenant is None else [ticket, tenant])
        return _results.pop(ticket, None)
    except plpy.SPIError as e:
        code, detail, hint = _error_data(e)
        if code == TENANT_ACCESS_DENIED:
            _hold_until(began + DENY_FLOOR_S)
        if code == "25006":  # read_only_sql_transaction: a step that writes, on a standby or READ ONLY
            raise Fail(READ_ONLY, "this call writes, which a read-only transaction or a standby cannot do",
                       hint="Run it in a read-write transaction on the primary (reads work anywhere).") from None
        raise Fail(code, _message(e), hint=hint, detail=detail) from None
    finally:
        # Nothing stays behind, a failed statement's result (a token, a value) included.
        _tickets.pop(ticket, None)
        _results.pop(ticket, None)


def run(plpy: Any, owner: str, ticket: Any, caller: Any) -> None:
    """The dispatcher's body: run the ticket's step, once, if it is one of this owner's."""
    entry = _tickets.pop(ticket, None) if isinstance(ticket, str) else None
    if entry is None or entry[0] != owner or (owner, entry[1]) not in _steps or not caller:
        raise to_plpy_error(plpy, Fail(INSUFFICIENT_PRIVILEGE, "hush.%s runs only for hush's own functions"
                                       % DISPATCHERS.get(owner, "?"),
                                       hint="Call the hush.* API function instead."))
    _, fn, args = entry
    try:
        _results[ticket] = fn(plpy, caller, *args)
    except Fail as f:
        raise to_plpy_error(plpy, f) from None
