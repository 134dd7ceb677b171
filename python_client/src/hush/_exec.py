"""Where a Call runs: a psycopg connection, a pool, or a SQLAlchemy connection/session.

An executor runs a list of Calls atomically and returns their results. Over a
caller's connection it runs inside the caller's transaction and never commits
or rolls back: the caller's commit or rollback decides, audit rows included.
Over a pool it commits each run itself, whatever the pool's autocommit setting:
the connection goes back to the pool, which rolls back whatever is left open.

Every statement binds its parameters on the server, whatever cursor class the
connection was given (Django's psycopg backend gives ClientCursor, which would
write values into the query text), and is not prepared unless asked
(prepare=True, HUSH_PREPARE=1): a transaction pooler such as pgbouncer 1.18
hands each transaction a different server connection, where psycopg's prepared
statements do not exist.
"""
from __future__ import annotations

import re
import select
import sys
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Iterator, NoReturn, Protocol, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from ._calls import Call
from ._errors import DatabaseUnavailable, InvalidArgument, TransactionAborted, translate
from ._log import function_of, logger, prepare_default

_PARAM = re.compile(r"%\((\w+)\)s")


class Executor(Protocol):
    def run(self, calls: Sequence[Call[Any]]) -> list[Any]: ...


def raise_translated(exc: Exception) -> NoReturn:
    """Raise a driver error as its HushError, or as it is when it is not one of hush's codes."""
    err = translate(exc)
    if err is None:
        raise exc
    raise err from exc


def unavailable(pool_name: str, exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"no connection to the database within the pool's timeout ({pool_name}): {exc}",
                               hint="is the server up and the DSN right? hush.connect() says why at start-up")


def logged(call: Call[Any], started: float, rows: int) -> None:
    logger.debug("%s tenant=%s: %d rows in %.2f ms", function_of(call.sql), call.params.get("tenant", "-"), rows,
                 (time.perf_counter() - started) * 1000)


def execute_prepare(prepare: bool | None) -> bool | None:
    """cursor.execute()'s `prepare` for hush's statements: None leaves it to the connection's
    prepare_threshold (prepare=True, HUSH_PREPARE=1), False never prepares (the default)."""
    return None if (prepare_default() if prepare is None else prepare) else False


class PsycopgExecutor:
    """`commit`: the connection is hush's to commit (a pool's), not the caller's to decide."""

    def __init__(self, conn: psycopg.Connection[Any], prepare: bool | None = None, *, commit: bool = False) -> None:
        self.conn = conn
        self.prepare = execute_prepare(prepare)
        self.commit = commit

    def run(self, calls: Sequence[Call[Any]]) -> list[Any]:
        # An autocommit connection has no transaction to join: several calls get one of their own.
        # A pool's connection that is not autocommit gets one too, committed before it goes back.
        atomic: AbstractContextManager[Any] = (
            self.conn.transaction() if (atomic_needed(calls) if self.conn.autocommit else self.commit)
            else nullcontext())
        debug = logger.isEnabledFor(10)
        try:
            # psycopg.Cursor, not conn.cursor(): the connection's cursor_factory may bind on the client.
            with atomic, psycopg.Cursor(self.conn, row_factory=dict_row) as cur:
                out = []
                for call in calls:
                    started = time.perf_counter() if debug else 0.0
                    cur.execute(call.sql, call.params, prepare=self.prepare)
                    rows = cur.fetchall()
                    if debug:
                        logged(call, started, len(rows))
                    out.append(call.shape(rows))
                return out
        except psycopg.Error as e:
            raise_translated(e)


def said_goodbye(conn: psycopg.BaseConnection[Any]) -> bool:
    """Whether the server has sent anything to this idle connection, without a round trip.
    Nothing is due on a healthy one; data or EOF means the server closed it (a shutdown, a
    failover, pg_terminate_backend), or, harmlessly, a NOTIFY came."""
    fd = conn.fileno()
    if hasattr(select, "poll"):  # not select(): it refuses descriptors above 1023
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # Windows


def getconn(pool: ConnectionPool[Any]) -> psycopg.Connection[Any]:
    """A connection from the pool that still reaches a server.

    psycopg_pool hands out idle connections as they are, and after a failover or a restart
    they lead to a server that is gone. One the server closed is checked (a round trip) and,
    dead, dropped with every dead one beside it (pool.check()); the next comes from a new
    connection, which a multi-host DSN sends to whichever host qualifies now. The pool's own
    check= would cost a round trip on every call, and it backs off 1, 2, 4... seconds between
    dead connections: ten idle ones would outlast the 30-second timeout. Waiting longer than
    the pool's timeout raises DatabaseUnavailable."""
    try:
        conn: psycopg.Connection[Any] = pool.getconn()
        if not said_goodbye(conn):
            return conn
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            logger.info("a pooled connection was closed by the server; reconnecting (%s)", pool.name)
            conn.close()
            pool.putconn(conn)  # closed: the pool opens another in its place
            pool.check()
            conn = pool.getconn()
            return conn
        except BaseException:
            pool.putconn(conn)
            raise
        return conn
    except PoolTimeout as e:
        raise unavailable(pool.name, e) from e


@contextmanager
def pooled(pool: ConnectionPool[Any]) -> Iterator[psycopg.Connection[Any]]:
    """pool.connection() with getconn()'s check."""
    conn = getconn(pool)
    try:
        with conn:  # commit or roll back what the block left open; a pool's connection stays open
            yield conn
    finally:
        pool.putconn(conn)


ABORTED = ("a statement in the block failed and its error was caught: the server aborted the transaction, "
           "so nothing in it was committed")


def check_not_aborted(conn: psycopg.BaseConnection[Any]) -> None:
    """At the end of a transaction block that raised nothing: a caught error aborted the
    transaction, and its COMMIT would quietly roll back. Raise instead (the block then rolls back)."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        raise TransactionAborted(ABORTED, hint="catch hush's errors outside the block, or let them end it")


RESET_ROLE = "RESET ROLE"


def resettable(conn: psycopg.BaseConnection[Any]) -> bool:
    """Whether a lent connection can take RESET ROLE now: open, and outside a transaction."""
    return not conn.closed and not conn.broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def reset_role(conn: psycopg.Connection[Any]) -> None:
    """A session SET ROLE left by your statements on a connection hush lent you would be the
    authority (and the audited role) of every later call on it, from any thread."""
    if resettable(conn):
        conn.execute(RESET_ROLE)


@contextmanager
def lent(pool: ConnectionPool[Any], transaction: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A pooled connection for your own statements (client.connection(), transaction()):
    in one transaction if asked, and its role reset before it goes back."""
    conn = getconn(pool)
    try:
        with conn:
            if transaction:
                with conn.transaction():
                    yield conn
                    check_not_aborted(conn)
            else:
                yield conn
    finally:
        try:
            reset_role(conn)
        except psycopg.Error:
            conn.close()  # the pool replaces a closed connection rather than lend it with a role
        pool.putconn(conn)


def retry_after(exc: psycopg.Error, conn: psycopg.BaseConnection[Any], calls: Sequence[Call[Any]],
                attempt: int) -> bool:
    """Whether a run that failed with exc may run again, once, on another connection: only
    when the connection broke under calls that only read. A write whose connection broke may
    have committed (its reply was lost), and running it again would add a version."""
    if attempt > 0 or not isinstance(exc, psycopg.OperationalError) or not conn.broken:
        return False
    if not all(c.reads_only for c in calls):
        return False
    logger.info("the connection broke under a read (%s); retrying it once on another", type(exc).__name__)
    return True


class PoolExecutor:
    """Each run on a pooled connection, committed before the connection goes back (its own
    transaction, autocommit or not): one call, one statement, one round trip on hush's own
    autocommit pools.

    With a read pool (hush.connect(read_dsn=...)), a run whose calls all only read
    (Call.reads_only) takes its connection there; every other run, from `pool`."""

    def __init__(self, pool: ConnectionPool[Any], read_pool: ConnectionPool[Any] | None = None,
                 prepare: bool | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool
        self.prepare = prepare_default() if prepare is None else prepare
        # For what must see the primary's latest state whatever it calls (OAuth token state).
        self.primary = self if read_pool is None else PoolExecutor(pool, prepare=prepare)

    def run(self, calls: Sequence[Call[Any]]) -> list[Any]:
        pool = self.pool
        if self.read_pool is not None and all(c.reads_only for c in calls):
            pool = self.read_pool
        for attempt in range(2):
            # getconn/putconn rather than pool.connection(): on autocommit connections its
            # commit-or-rollback on exit has nothing to do, and skipping it is measurably faster.
            conn = getconn(pool)
            try:
                return PsycopgExecutor(conn, self.prepare, commit=True).run(calls)
            except psycopg.Error as e:
                if not retry_after(e, conn, calls, attempt):
                    raise
            finally:
                pool.putconn(conn)
        raise AssertionError("unreachable")


def sqlalchemy_sql(sql: str) -> str:
    """`%(name)s` parameters as SQLAlchemy text() wants them (`:name`)."""
    return _PARAM.sub(r":\1", sql)


CLIENT_BINDING = ("hush needs parameters bound on the server, so values stay out of query text (pg_stat_activity, "
                  "the statement log)")


def check_sqlalchemy_driver(conn: Any) -> None:
    """psycopg2 (and psycopg2cffi) interpolate parameters into the query text on the client: refuse them."""
    bind = conn.get_bind() if hasattr(conn, "get_bind") else getattr(conn, "engine", None)
    driver = getattr(getattr(bind, "dialect", None), "driver", None)
    if isinstance(driver, str) and driver.startswith("psycopg2"):
        raise InvalidArgument(f"{CLIENT_BINDING}: use postgresql+psycopg (psycopg 3), asyncpg or pg8000, "
                              f"not {driver}")


def sqlalchemy_connection(conn: Any) -> Any:
    """The SQLAlchemy Connection of a Session (this begins its transaction, as a statement
    would), or the Connection itself."""
    return conn.connection() if hasattr(conn, "get_bind") else conn


def sqlalchemy_driver_connection(conn: Any) -> Any:
    """The DBAPI connection under a SQLAlchemy Session or Connection (sync)."""
    return getattr(sqlalchemy_connection(conn).connection, "driver_connection", None)


def is_sqlalchemy(conn: Any) -> bool:
    return type(conn).__module__.startswith("sqlalchemy.") and hasattr(conn, "execute")


class SQLAlchemyExecutor:
    """In the SQLAlchemy session's (or connection's) transaction.

    With psycopg underneath (postgresql+psycopg), hush's statements run on the driver's
    connection through hush's own server-binding, unprepared cursor, as over a psycopg
    connection: whatever the engine's cursor_factory, prepare_threshold or echo, no value
    reaches query text, a prepared statement a pooler loses, or SQLAlchemy's log. SQLAlchemy
    is told the transaction has begun first (begin(), what its autobegin would do), so its
    commit and rollback are the ones that count. Other drivers (asyncpg, pg8000, which bind
    on the server) go through session.execute(text(...))."""

    def __init__(self, conn: Any) -> None:
        check_sqlalchemy_driver(conn)
        self.conn = conn
        self.text = sys.modules["sqlalchemy"].text
        self.statements: dict[str, Any] = {}

    def statement(self, sql: str) -> Any:
        stmt = self.statements.get(sql)
        if stmt is None:
            stmt = self.statements[sql] = self.text(sqlalchemy_sql(sql))
        return stmt

    def run(self, calls: Sequence[Call[Any]]) -> list[Any]:
        sa = sqlalchemy_connection(self.conn)
        driver = getattr(sa.connection, "driver_connection", None)
        if isinstance(driver, psycopg.Connection):
            if not sa.in_transaction():
                sa.begin()
            try:
                return PsycopgExecutor(driver).run(calls)
            except psycopg.Error as e:
                raise as_sqlalchemy_error(sa, driver, e) from None
        refuse_unatomic(sa, calls)
        out = []
        for call in calls:
            try:
                result = self.conn.execute(self.statement(call.sql), call.params)
            except Exception as e:
                raise_translated(e)
            out.append(call.shape([dict(r._mapping) for r in result.fetchall()]))
        return out


def as_sqlalchemy_error(sa: Any, driver: Any, exc: psycopg.Error) -> BaseException:
    """A driver error as SQLAlchemy would have raised it (DBOS and other retry logic look for
    sqlalchemy.exc.DBAPIError with the SQLSTATE; hush's own codes still become HushErrors),
    parameters hidden: they hold values. A connection the error broke is invalidated, as
    SQLAlchemy does, so its pool does not lend it again."""
    if driver.broken:
        sa.invalidate()
    wrapped = sys.modules["sqlalchemy"].exc.DBAPIError.instance(
        None, None, exc, sa.dialect.loaded_dbapi.Error, hide_parameters=True, dialect=sa.dialect)
    return translate(wrapped) or wrapped


def atomic_needed(calls: Sequence[Call[Any]]) -> bool:
    """Whether a run must be one transaction: several statements (save_many's batches), or
    one whose result a callback sees before the run returns (progress)."""
    return len(calls) > 1 or calls[0].atomic


UNATOMIC = ("this call runs several statements that must commit together, and this SQLAlchemy connection is "
            "AUTOCOMMIT: run it in a transaction (session.begin())")


def refuse_unatomic(sa: Any, calls: Sequence[Call[Any]]) -> None:
    """Over a driver other than psycopg, hush cannot open a transaction of its own beside
    SQLAlchemy's: a run that must be all or nothing is refused on an AUTOCOMMIT connection."""
    if atomic_needed(calls) and sa.get_isolation_level() == "AUTOCOMMIT":
        raise InvalidArgument(UNATOMIC)


def executor_for(conn: Any) -> Executor:
    if isinstance(conn, psycopg.Connection):
        return PsycopgExecutor(conn)
    if isinstance(conn, ConnectionPool):
        return PoolExecutor(conn)
    if is_sqlalchemy(conn):
        return SQLAlchemyExecutor(conn)
    if isinstance(conn, (PsycopgExecutor, PoolExecutor, SQLAlchemyExecutor)):  # the client's own
        return conn
    if type(conn).__module__.startswith("psycopg2"):
        raise InvalidArgument(f"{CLIENT_BINDING}: psycopg2 binds on the client; use a psycopg 3 connection")
    raise TypeError(f"hush.Secrets needs a psycopg Connection, a psycopg_pool ConnectionPool, or a SQLAlchemy "
                    f"Connection or Session, not {type(conn).__name__}")
