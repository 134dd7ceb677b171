"""hush.OAuthWorker's settings and database side (_oauth_worker.py): its pool and the
executors over it, the claims of due connections, the queue that stores refreshes by
the batch, the OAuth of each tenant it serves, and the counts of what it did."""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections import Counter
from typing import Any

import httpx2 as httpx
from psycopg_pool import ConnectionPool

from . import _oauth_calls as q
from ._client import _pool, connect_kwargs
from ._errors import InvalidArgument
from ._oauth import OAuth
from ._oauth_batch import StoreQueue
from ._oauth_db import LOCK_TIMEOUT, ROW_LOCK_TIMEOUT, STATEMENT_TIMEOUT, GuardedExecutor
from ._oauth_dispatch import Dispatch

log = logging.getLogger("hush.oauth_worker")
# Beyond its HTTP timeouts, what a refresh may take to store its result.
STORE_SECONDS = 5.0


class WorkerBase:
    """What the parts of hush.OAuthWorker share (its arguments: hush.OAuthWorker)."""

    def __init__(self, conninfo: str, *, window: int = 900, batch_size: int = 100, interval: float = 30.0,
                 lease_seconds: int = 60, keepalive: int | None = None, timeout: float = 10.0,
                 connect_timeout: float = 5.0, concurrency: int = 16, per_host: int = 4,
                 per_tenant: int | None = None, db_connections: int = 4,
                 listen_conninfo: str | None = None, db_lock_timeout: float = LOCK_TIMEOUT,
                 db_statement_timeout: float = STATEMENT_TIMEOUT) -> None:
        per_tenant = max(1, min(per_host, concurrency // 4)) if per_tenant is None else per_tenant
        for name, n in (("concurrency", concurrency), ("per_host", per_host), ("per_tenant", per_tenant),
                        ("db_connections", db_connections)):
            if not 1 <= n <= 1000:
                raise InvalidArgument(f"{name} must be between 1 and 1000")
        for name, t in (("timeout", timeout), ("connect_timeout", connect_timeout),
                        ("db_lock_timeout", db_lock_timeout), ("db_statement_timeout", db_statement_timeout)):
            if not 0 < t <= 600:
                raise InvalidArgument(f"{name} must be more than 0 and at most 600 seconds")
        self.conninfo = conninfo
        self.listen_conninfo = listen_conninfo or conninfo
        self.window = window
        self.batch_size = batch_size
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.keepalive = keepalive
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.concurrency = concurrency
        self.per_host = per_host
        self.per_tenant = per_tenant
        self.db_connections = db_connections
        self.db_lock_timeout = db_lock_timeout
        self.db_statement_timeout = db_statement_timeout
        self.holder = f"worker:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stats: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._db: ConnectionPool[Any] | None = None
        self._calls: tuple[GuardedExecutor, GuardedExecutor] | None = None  # statements; row calls
        self._oauths: dict[str, OAuth] = {}
        self._dispatch: Dispatch | None = None
        self._stores: StoreQueue | None = None
        self._serving = False    # inside run(): a round leaves its work going when it ends
        self._fruitless = False  # the last round's claims all went back (stalled hosts)
        self._empty = False      # the last round claimed nothing at all

    def stop(self) -> None:
        """Start nothing more: give back every lease whose request was not sent, let the
        requests in flight finish and store their results, then return from run()."""
        self._stop.set()
        d = self._dispatch  # no lock: the CLI calls this from a signal handler
        if d is not None:
            d.halt()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _pool(self) -> ConnectionPool[Any]:
        with self._lock:
            if self._db is None:
                self._db = _pool(self.conninfo, "hush-oauth-worker", 1, self.db_connections, 30.0,
                                 connect_kwargs({"application_name": "hush-oauth-worker"}, None), 10.0, {})
            return self._db

    def _executors(self) -> tuple[GuardedExecutor, GuardedExecutor]:
        """Over the pool: the worker's statements (db_lock_timeout), and the calls on one
        connection's row, which wait for no lock (_oauth_db.py)."""
        pool = self._pool()
        with self._lock:
            if self._calls is None or self._calls[0].pool is not pool:
                self._calls = (GuardedExecutor(pool, lock_timeout=self.db_lock_timeout,
                                               statement_timeout=self.db_statement_timeout),
                               GuardedExecutor(pool, lock_timeout=min(ROW_LOCK_TIMEOUT, self.db_lock_timeout),
                                               statement_timeout=self.db_statement_timeout))
            return self._calls

    def _run(self, call: Any) -> Any:
        return self._executors()[0].run([call])[0]

    def _run_row(self, call: Any) -> Any:
        return self._executors()[1].run([call])[0]

    def close(self) -> None:
        """Let the worker's threads end and close its database pool (run() does it on return)."""
        with self._lock:
            d, self._dispatch = self._dispatch, None
            stores, self._stores = self._stores, None
        if d is not None:
            d.close()
        if stores is not None:  # before the pool goes: what it still stores needs it
            stores.close(STORE_SECONDS)
        with self._lock:
            db, self._db = self._db, None
            self._calls = None
        if db is not None:
            db.close()

    def _oauth(self, tenant: str) -> OAuth:
        rows = self._executors()[1]  # its calls are on one connection's row: a renewal, a release
        with self._lock:
            oa = self._oauths.get(tenant)
            if oa is None or oa._write is not rows:
                # One attempt per round: a failure backs off in the database, not in this loop.
                oa = self._oauths[tenant] = OAuth(
                    rows, tenant, writer=rows, lease_seconds=self.lease_seconds, retries=1,
                    timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout))
            return oa

    def _count(self, outcome: str, n: int = 1) -> None:
        with self._lock:
            self.stats[outcome] += n

    def _counts(self) -> Counter[str]:
        with self._lock:
            return Counter(self.stats)

    def claim(self, size: int | None = None) -> list[dict[str, Any]]:
        """Lease up to `size` (default: batch_size) due connections: rows with tenant_id,
        provider, account, generation, expires_at and the lease_token."""
        call = q.worker_claim(self.holder, size or self.batch_size, self.window, self.lease_seconds, self.keepalive)
        batch: list[dict[str, Any]] = self._run(call)
        return batch

    def lease(self, size: int | None = None) -> list[dict[str, Any]]:
        """claim(), each lease opened in the same statement (hush.oauth_worker_lease): its row
        also has `lease` (what the refresh needs; None, with `sqlstate` and `message`, when it
        could not be opened). What rounds take: a refresh then costs the database no call
        before its request."""
        call = q.worker_lease(self.holder, size or self.batch_size, self.window, self.lease_seconds, self.keepalive)
        batch: list[dict[str, Any]] = self._run(call)
        return batch

    def _store(self) -> StoreQueue:
        with self._lock:
            if self._stores is None:
                self._stores = StoreQueue(self._run, run_one=self._run_row)
            return self._stores
