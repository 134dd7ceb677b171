"""The OAuth worker's database calls, each with a lock timeout and a statement timeout,
and which failures of a store are worth another attempt.

Any role that may use the refresh lease functions in a tenant (a writer; a reader
where reader_refresh is on) can leave a transaction open holding a connection row's
lock: a store of tokens, a finish or release with a wrong lease token (the row is
locked before the token is checked, and stays locked while the failed transaction
stays open). A worker statement that waited for such a lock waited without limit,
holding one of the worker's few database connections and a thread, and behind them
every other tenant's refreshes stopped. So every statement the worker runs waits
`lock_timeout` seconds at most for a lock (55P03 after that) and runs
`statement_timeout` seconds at most (57014); what such a failure costs is that
connection's step alone:

- the batched statements wait for no row lock (hush.oauth_worker_claim and
  oauth_worker_lease skip locked rows, oauth_worker_finish stores the others and
  returns 55P03 for a locked one); `lock_timeout` bounds what else they might
  wait for (a table lock of maintenance);
- the calls on one connection's row (a lease renewed, given back, or released with
  a failure; a store done on its own) wait for no lock at all (ROW_LOCK_TIMEOUT):
  a renewal that meets one skips the connection for this round, a lease that
  cannot be given back runs out on its own, and a store that could not take its
  lock is stored again later, off the pool and holding no thread
  (_oauth_batch.py): the provider may already have rotated the refresh token, so
  its answer is not thrown away while a few attempts remain.

The timeouts are SET LOCAL in a transaction around each call, never session
settings or startup options: behind a transaction pooler (pgbouncer) a session SET
stays on the server connection and reaches other clients' transactions, and
pgbouncer refuses a startup `options` parameter. The cost is two more round trips a
call (BEGIN with the settings, COMMIT), which the worker's batched calls spread over
a batch.
"""
from __future__ import annotations

from typing import Any, Sequence

import psycopg
from psycopg_pool import ConnectionPool

from ._calls import Call
from ._errors import DatabaseUnavailable, HushError
from ._exec import PoolExecutor, PsycopgExecutor, getconn, retry_after

# Defaults (OAuthWorker(db_lock_timeout=, db_statement_timeout=)). A refresh's own row
# locks last milliseconds (autocommit statements): a lock held longer is a transaction
# left open, or maintenance.
LOCK_TIMEOUT = 0.5
# Far above what its longest statement takes (a batch of 200 stores).
STATEMENT_TIMEOUT = 30.0
# For the calls on one connection's row, which any role of its tenant that may use the
# lease can keep locked: no wait at all. (A wait each, however short, adds up: the
# claiming loop gives back a stalled host's surplus one lease after another, and a
# tenant with many locked rows would keep the pool's connections waiting.)
ROW_LOCK_TIMEOUT = 0.001
SETTINGS_SQL = ("SELECT pg_catalog.set_config('lock_timeout', %s, true), "
                "pg_catalog.set_config('statement_timeout', %s, true)")

# Failures another attempt may get past: a row lock held elsewhere (55P03), a deadlock or
# a serialization failure (40P01, 40001), a statement timeout or cancel (57014), the
# server shutting down or restarting (57P01-57P03), the connection (08...).
RETRYABLE = frozenset(("55P03", "40P01", "40001", "57014", "57P01", "57P02", "57P03"))


def code_of(e: BaseException) -> str:
    """A failure's SQLSTATE for a log line or last_error (a HushError's own code, a driver
    error's), else its class's name: never its message."""
    code = e.code if isinstance(e, HushError) else getattr(e, "sqlstate", None)
    return code if isinstance(code, str) and code else type(e).__name__


def transient(e: BaseException) -> bool:
    """Whether a database call's failure may pass on another attempt (a locked row, a lost
    connection), rather than being the call's own (a refusal, bad input)."""
    if isinstance(e, (psycopg.OperationalError, DatabaseUnavailable)):
        return True
    code = code_of(e)
    return code in RETRYABLE or code.startswith("08")


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


class GuardedExecutor(PoolExecutor):
    """A pool's executor whose every run is one transaction with the timeouts above set
    first (SET LOCAL: they end with it)."""

    def __init__(self, pool: ConnectionPool[Any], *, lock_timeout: float = LOCK_TIMEOUT,
                 statement_timeout: float = STATEMENT_TIMEOUT) -> None:
        super().__init__(pool)
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self._settings = (_ms(lock_timeout), _ms(statement_timeout))

    def run(self, calls: Sequence[Call[Any]]) -> list[Any]:
        for attempt in range(2):
            conn = getconn(self.pool)
            try:
                with conn.transaction():
                    conn.execute(SETTINGS_SQL, self._settings, prepare=False)
                    return PsycopgExecutor(conn, self.prepare).run(calls)
            except psycopg.Error as e:
                if not retry_after(e, conn, calls, attempt):
                    raise
            finally:
                self.pool.putconn(conn)
        raise AssertionError("unreachable")
