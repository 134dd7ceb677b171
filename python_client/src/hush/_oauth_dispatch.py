"""The OAuth worker's scheduler: which leased connection goes next, on which thread.

A job is one connection the worker has leased (hush.oauth_worker_claim). Its
"host" below is what `open` returns: the worker gives the tenant and its
provider's token endpoint's scheme, host and port, so that slots and stalls are
a tenant's own (a tenant naming another's provider host, with a port or scheme
of its own, shares nothing with it). That is known only once its lease is
opened (the claim that returns the refresh token and the provider's settings),
so a job goes through the steps below. A job whose lease came opened with its claim (hush.oauth_worker_lease,
what the worker's rounds take: `opened`) starts at its host's queue, ready to
send:

- open: a database call, no HTTP, holding no slot. The first connection of a
  (tenant, provider) is opened alone; the host found is remembered and the
  pair's other connections queue at that host. A host's queued connections are
  opened ahead of their turn, `per_host` at most, so a freed slot is refilled at
  once (and a host that never answers gets no more of them opened).
- send: the refresh request. It holds one of its host's `per_host` slots and one
  of its tenant's `per_tenant` from the moment it is sent until the provider has
  answered (or failed); the result is stored after that, on the same thread,
  holding no slot. A job that finds its host or tenant full waits in the host's
  queue holding no thread, and the threads serve other hosts (round robin
  across hosts, claim order within one). A provider that never answers holds
  `per_host` threads; a tenant whose many hosts never answer, `per_tenant`.
- A host (or tenant) is stalled while all its slots are taken and its oldest
  request has run longer than `stall_after` seconds (a tarpit, an outage). Its
  queue then keeps `per_host` (`per_tenant`) jobs, enough to refill its slots
  as they time out; the rest go back at once, unused, and what a stalled host
  keeps does not count as work on hand, so it never stops the worker claiming
  other tenants' connections.
- No job waits past the time it could still start with its whole request inside
  its lease (or, for leases shorter than a request may take, half the lease): it
  goes back unused instead of holding a lease idle until it runs out.
- stop(): nothing more starts; every job not sent goes back at once (one being
  opened goes back from its thread once opened); requests in flight finish and
  their senders store the result. Those are never given back early: the
  provider may already have rotated the refresh token they presented.

Jobs are given back through `release` (by the thread that decided it, or the
caller of add(), tick() and stop()); `open`, `send` and `release` record their
outcomes themselves.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from typing import Any, Callable, Iterable

log = logging.getLogger("hush.oauth_worker")


class Job:
    """One leased connection: the worker's claim row, by when it must start, the host of its
    provider once known, and its opened lease (set by the worker's open)."""

    __slots__ = ("row", "start_by", "host", "lease")

    def __init__(self, row: dict[str, Any], start_by: float) -> None:
        self.row = row
        self.start_by = start_by
        self.host: str | None = None
        self.lease: dict[str, Any] | None = None

    @property
    def tenant(self) -> str:
        return str(self.row["tenant_id"])

    @property
    def pair(self) -> tuple[str, str]:
        return str(self.row["tenant_id"]), str(self.row["provider"])

    def __repr__(self) -> str:  # no lease token, no refresh token
        return f"Job({self.row['tenant_id']}/{self.row['provider']}/{self.row['account']})"


Open = Callable[[Job], "str | None"]  # the provider's host; None when there is nothing to send (done)
Send = Callable[[Job, Callable[[], None]], None]  # calls its second argument once the provider answered
Release = Callable[[Job], None]
# For a job whose lease came opened with its claim: sets job.lease, returns its host (no
# database call: it runs on the caller's thread); None when the job still needs `open`.
Opened = Callable[[Job], "str | None"]


class Dispatch:
    def __init__(self, open_: Open, send: Send, release: Release, *, concurrency: int, per_host: int,
                 per_tenant: int, lease_seconds: float, request_seconds: float, stall_after: float,
                 clock: Callable[[], float] = time.monotonic, opened: Opened | None = None) -> None:
        self._open, self._send, self._release, self._opened = open_, send, release, opened
        self.concurrency, self.per_host, self.per_tenant = concurrency, per_host, per_tenant
        # How long after its claim a job may still start: its request's whole timeout inside
        # the lease, or half the lease when the lease is shorter than that.
        self.start_within = max(lease_seconds - request_seconds, lease_seconds / 2)
        self.stall_after = stall_after
        self.clock = clock
        # One lock, two conditions: the threads wait for work on _cond and are woken one at
        # a time (a thread that takes a job wakes the next while work remains), the caller
        # waits on _ended. Waking every thread on every event made 16 threads contend for
        # the GIL with the requests they serve.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._ended = threading.Condition(lock)
        self._fresh: deque[Job] = deque()               # host not known yet, unopened
        self._learning: set[tuple[str, str]] = set()    # pairs one of whose jobs is being opened
        self._hosts: dict[tuple[str, str], str] = {}    # (tenant, provider) -> host, as last seen
        self._waiting: dict[str, deque[Job]] = {}       # host -> jobs not sent; dict order = turn
        self._opening: Counter[str] = Counter()         # host -> its queued jobs being opened
        self._ready: Counter[str] = Counter()           # host -> opened jobs in its queue (at its front)
        self._flight: dict[Job, float] = {}             # sent, not answered yet -> since
        self._host_n: Counter[str] = Counter()
        self._tenant_n: Counter[str] = Counter()
        self._busy = 0
        self._stopping = False
        self._closing = False
        self._threads = [threading.Thread(target=self._serve, name=f"hush-oauth-worker-{i}", daemon=True)
                         for i in range(concurrency)]
        for t in self._threads:
            t.start()

    # -- the caller's side (the worker's claiming loop) ---------------------------------

    def add(self, rows: Iterable[dict[str, Any]]) -> int:
        """Queue freshly claimed rows; returns how many of them were kept (the others went back
        at once: their host or tenant is stalled and already has its queue)."""
        now = self.clock()
        new = [Job(row, now + self.start_within) for row in rows]
        ready = [self._opened(job) if self._opened is not None else None for job in new]
        with self._cond:
            for job, host in zip(new, ready):
                if host is not None:  # opened already: behind its host's opened jobs, ready to send
                    job.host = self._hosts[job.pair] = host
                    queue = self._waiting.setdefault(host, deque())
                    queue.insert(self._ready[host], job)
                    self._ready[host] += 1
                    continue
                job.host = self._hosts.get(job.pair)
                if job.host is None:
                    self._fresh.append(job)
                else:
                    self._waiting.setdefault(job.host, deque()).append(job)
            back = self._trim(now)
            self._cond.notify(len(new))
        self._give_back(back)
        gone = set(map(id, back))
        return sum(1 for job in new if id(job) not in gone)

    def tick(self) -> int:
        """Give back what waited too long or queues at a stalled host; returns how many."""
        with self._cond:
            back = self._trim(self.clock())
        self._give_back(back)
        return len(back)

    def on_hand(self) -> int:
        """Jobs not sent yet that count as work on hand: what a stalled host or tenant keeps
        queued does not (it is not what stops the worker from claiming more)."""
        with self._cond:
            stalled_hosts, stalled_tenants = self._stalled(self.clock())
            return len(self._fresh) + len(self._learning) + sum(self._opening.values()) + sum(
                1 for host, queue in self._waiting.items() if host not in stalled_hosts
                for job in queue if job.tenant not in stalled_tenants)

    def idle(self) -> bool:
        """Nothing queued, nothing being opened, sent or stored."""
        with self._cond:
            return not (self._fresh or self._waiting or self._busy)

    def wait(self, timeout: float) -> None:
        """Until a job ends (or one is given back from a thread), at most `timeout` seconds."""
        with self._cond:
            self._ended.wait(timeout)

    def halt(self) -> None:
        """Start nothing more, from now on (the worker's stop(), maybe in a signal handler:
        no database call here; stop() gives the jobs back)."""
        self._stopping = True
        with self._cond:
            self._cond.notify_all()
            self._ended.notify_all()

    def stop(self) -> int:
        """Start nothing more; give back every job not sent; returns how many went back here."""
        with self._cond:
            self._stopping = True
            back = list(self._fresh) + [job for queue in self._waiting.values() for job in queue]
            self._fresh.clear()
            self._waiting.clear()
            self._ready.clear()
            self._cond.notify_all()
            self._ended.notify_all()
        self._give_back(back)
        return len(back)

    def drain(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the threads to finish what they hold; returns how
        many are still busy (requests that outlived it: their leases run out on their own)."""
        deadline = self.clock() + timeout
        with self._cond:
            while self._busy and self.clock() < deadline:
                self._ended.wait(min(1.0, max(0.0, deadline - self.clock())))
            return self._busy

    def close(self) -> None:
        """Let the threads end once they have nothing to do (threads still in a request are
        daemons: they end with it, or with the process)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            busy = self._busy
        if not busy:
            for t in self._threads:
                t.join(timeout=5)

    # -- scheduling, under the lock ---------------------------------------------------------

    def _stalled(self, now: float) -> tuple[set[str], set[str]]:
        oldest_host: dict[str, float] = {}
        oldest_tenant: dict[str, float] = {}
        for job, since in self._flight.items():
            assert job.host is not None
            oldest_host[job.host] = min(since, oldest_host.get(job.host, since))
            oldest_tenant[job.tenant] = min(since, oldest_tenant.get(job.tenant, since))
        late = now - self.stall_after
        return ({h for h, since in oldest_host.items() if self._host_n[h] >= self.per_host and since < late},
                {t for t, since in oldest_tenant.items() if self._tenant_n[t] >= self.per_tenant and since < late})

    def _trim(self, now: float) -> list[Job]:
        stalled_hosts, stalled_tenants = self._stalled(now)
        back = [job for job in self._fresh if job.start_by < now]
        if back:
            self._fresh = deque(job for job in self._fresh if job.start_by >= now)
        kept_of: Counter[str] = Counter()
        for host in list(self._waiting):
            keep: deque[Job] = deque()
            for i, job in enumerate(self._waiting[host]):
                blocked_by_tenant = job.tenant in stalled_tenants
                if job.start_by < now or (host in stalled_hosts and i >= self.per_host) or (
                        blocked_by_tenant and kept_of[job.tenant] >= self.per_tenant):
                    back.append(job)
                    continue
                kept_of[job.tenant] += blocked_by_tenant
                keep.append(job)
            self._ready[host] = sum(1 for job in keep if job.lease is not None)
            if keep:
                self._waiting[host] = keep
            else:
                del self._waiting[host]
        return back

    def _room(self, host: str, tenant: str) -> bool:
        return self._host_n[host] < self.per_host and self._tenant_n[tenant] < self.per_tenant

    def _reserve(self, job: Job) -> None:
        assert job.host is not None
        self._host_n[job.host] += 1
        self._tenant_n[job.tenant] += 1
        self._flight[job] = self.clock()

    def _unreserve(self, job: Job) -> None:
        if self._flight.pop(job, None) is not None:
            assert job.host is not None
            self._host_n[job.host] -= 1
            self._tenant_n[job.tenant] -= 1

    def _queue(self, job: Job) -> None:
        """An opened job back into its host's queue, ahead of the jobs claimed after it."""
        assert job.host is not None
        self._waiting.setdefault(job.host, deque()).appendleft(job)
        self._ready[job.host] += 1

    def _turn(self, host: str, queue: deque[Job], i: int) -> Job:
        """Job i of the host's queue, out of it; the host's next turn comes after every other's."""
        job = queue[i]
        del queue[i]
        self._ready[host] -= job.lease is not None
        del self._waiting[host]
        if queue:
            self._waiting[host] = queue
        return job

    def _learn(self, pair: tuple[str, str], host: str) -> None:
        self._hosts[pair] = host
        if any(job.pair == pair for job in self._fresh):
            queue = self._waiting.setdefault(host, deque())
            rest: deque[Job] = deque()
            for job in self._fresh:
                if job.pair == pair:
                    job.host = host
                    queue.append(job)
                else:
                    rest.append(job)
            self._fresh = rest

    def _take(self) -> tuple[str, Job] | None:
        if self._stopping:
            return None
        for host, queue in self._waiting.items():  # an opened job whose host and tenant have room
            if self._ready[host] and self._host_n[host] < self.per_host:
                for i, job in enumerate(queue):
                    if job.lease is None:  # the opened ones are at the front
                        break
                    if self._tenant_n[job.tenant] < self.per_tenant:
                        job = self._turn(host, queue, i)
                        self._reserve(job)
                        return "send", job
        for host, queue in self._waiting.items():  # open ahead, up to per_host opened per host
            if self._ready[host] + self._opening[host] < self.per_host and len(queue) > self._ready[host]:
                for i, job in enumerate(queue):
                    if job.lease is None:
                        job = self._turn(host, queue, i)
                        self._opening[host] += 1
                        return "open", job
        for i, job in enumerate(self._fresh):  # a pair whose host is not known yet, one at a time
            if job.pair not in self._learning:
                del self._fresh[i]
                self._learning.add(job.pair)
                return "open", job
        return None

    def _takeable(self) -> bool:
        """Whether _take would find a job now (nothing taken)."""
        if self._stopping:
            return False
        for host, queue in self._waiting.items():
            if self._ready[host] and self._host_n[host] < self.per_host:
                for job in queue:
                    if job.lease is None:
                        break
                    if self._tenant_n[job.tenant] < self.per_tenant:
                        return True
            if self._ready[host] + self._opening[host] < self.per_host and len(queue) > self._ready[host]:
                return True
        return any(job.pair not in self._learning for job in self._fresh)

    # -- the threads --------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._cond:
                while (got := self._take()) is None:
                    if self._closing:
                        return
                    self._cond.wait()
                self._busy += 1
                if self._takeable():  # more to do: the next thread takes it
                    self._cond.notify()
            kind, job = got
            try:
                if kind == "open":
                    self._opening_one(job)
                else:
                    self._sending(job)
            except Exception:  # the callbacks record their own outcomes: this is a bug, not a refresh
                log.exception("the refresh of %r failed unexpectedly; its lease runs out", job)
            finally:
                with self._cond:
                    self._busy -= 1  # this thread looks for more itself, next
                    # The caller's loop claims more once little is left: it need not wake for each job.
                    if not self._busy or len(self._fresh) + sum(map(len, self._waiting.values())) <= self.concurrency:
                        self._ended.notify_all()

    def _opening_one(self, job: Job) -> None:
        """Open a job; send it at once if its host and tenant have room, else queue it opened."""
        learning, queued_at = job.host is None, job.host
        try:
            host = self._open(job)
        finally:
            with self._cond:
                if learning:
                    self._learning.discard(job.pair)
                else:
                    assert queued_at is not None
                    self._opening[queued_at] -= 1
                if self._takeable():
                    self._cond.notify()
        with self._cond:
            if host is None:
                return
            if learning or host != queued_at:  # learnt, or the provider's token endpoint moved
                self._learn(job.pair, host)
                if self._takeable():  # the pair's other jobs queue at the host now
                    self._cond.notify()
            job.host = host
            if self._stopping:
                send = False
            elif self._room(host, job.tenant):
                self._reserve(job)
                send = True
            else:
                self._queue(job)
                return
        if send:
            self._sending(job)
        else:
            self._release(job)

    def _sending(self, job: Job) -> None:
        """Send a job that holds a slot of its host and tenant; the slot is freed once the
        provider has answered (or the request failed), by the thread that holds it."""
        done = threading.Event()

        def answered() -> None:
            if not done.is_set():
                done.set()
                with self._cond:
                    self._unreserve(job)
                    if self._takeable():
                        self._cond.notify()
        try:
            with self._cond:
                stopping = self._stopping
            if stopping:  # not sent: back at once
                answered()
                self._release(job)
                return
            self._send(job, answered)
        finally:
            answered()

    def _give_back(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._release(job)
