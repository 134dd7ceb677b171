"""The sync side of hush.aio.OAuth: a pool of worker threads, and sync psycopg pools of
hush's own, opened with the async pools' connection parameters on first use.

hush.OAuth is sync (its HTTP, its lease polling, its retries' sleeps); hush.aio.OAuth
runs each of its methods in one of these threads, so the event loop never waits on a
provider or the database. Its own pools, not the async ones: a thread cannot use an
AsyncConnection, and token state commits on hush's own connection anyway, never in
the caller's transaction. No authlib here: hush.aio.AsyncClient makes one of these, idle, whether or
not OAuth is ever used.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ._exec import Executor, PoolExecutor

R = TypeVar("R")
DEFAULT_THREADS = 8


def sync_pool(conninfo: Any, kwargs: Any, size: int, timeout: float, name: str) -> ConnectionPool[Any]:
    """A sync pool with these parameters: no connection until a thread asks (min_size 0), at most
    one per thread; autocommit, each call committing on its own."""
    if not isinstance(conninfo, str):
        raise TypeError(f"hush.aio.OAuth cannot open a sync twin of a pool whose conninfo is a "
                        f"{type(conninfo).__name__}; pass writer=... (a DSN or a psycopg_pool ConnectionPool)")
    return ConnectionPool(conninfo, kwargs={**(kwargs or {}), "autocommit": True}, min_size=0, max_size=size,
                          timeout=timeout, name=name, open=True, num_workers=1)


def twin(pool: AsyncConnectionPool[Any], size: int) -> ConnectionPool[Any]:
    return sync_pool(pool.conninfo, pool.kwargs, size, pool.timeout, f"{pool.name}-oauth")


class SyncSide:
    """Threads and the sync executor they run hush.OAuth over, both made on first use.

    `make` builds the executor (in a worker thread: opening a pool starts threads) and
    returns it with the pools to close. close() waits for the calls in flight, so a refresh
    that has claimed its lease stores its tokens and frees it before the pools close."""

    def __init__(self, make: Callable[[], tuple[Executor, list[ConnectionPool[Any]]]],
                 threads: int = DEFAULT_THREADS) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self._make = make
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._executor: Executor | None = None
        self._owned: list[ConnectionPool[Any]] = []
        self._closed = False

    def executor(self) -> Executor:
        """The sync executor (called in a worker thread)."""
        with self._lock:
            if self._executor is None:
                self._executor, self._owned = self._make()
            return self._executor

    async def run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """fn(*args, **kwargs) in a worker thread, with the caller's context variables. A
        cancelled await drops a call that has not started; one that has goes on to its end in
        its thread (its result discarded): a refresh under way stores or releases its lease."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this hush.aio OAuth is closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hush-oauth")
            pool = self._pool
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(pool, call)

    def _shutdown(self) -> None:
        with self._lock:
            self._closed = True
            pool, owned = self._pool, self._owned
        if pool is not None:
            pool.shutdown(wait=True)  # the calls in flight end first
        for p in owned:
            p.close()

    async def close(self) -> None:
        """Wait for the calls in flight (in a thread of its own), then close the pools hush opened."""
        await asyncio.to_thread(self._shutdown)


def side_for(exec: Any, threads: int = DEFAULT_THREADS) -> SyncSide:
    """The sync side of hush.aio's pool executor (the client's, or one over your pool): the same
    DSN and kwargs, reads to a twin of the read pool if there is one, as in hush.Client."""
    def make() -> tuple[Executor, list[ConnectionPool[Any]]]:
        pools = [twin(exec.pool, threads)] + ([twin(exec.read_pool, threads)] if exec.read_pool is not None else [])
        return PoolExecutor(pools[0], pools[1] if len(pools) > 1 else None, exec.prepare), pools
    return SyncSide(make, threads)


def side_over(conninfo: str | ConnectionPool[Any], threads: int = DEFAULT_THREADS,
              kwargs: dict[str, Any] | None = None) -> SyncSide:
    """A sync side over a DSN (a pool hush opens and closes) or your sync pool (used, not closed)."""
    def make() -> tuple[Executor, list[ConnectionPool[Any]]]:
        if isinstance(conninfo, ConnectionPool):
            return PoolExecutor(conninfo), []
        pool = sync_pool(conninfo, kwargs, threads, 30.0, "hush-aio-oauth")
        return PoolExecutor(pool), [pool]
    return SyncSide(make, threads)
