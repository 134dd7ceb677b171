"""Where a Call runs: a psycopg connection, a pool, or a SQLAlchemy connection/session.

An executor runs a list of Calls atomically and returns their results. Over a
caller's connection it runs inside the caller's transaction and never commits
or rolls back: the caller's commit or rollback decides, audit rows included.
"""
from __future__ import annotations

import re
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NoReturn, Protocol, Sequence

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


class PoolExecutor:
    """Each run on a pooled autocommit connection: one call, one statement, one round trip."""

    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self.pool = pool

    def run(self, calls: Sequence[Call[Any]]) -> list[Any]:
        # getconn/putconn rather than pool.connection(): the connections are autocommit,
        # so its commit-or-rollback on exit has nothing to do, and skipping it is measurably faster.
        conn = self.pool.getconn()
        try:
            return PsycopgExecutor(conn).run(calls)
        finally:
            self.pool.putconn(conn)


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
