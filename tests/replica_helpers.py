"""Shared steps of the replica tests: a primary and standby of their own (for what
the session's cluster must not go through: stops, promotions), waiting for a
standby to catch up, promoting it, and a hang guard for calls that must fail
closed rather than wait."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg

from conftest import hush_database
from hush.devcluster import PG_BIN, Cluster, run_as_server

DB = "app"
# Login roles of these primaries: conftest.py's, with their grants there.
ROLES = ["alice", "rita", "adam", "otto"]


@contextmanager
def primary_and_standby(keys: int = 1) -> Iterator[tuple[Cluster, Cluster]]:
    """A primary with hush in database `app` and the roles above, and a streaming standby of
    it (pg_basebackup -R, sharing the keyring); both stopped and removed afterwards."""
    primary = Cluster(keys=keys).start()
    sb: Cluster | None = None
    try:
        hush_database(primary, DB, ROLES)
        sb = primary.start_standby()
        yield primary, sb
    finally:
        if sb is not None:
            sb.stop()
        primary.stop()  # last: the standby reads the primary's keyring file


def caught_up(primary_dsn: str, standby_dsn: str) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    with psycopg.connect(primary_dsn, autocommit=True) as c:
        (lsn,) = c.execute("SELECT pg_current_wal_lsn()::text").fetchone()  # type: ignore[misc]
    for _ in range(300):
        try:
            with psycopg.connect(standby_dsn, autocommit=True) as c:
                if c.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone() == (True,):
                    return
        except psycopg.OperationalError:
            pass  # the database is not replayed yet
        time.sleep(0.1)
    raise AssertionError("the standby did not catch up")


def promote(standby: Cluster) -> None:
    r = run_as_server([str(PG_BIN / "pg_ctl"), "-D", str(standby.data), "promote", "-w"],
                      capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def guarded(fn: Any, limit: float = 60.0) -> Any:
    """fn() in a thread, joined with a generous limit: a call that hangs fails the test instead
    of stalling the run (how long it took goes to the benchmark, never an assertion). Returns
    what fn returns, or raises what it raised."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"still waiting after {limit} s: the call hangs instead of failing"
    if "error" in out:
        raise out["error"]
    return out.get("value")
