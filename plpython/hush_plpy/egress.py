"""The OAuth egress policy (hush_admin): the hosts hush's client may reach over plain
http, or at an address outside the public internet (loopback, private, link-local,
CGNAT), which it otherwise refuses (python_client/src/hush/_oauth_egress.py).

A tenant's writer chooses its providers' endpoints, and the worker and applications send
refresh tokens and client secrets there from inside the network: where they may go is
not the tenant's to decide. One table for the whole database, hush.oauth_egress, which
only admins change (EXECUTE on hush.oauth_allow_egress / oauth_disallow_egress), each
change audited under tenant '*'; every role that speaks to providers (reader, writer,
OAuth worker, admin) reads it with hush.oauth_egress_policy(). The steps run as
hush_owner (privileged.py), the table's only reader and writer.

An entry is a host name (it applies to URLs naming that host, whatever it resolves to),
an IP address or a CIDR network (to URLs naming an address in it).
"""
from __future__ import annotations

from . import audit, privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

T, BOOL, NM = "pg_catalog.text", "pg_catalog.bool", "pg_catalog.name"
EQ = "OPERATOR(pg_catalog.=)"
OWNER = privileged.OWNER
# The client reads the whole policy every 30 s in every process: it stays small.
MAX_ENTRIES = 1000
MAX_HOST_CHARS = 253  # RFC 1035's longest name
_LABEL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")

ALLOW_SQL = f"""
INSERT INTO hush.oauth_egress AS e (host, allow_http, allow_private, created_by)
SELECT $1, $2, $3, $4
 WHERE EXISTS (SELECT 1 FROM hush.oauth_egress x WHERE x.host {EQ} $1)
    OR (SELECT pg_catalog.count(*) FROM hush.oauth_egress) OPERATOR(pg_catalog.<) $5
ON CONFLICT (host) DO UPDATE
   SET allow_http = EXCLUDED.allow_http, allow_private = EXCLUDED.allow_private,
       created_by = EXCLUDED.created_by, created_at = pg_catalog.now()
RETURNING e.host, e.allow_http, e.allow_private, e.created_by, e.created_at
"""
DISALLOW_SQL = f"DELETE FROM hush.oauth_egress e WHERE e.host {EQ} $1 RETURNING e.host"
POLICY_SQL = """
SELECT e.host, e.allow_http, e.allow_private, e.created_by, e.created_at FROM hush.oauth_egress e ORDER BY e.host
"""


def host(h: Any) -> str:
    """An entry's host in the one form the client compares: a name in lowercase without a
    trailing dot, an address as ipaddress writes it, a network by its first address."""
    if not isinstance(h, str) or not 0 < len(h) <= MAX_HOST_CHARS + 2:
        raise Fail(INVALID_ARGUMENT, "an egress host is a host name, an IP address or a CIDR network, up to %d "
                   "characters" % MAX_HOST_CHARS)
    import ipaddress  # here: only these functions need it
    h = h.lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        if "/" in h:
            return str(ipaddress.ip_network(h, strict=False))
        return str(ipaddress.ip_address(h))
    except ValueError:
        pass
    name = h[:-1] if h.endswith(".") else h
    labels = name.split(".")
    if (name and len(name) <= MAX_HOST_CHARS and ":" not in name and "/" not in name
            and all(0 < len(x) <= 63 and _LABEL.issuperset(x) and x[0] != "-" and x[-1] != "-" for x in labels)
            and not labels[-1].isdigit()):  # 127.1, 0x7f.1: addresses in forms a resolver reads, not names
        return name
    raise Fail(INVALID_ARGUMENT, "egress host %s is not a host name (letters, digits, - and _ in dot-separated "
               "labels, in ASCII: IDNA for others), an IP address or a CIDR network" % validate.show(h))


def _flag(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise Fail(INVALID_ARGUMENT, "%s must be true or false" % what)
    return v


@api
def allow(plpy: Any, h: Any, allow_http: Any, allow_private: Any) -> dict:
    """Set the entry of a host (replacing what it allowed before)."""
    h = host(h)
    allow_http, allow_private = _flag(allow_http, "allow_http"), _flag(allow_private, "allow_private")
    if not (allow_http or allow_private):
        raise Fail(INVALID_ARGUMENT, "an egress entry allows plain http, a non-public address, or both",
                   hint="hush.oauth_disallow_egress(host) removes an entry.")
    return privileged.call(plpy, OWNER, _allow, h, allow_http, allow_private, tenant="*")


@privileged.step(OWNER)
def _allow(plpy: Any, caller: str, h: str, allow_http: bool, allow_private: bool) -> dict:
    rows = plpy.execute(plan(plpy, "egress.allow", ALLOW_SQL, [T, BOOL, BOOL, NM, "pg_catalog.int4"]),
                        [h, allow_http, allow_private, caller, MAX_ENTRIES])
    if not rows:
        raise Fail(INVALID_ARGUMENT, "the egress policy holds %d entries, its limit" % MAX_ENTRIES,
                   hint="Remove some (hush.oauth_disallow_egress), or allow a network (CIDR) in place of addresses.")
    audit.record(plpy, {"caller": caller}, "*", "oauth_egress_allow",
                 detail={"host": h, "allow_http": allow_http, "allow_private": allow_private})
    return rows[0]


@api
def disallow(plpy: Any, h: Any) -> bool:
    """Remove the entry of a host; true when there was one."""
    return privileged.call(plpy, OWNER, _disallow, host(h), tenant="*")


@privileged.step(OWNER)
def _disallow(plpy: Any, caller: str, h: str) -> bool:
    gone = bool(plpy.execute(plan(plpy, "egress.disallow", DISALLOW_SQL, [T]), [h]))
    if gone:
        audit.record(plpy, {"caller": caller}, "*", "oauth_egress_disallow", detail={"host": h})
    return gone


@api
def policy(plpy: Any) -> list:
    """Every entry, by host."""
    return privileged.call(plpy, OWNER, _policy)


@privileged.step(OWNER)
def _policy(plpy: Any, caller: str) -> list:
    return list(plpy.execute(plan(plpy, "egress.policy", POLICY_SQL, [])))
