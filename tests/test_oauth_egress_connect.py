"""The connect timeout bounds a whole connection to a provider (_oauth_egress.py), whatever
the name's owner makes its DNS answer: a tenant's writer chooses the endpoint, and its
DNS decides how many addresses a name has and how slowly they come. Per address, six dead
ones held a request (and a worker's thread and slot) six connect timeouts; a slow answer
held it without limit (getaddrinfo has no timeout). Unit tests of the vetting backend
with a resolver and a connector of the test's, and one through httpx with a real socket
whose accept queue is full (its SYNs are dropped: a dead address)."""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterator

import httpcore2 as httpcore
import httpx2 as httpx
import pytest

import hush
import hush._oauth_egress as eg

POLICY = eg.EgressPolicy((eg.Rule("tarpit.test", True, True), eg.Rule("slow.test", True, True)))


def answer(*addresses: str, port: int = 443) -> list[Any]:
    """getaddrinfo's answer naming these addresses."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]


class DeadAddresses:
    """A connector whose every address is dead: each attempt waits out the time it is given."""

    def __init__(self) -> None:
        self.tried: list[tuple[str, float | None]] = []

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **_: Any) -> Any:
        self.tried.append((host, timeout))
        time.sleep(timeout or 0)
        raise httpcore.ConnectTimeout("timed out")


def backend(resolve: eg.Resolve, inner: Any = None) -> eg._VettingBackend:
    b = eg._VettingBackend(POLICY, resolve=resolve)
    if inner is not None:
        b.inner = inner
    return b


def test_many_dead_addresses_end_within_one_connect_timeout() -> None:
    """Six addresses, all dead, one second to connect: four are tried (MAX_ADDRESSES), each
    with a share of what is left, and the attempt ends within the second."""
    dead = DeadAddresses()
    b = backend(lambda host, port: answer(*(f"10.0.0.{i}" for i in range(1, 7))), dead)
    began = time.monotonic()
    with pytest.raises(httpcore.ConnectTimeout):
        b.connect_tcp("tarpit.test", 443, timeout=1.0)
    took = time.monotonic() - began
    assert [h for h, _ in dead.tried] == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert sum(t or 0 for _, t in dead.tried) <= 1.0 + 1e-6 and dead.tried[0][1] == pytest.approx(0.25, abs=0.05)
    assert took < 1.5


def test_one_address_gets_the_whole_timeout_and_a_refused_one_leaves_its_share_to_the_next() -> None:
    calls: list[tuple[str, float | None]] = []

    class Refusing:
        def connect_tcp(self, host: str, port: int, timeout: float | None = None, **_: Any) -> Any:
            calls.append((host, timeout))
            if host == "10.0.0.1":
                raise httpcore.ConnectError("refused")  # at once
            return "stream"

    assert backend(lambda h, p: answer("10.0.0.2"), Refusing()).connect_tcp("tarpit.test", 443, timeout=2.0) \
        == "stream"
    assert calls[-1][1] == pytest.approx(2.0, abs=0.05)
    calls.clear()
    assert backend(lambda h, p: answer("10.0.0.1", "10.0.0.2"), Refusing()).connect_tcp(
        "tarpit.test", 443, timeout=2.0) == "stream"
    assert calls[0][1] == pytest.approx(1.0, abs=0.05) and calls[1][1] == pytest.approx(2.0, abs=0.05)


def test_every_address_is_vetted_even_past_those_tried() -> None:
    """The cap is on addresses tried, never on those checked: one the policy refuses, listed
    last, refuses the name (for a host without allow_private)."""
    policy = eg.EgressPolicy((eg.Rule("public.test", True, False),))
    b = eg._VettingBackend(policy, resolve=lambda h, p: answer("93.184.216.34", "93.184.216.35", "93.184.216.36",
                                                               "93.184.216.37", "93.184.216.38", "127.0.0.1"))
    b.inner = DeadAddresses()
    with pytest.raises(eg.Refused) as refused:
        b.connect_tcp("public.test", 443, timeout=1.0)
    assert refused.value.at_connect and b.inner.tried == []


@pytest.fixture
def slow_dns() -> Iterator[tuple[threading.Event, threading.Event]]:
    """A resolver that answers once `release` is set; `returned` is set when it has."""
    release, returned = threading.Event(), threading.Event()
    yield release, returned
    release.set()


def test_a_slow_resolver_is_abandoned_at_the_deadline(slow_dns: tuple[threading.Event, threading.Event]) -> None:
    """A name whose DNS does not answer: the connection fails at its connect timeout with
    ConnectTimeout while the resolution is still under way (left to a thread of its own),
    and nothing is tried."""
    release, returned = slow_dns

    def resolve(host: str, port: int) -> list[Any]:
        release.wait(30)
        returned.set()
        return answer("10.0.0.1")

    dead = DeadAddresses()
    with pytest.raises(httpcore.ConnectTimeout):
        backend(resolve, dead).connect_tcp("slow.test", 443, timeout=0.3)
    assert not returned.is_set() and dead.tried == []  # given up while it still resolved
    release.set()
    assert returned.wait(5)


def test_a_resolver_failure_reads_as_name_resolution_failed() -> None:
    def resolve(host: str, port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(httpcore.ConnectError, match="name resolution failed"):
        backend(resolve, DeadAddresses()).connect_tcp("slow.test", 443, timeout=1.0)


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port whose accept queue is full: further SYNs to it are dropped, so a
    connection to it (at any 127.0.0.x) hangs as to a dead address."""
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fill = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(s)
    time.sleep(0.2)
    try:
        yield port
    finally:
        for s in fill:
            s.close()
        listener.close()


def test_six_dead_addresses_through_httpx_hold_a_request_one_connect_timeout(
        blackhole: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reproduction: a name with six addresses that never answer a SYN, a one-second
    connect timeout. The request used to take six seconds; it fails with a connect timeout
    within about one."""
    real = socket.getaddrinfo

    def fake(host: Any, *a: Any, **k: Any) -> Any:
        if host == "tarpit.test":
            return answer(*(f"127.0.0.{i}" for i in range(2, 8)), port=blackhole)
        return real(host, *a, **k)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    client = httpx.Client(transport=eg.EgressTransport(POLICY), timeout=httpx.Timeout(10, connect=1.0))
    began = time.monotonic()
    with pytest.raises(httpx.ConnectTimeout):
        client.post(f"http://tarpit.test:{blackhole}/token", data={"a": "b"})
    assert time.monotonic() - began < 2.0


def test_the_worker_defaults_leave_room_beside_three_tenants_that_never_answer() -> None:
    """per_tenant defaults to per_host and at most a quarter of the threads: three tenants
    whose providers never answer hold 12 of 16, never all; it stays as given when given."""
    assert hush.OAuthWorker("host=/nonexistent").per_tenant == 4
    assert hush.OAuthWorker("host=/nonexistent", concurrency=8).per_tenant == 2
    assert hush.OAuthWorker("host=/nonexistent", concurrency=2).per_tenant == 1
    assert hush.OAuthWorker("host=/nonexistent", per_tenant=9).per_tenant == 9
