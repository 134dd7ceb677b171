"""Where a Call runs: a psycopg connection, a pool, or a SQLAlchemy connection/session.

An executor runs a list of Calls atomically and returns their results. Over a
caller's connection it runs inside the caller's transaction and never commits
or rolls back: the caller's commit or rollback decides, audit rows included.
"""
from __future__ import annotations

import re
import select
import sys
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Iterator, NoReturn, Protocol, Sequence

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from ._calls import Call
from ._errors import InvalidArgument, translate

_PARAM = re.compile(r"%\((\w+)\)s")


class Executor(Protocol):
    def run(self, calls: Sequence[Call[Any]]) -> list[Any]: ...


def raise_translated(exc: Exception) -> NoReturn:
    """Raise a driver error as its HushError, or as it is when it is not one of hush's codes."""
    err = translate(exc)
    if err is None:
        raise exc
    raise err from exc


class PsycopgExecutor:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def run(self, calls: Sequence[Call[Any]]) -> list[Any]:
        # An autocommit connection has no transaction to join: several calls get one of their own.
        atomic: AbstractContextManager[Any] = (
            self.conn.transaction() if self.conn.autocommit and len(calls) > 1 else nullcontext())
        try:
            with atomic, self.conn.cursor(row_factory=tuple_row) as cur:
                out = []
                for call in calls:
                    cur.execute(call.sql, call.params)
                    out.append(call.shape(cur.fetchall()))
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
    dead connections: ten idle ones would outlast the 30-second timeout."""
    conn: psycopg.Connection[Any] = pool.getconn()
    if not said_goodbye(conn):
        return conn
    try:
        ConnectionPool.check_connection(conn)
    except psycopg.Error:
        conn.close()
        pool.putconn(conn)  # closed: the pool opens another in its place
        pool.check()
        conn = pool.getconn()
        return conn
    except BaseException:
        pool.putconn(conn)
        raise
    return conn


@contextmanager
def pooled(pool: ConnectionPool[Any]) -> Iterator[psycopg.Connection[Any]]:
    """pool.connection() with getconn()'s check."""
    conn = getconn(pool)
    try:
        with conn:  # commit or roll back what the block left open; a pool's connection stays open
            yield conn
    finally:
        pool.putconn(conn)


class PoolExecutor:
    """Each run on a pooled autocommit connection: one call, one statement, one round trip.

    With a read pool (hush.connect(read_dsn=...)), a run whose calls all only read
    (Call.reads_only) takes its connection there; every other run, from `pool`."""

    def __init__(self, pool: ConnectionPool[Any], read_pool: ConnectionPool[Any] | None = None) -> None:
        self.pool = pool
        self.read_pool = read_pool
        # For what must see the primary's latest state whatever it calls (OAuth token state).
        self.primary = self if read_pool is None else PoolExecutor(pool)

    def run(self, calls: Sequence[Call[Any]]) -> list[Any]:
        pool = self.pool
        if self.read_pool is not None and all(c.reads_only for c in calls):
            pool = self.read_pool
        # getconn/putconn rather than pool.connection(): the connections are autocommit,
        # so its commit-or-rollback on exit has nothing to do, and skipping it is measurably faster.
        conn = getconn(pool)
        try:
            return PsycopgExecutor(conn).run(calls)
        finally:
            pool.putconn(conn)


def sqlalchemy_sql(sql: str) -> str:
    """`%(name)s` parameters as SQLAlchemy text() wants them (`:name`)."""
    return _PARAM.sub(r":\1", sql)


def check_sqlalchemy_driver(conn: Any) -> None:
    """psycopg2 interpolates parameters into the query text on the client, where a
    value would show in pg_stat_activity and the statement log: refuse it."""
    bind = conn.get_bind() if hasattr(conn, "get_bind") else getattr(conn, "engine", None)
    driver = getattr(getattr(bind, "dialect", None), "driver", None)
    if driver == "psycopg2":
        raise InvalidArgument("hush needs a driver that binds parameters on the server, so values stay out of "
                              "query text: use postgresql+psycopg (psycopg 3), asyncpg or pg8000, not psycopg2")


def is_sqlalchemy(conn: Any) -> bool:
    return type(conn).__module__.startswith("sqlalchemy.") and hasattr(conn, "execute")


class SQLAlchemyExecutor:
    """Through session.execute(text(...)), so any driver SQLAlchemy speaks works."""

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
        out = []
        for call in calls:
            try:
                result = self.conn.execute(self.statement(call.sql), call.params)
            except Exception as e:
                raise_translated(e)
            out.append(call.shape([tuple(r) for r in result.fetchall()]))
        return out


def executor_for(conn: Any) -> Executor:
    if isinstance(conn, psycopg.Connection):
        return PsycopgExecutor(conn)
    if isinstance(conn, ConnectionPool):
        return PoolExecutor(conn)
    if is_sqlalchemy(conn):
        return SQLAlchemyExecutor(conn)
    if isinstance(conn, (PsycopgExecutor, PoolExecutor, SQLAlchemyExecutor)):  # the client's own
        return conn
    raise TypeError(f"hush.Secrets needs a psycopg Connection, a psycopg_pool ConnectionPool, or a SQLAlchemy "
                    f"Connection or Session, not {type(conn).__name__}")
