"""Where hush's OAuth client may send a request: the egress policy an admin keeps in the
database (hush.oauth_allow_egress, read with hush.oauth_egress_policy()), enforced on
every request to a provider, whoever makes it (the library, the CLI, the worker).

A tenant's writer chooses a provider's endpoints, and the worker and applications then
send refresh tokens and client secrets there from inside the network. So:

- https only; plain http only to a host an admin allowed with allow_http.
- No connection to an address outside the public internet (loopback, private, link-local
  with the cloud metadata service, CGNAT, unspecified, multicast, reserved, and IPv4
  addresses of those kinds inside IPv6 transition forms) unless the URL's host is allowed
  with allow_private. Checked on every address the name resolves to, at connect time, and
  the socket goes to the address checked: a name that resolves elsewhere a moment later
  (DNS rebinding) gets nowhere. TLS still verifies the certificate against the name.
- No redirect is followed: a 3xx is refused (it could name any host).
- The connect timeout bounds the whole connection, whatever the name's owner makes its
  DNS answer: resolution included (however slow), and MAX_ADDRESSES addresses tried at
  most (however many it lists).

An entry names what a URL may say: a host name applies to URLs naming that host, whatever
it resolves to; an IP address or a CIDR network to URLs naming an address in it. An entry
for 127.0.0.1 therefore does not let a name that resolves there through.

Refusals raise Refused (host and reason, never the URL: its query may carry a code); the
HTTP layer (_oauth_http.py) turns them into EgressRefused. One refused at connect time
reads, in what is recorded, like any other unreachable provider (no oracle on DNS).
"""
from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Sequence

import httpcore2 as httpcore
import httpx2 as httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network



def _may(flag: str) -> str:
    return f"an admin may allow it: hush.oauth_allow_egress(host, {flag} => true)"

# What Python 3.11's is_global misses: multicast counts as global there, and so do the
# IPv6 forms that carry an IPv4 address (NAT64, 6to4, IPv4-compatible), whose IPv4 part
# decides where the packet goes.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_ULA = ipaddress.ip_network("fc00::/7")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def category(ip: Address) -> str | None:
    """Why an address is not on the public internet ('loopback', 'private', ...), or None."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if isinstance(ip, ipaddress.IPv6Address):
        inner: ipaddress.IPv4Address | None = ip.ipv4_mapped
        if inner is None and any(ip in n for n in _NAT64):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is None and ip in _SIX_TO_FOUR:
            inner = ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
        if inner is None and ip in _V4_COMPATIBLE:
            return "reserved (IPv4-compatible IPv6)"
        if inner is not None:
            found = category(inner)
            if found:
                return f"{found} (inside an IPv6 address)"
            if ip.ipv4_mapped is not None or ip in _NAT64[0]:
                return None  # the public IPv4 address it carries
        if ip in _NAT64[1]:
            return "private (local NAT64)"
    if ip.is_link_local:
        return "link-local (the cloud metadata service lives there)"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT)"
    if isinstance(ip, ipaddress.IPv6Address) and ip in _ULA:
        return "private (ULA)"
    if ip.is_private:
        return "private"
    if ip.is_reserved or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local) or not ip.is_global:
        return "reserved"
    return None


# Pure functions of a host name, asked several times for every request (the URL's check,
# the connection's): remembered, which measurably cut the worker's cost per refresh.
@lru_cache(maxsize=1024)
def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def _network(entry: str) -> Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def normal_host(host: str) -> str:
    """A URL's host as entries are kept: lowercase, no brackets, no trailing dot."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".") if _address(host) is None else host


@dataclass(frozen=True, order=True)
class Rule:
    host: str          # a host name, an IP address or a CIDR network (hush.oauth_egress)
    allow_http: bool
    allow_private: bool


@dataclass(frozen=True)
class EgressPolicy:
    """The rules an admin set; none: https to public addresses only."""
    rules: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, rows: Iterable[Sequence[Any]]) -> EgressPolicy:
        return cls(tuple(sorted(Rule(normal_host(str(h)), bool(http), bool(private)) for h, http, private in rows)))

    def _matching(self, host: str) -> Iterator[Rule]:
        host = normal_host(host)
        ip = _address(host)
        for rule in self.rules:
            if ip is None:
                if rule.host == host:
                    yield rule
            else:
                net = _network(rule.host)
                if net is not None and net.version == ip.version and ip in net:
                    yield rule

    def allows_http(self, host: str) -> bool:
        return any(r.allow_http for r in self._matching(host))

    def allows_private(self, host: str) -> bool:
        return any(r.allow_private for r in self._matching(host))


class Refused(Exception):
    """A request the policy refuses: the host and why, never the URL."""

    def __init__(self, host: str, reason: str, *, at_connect: bool = False, status: int | None = None) -> None:
        super().__init__(f"egress to {host} refused: {reason}")
        self.host = host
        self.reason = reason
        self.at_connect = at_connect
        self.status = status


def check_url(url: str | httpx.URL, policy: EgressPolicy, *, browser: bool = False) -> str:
    """The URL's host, if the policy lets a request go there; else Refused. `browser`: a URL
    the user's browser opens (the authorization endpoint), whose scheme alone is checked."""
    try:
        u = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise Refused("(unreadable URL)", "the URL cannot be parsed") from None
    host = normal_host(u.raw_host.decode("ascii"))  # what the connection is made to (IDNA)
    if not host:
        raise Refused("(none)", "the URL names no host")
    if u.userinfo:
        raise Refused(host, "the URL carries credentials (user:password@)")
    if u.scheme == "http":
        if not policy.allows_http(host):
            raise Refused(host, f"plain http; endpoints must be https ({_may('allow_http')})")
    elif u.scheme != "https":
        raise Refused(host, f"scheme {u.scheme!r}; endpoints must be https")
    ip = _address(host)
    found = category(ip) if ip is not None else None
    if not browser and found and not policy.allows_private(host):
        raise Refused(host, f"a {found} address ({_may('allow_private')})")
    return host


# Addresses of one name tried at most: the name's owner (a tenant's writer chooses the
# endpoint) decides how many there are, and each one tried costs the worker a thread.
MAX_ADDRESSES = 4
Resolve = Callable[[str, int], Sequence[Any]]  # socket.getaddrinfo's answer for (host, port)


def _getaddrinfo(host: str, port: int) -> Sequence[Any]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)


def resolve_within(resolve: Resolve, host: str, port: int, timeout: float | None) -> Sequence[Any]:
    """resolve(host, port), given up after `timeout` seconds (httpcore.ConnectTimeout).
    getaddrinfo cannot be interrupted: it runs in a daemon thread of its own, left behind
    at the deadline to end when the system resolver gives up (resolv.conf's timeout and
    attempts). That idle thread is what a slow name costs, for that long: never a worker
    thread or slot. An IP address is resolved on the spot."""
    if timeout is None or _address(host) is not None:
        return resolve(host, port)
    box: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(resolve(host, port))
        except BaseException as e:  # handed over to the waiting caller
            box.append(e)
        done.set()
    threading.Thread(target=run, name="hush-resolve", daemon=True).start()
    if not done.wait(max(0.0, timeout)):
        raise httpcore.ConnectTimeout("name resolution timed out")
    if isinstance(box[0], BaseException):
        raise box[0]
    found: Sequence[Any] = box[0]
    return found


class _VettingBackend(httpcore.NetworkBackend):
    """httpcore's own sync backend, connecting only to addresses the policy admits: the name
    is resolved here, every address checked, and the socket opened to one of those.

    The connect timeout is one deadline for all of it: the name's resolution, and the first
    MAX_ADDRESSES addresses tried in turn, each with an equal share of what is left (a dead
    first address does not use up the others' time). Per address, a name with many dead
    ones held a request (and a worker's thread and slot) that many timeouts; and a name
    whose DNS answered slowly held it without limit (getaddrinfo has no timeout).
    `resolve`: what resolves a name (socket.getaddrinfo's answer), for tests."""

    def __init__(self, policy: EgressPolicy, resolve: Resolve | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.inner = httpcore.SyncBackend()
        self.resolve = resolve or _getaddrinfo
        self.clock = clock

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        name = normal_host(host)
        deadline = None if timeout is None else self.clock() + timeout
        try:
            found = resolve_within(self.resolve, name, port, timeout)
        except (OSError, UnicodeError):
            raise httpcore.ConnectError("name resolution failed") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        if not self.policy.allows_private(name):
            for a in addresses:
                ip = _address(a.split("%", 1)[0])
                why = "an address that cannot be read" if ip is None else category(ip)
                if why:  # one bad address refuses the name: no choosing among what DNS hands out
                    raise Refused(name, f"it resolves to a {why} address ({_may('allow_private')})",
                                  at_connect=True)
        failure: Exception = httpcore.ConnectError("no address")
        tried = addresses[:MAX_ADDRESSES]
        for i, a in enumerate(tried):
            share = None
            if deadline is not None:
                left = deadline - self.clock()
                if left <= 0:
                    raise httpcore.ConnectTimeout("connect timed out")
                share = left / (len(tried) - i)
            try:
                return self.inner.connect_tcp(a, port, timeout=share, local_address=local_address,
                                              socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                failure = e
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise Refused("(unix socket)", "only TCP")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class EgressTransport(httpx.BaseTransport):
    """httpx's transport (its pool, its TLS) under one policy: every request's URL checked,
    every connection vetted (_VettingBackend), every redirect refused."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpx.HTTPTransport()  # builds the SSL context (~50 ms): one per policy and process
        pool = getattr(self.inner, "_pool", None)
        if not isinstance(pool, httpcore.ConnectionPool) or not hasattr(pool, "_network_backend"):
            # Fail closed: an httpx2 that builds its pool otherwise would connect unchecked.
            raise RuntimeError("hush cannot vet connections with this httpx2/httpcore2 release")
        pool._network_backend = _VettingBackend(policy)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = check_url(request.url, self.policy)
        response = self.inner.handle_request(request)
        if 300 <= response.status_code < 400:
            response.close()
            raise Refused(host, f"it answered with a redirect (HTTP {response.status_code}), which hush does not "
                          "follow", status=response.status_code)
        return response

    def close(self) -> None:
        self.inner.close()


# One transport per policy and process: building one builds an SSL context (~50 ms here),
# and its pool keeps connections to a provider alive between refreshes. Not shared across
# policies: a connection opened under one must not serve a request made under another.
MAX_TRANSPORTS = 8
_transports: dict[tuple[int, EgressPolicy], EgressTransport] = {}
_lock = threading.Lock()


def transport(policy: EgressPolicy) -> EgressTransport:
    key = (os.getpid(), policy)
    with _lock:
        found = _transports.get(key)
        if found is None:
            for old in [k for k in _transports if k[0] != key[0]]:  # a forked child builds its own
                del _transports[old]
            while len(_transports) >= MAX_TRANSPORTS:  # the oldest policy; requests in flight keep theirs
                del _transports[next(iter(_transports))]
            found = _transports[key] = EgressTransport(policy)
        return found


class EgressCache:
    """The policy as last read from the database, kept `ttl` seconds: an admin's change
    reaches running processes within that long."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._policy: EgressPolicy | None = None
        self._at = 0.0

    def get(self, fetch: Callable[[], EgressPolicy]) -> EgressPolicy:
        with self._lock:
            if self._policy is not None and time.monotonic() - self._at < self.ttl:
                return self._policy
        policy = fetch()
        with self._lock:
            self._policy, self._at = policy, time.monotonic()
        return policy
