"""Input checks, run before anything is written. Each raises errors.Fail.

No regular expressions: importing `re` costs a new connection's first call about
7 ms, and these checks run on every call. Sets and str.translate do the same.
"""
from __future__ import annotations


# show: how a refused argument appears in a message (errors.show), under the name callers use.
from .errors import INVALID_ARGUMENT, INVALID_NAME, INVALID_TENANT, VALUE_TOO_LARGE, Fail, show

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

MAX_NAME_CHARS = 255
MAX_DESCRIPTION_CHARS = 4096
MAX_TAGS = 64
MAX_TAG_CHARS = 64
MAX_METADATA_BYTES = 65536
MAX_PER_PAGE = 1000
DEFAULT_MAX_VALUE_BYTES = 65536

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"
_ALNUM = frozenset(_LOWER + _LOWER.upper() + _DIGITS)
_TENANT_REST = _ALNUM | frozenset("_.:@-")
_KIND_REST = frozenset(_LOWER + _DIGITS + "_")
# C0 controls, DEL and C1 controls, deleted by str.translate.
_CONTROLS = dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0)])


def tenant_ok(t: Any) -> bool:
    """A tenant id: 1-63 characters, letters, digits and _ . : @ -, starting with a letter or digit."""
    return (isinstance(t, str) and 0 < len(t) <= 63 and t[0] in _ALNUM
            and _TENANT_REST.issuperset(t))


def kind_ok(k: str) -> bool:
    """A kind: 1-32 characters, lower-case letters, digits and _, starting with a letter."""
    return 0 < len(k) <= 32 and k[0] in _LOWER and _KIND_REST.issuperset(k)


def has_control(s: str) -> bool:
    return len(s.translate(_CONTROLS)) != len(s)


def without_controls(s: str) -> str:
    """Controls replaced by spaces (for text hush stores that came from elsewhere)."""
    return s.translate(dict.fromkeys(_CONTROLS, " "))


# RFC 3986 2.3's unreserved characters: a PKCE code verifier's (RFC 7636 4.1).
UNRESERVED = _ALNUM | frozenset("-._~")
# base64url without padding (RFC 4648 5): what a random value in a cookie or a URL is written in.
BASE64URL = _ALNUM | frozenset("-_")
_SCHEME_REST = _ALNUM | frozenset("+-.")
_LETTERS = frozenset(_LOWER + _LOWER.upper())


def token_ok(s: Any, lo: int, hi: int, alphabet: frozenset) -> bool:
    """Whether s is lo to hi characters, every one of them in alphabet. The length is
    looked at first: a string too long is never scanned."""
    return isinstance(s, str) and lo <= len(s) <= hi and alphabet.issuperset(s)


def short_text(s: Any, what: str, limit: int) -> str:
    """A text hush stores or seals as it came (an OIDC nonce): 1 to limit characters, no
    controls. Never echoed: it may be a secret."""
    if not isinstance(s, str) or not 1 <= len(s) <= limit:
        raise Fail(INVALID_ARGUMENT, "%s is %s; it must be 1 to %d characters" % (
            what, "%d characters" % len(s) if isinstance(s, str) else show(s), limit))
    if has_control(s):
        raise Fail(INVALID_ARGUMENT, "%s must not contain control characters" % what)
    return s


def uri(u: Any, what: str, limit: int) -> str:
    """An absolute URI (RFC 3986 4.3: scheme ":" ...) of at most limit characters, without a
    fragment (RFC 6749 3.1.2: a redirect URI has none), spaces or controls; http and https
    ones with an authority ("//host"). Custom schemes (RFC 8252 7.1: com.example.app:/cb)
    pass. Only its length is shown when refused."""
    if not isinstance(u, str) or not 1 <= len(u) <= limit:
        raise Fail(INVALID_ARGUMENT, "%s is %s; it must be 1 to %d characters" % (
            what, "%d characters" % len(u) if isinstance(u, str) else show(u), limit))
    scheme, colon, rest = u.partition(":")
    ok = (colon and scheme and scheme[0] in _LETTERS and _SCHEME_REST.issuperset(scheme) and rest
          and "#" not in u and " " not in u and not has_control(u))
    if ok and scheme.lower() in ("http", "https"):
        ok = rest.startswith("//") and rest[2:3] not in ("", "/", "?")
    if not ok:
        raise Fail(INVALID_ARGUMENT, "%s must be an absolute URI (scheme:..., and //host for http and https) "
                   "without a fragment, spaces or control characters" % what)
    return u


def tenant(t: Any, allow_all: bool = False) -> str:
    if allow_all and t == "*":
        return t
    if not tenant_ok(t):
        # Not echoed: a value passed in the tenant's place would reach the log.
        raise Fail(INVALID_TENANT, "invalid tenant id (%s)" % (
                       "%d characters" % len(t) if isinstance(t, str) else show(t)),
                   hint="A tenant id is 1-63 characters: letters, digits and _ . : @ -, starting with a letter or digit.")
    return t


def name(n: Any, what: str = "secret name") -> str:
    if n is None or n == "":
        raise Fail(INVALID_NAME, "%s must not be empty" % what)
    if len(n) > MAX_NAME_CHARS:
        raise Fail(INVALID_NAME, "%s is %d characters long; the limit is %d" % (what, len(n), MAX_NAME_CHARS))
    if has_control(n):
        raise Fail(INVALID_NAME, "%s must not contain control characters" % what)
    return n


def value_size(v: Any, limit: int) -> int:
    """A value's size in UTF-8 bytes, checked against the tenant's limit without keeping a
    copy (save_secrets checks every value before it writes anything)."""
    if v is None:
        raise Fail(INVALID_ARGUMENT, "value must not be NULL")
    # str.isascii() is O(1) in CPython; a string longer than the limit in characters is
    # over it in bytes too, and is not copied to be measured.
    if v.isascii():
        size, shown = len(v), "%d" % len(v)
    elif len(v) > limit:
        size, shown = len(v) + 1, "more than %d" % len(v)
    else:
        size = len(v.encode("utf-8"))
        shown = "%d" % size
    if size > limit:
        raise Fail(VALUE_TOO_LARGE, "value is %s bytes of UTF-8; the limit for this tenant is %d" % (shown, limit),
                   hint="An admin can raise it with hush.configure_tenant(tenant, max_value_bytes => ...).")
    return size


def value(v: Any, limit: int) -> bytes:
    value_size(v, limit)
    return v.encode("utf-8")


def kind(k: Any) -> Any:
    if k is not None and not kind_ok(k):
        raise Fail(INVALID_ARGUMENT, "invalid kind %s" % show(k),
                   hint="A kind is 1-32 characters: lower-case letters, digits and _, e.g. generic, api_key, oauth2, basic.")
    return k


def description(d: Any) -> Any:
    if d is not None and len(d) > MAX_DESCRIPTION_CHARS:
        raise Fail(INVALID_ARGUMENT, "description is longer than %d characters" % MAX_DESCRIPTION_CHARS)
    return d


def tags(ts: Any) -> Any:
    if ts is None:
        return None
    if len(ts) > MAX_TAGS:
        raise Fail(INVALID_ARGUMENT, "at most %d tags are allowed" % MAX_TAGS)
    for t in ts:
        if t is None or t == "" or len(t) > MAX_TAG_CHARS or has_control(t):
            raise Fail(INVALID_ARGUMENT, "each tag must be 1-%d characters without control characters" % MAX_TAG_CHARS)
    # Sorted and unique, so equal tag sets compare equal.
    return sorted(set(ts))


def metadata(m: Any) -> Any:
    """m arrives as jsonb text (no transform is used)."""
    if m is None:
        return None
    if len(m) > MAX_METADATA_BYTES or len(m.encode("utf-8")) > MAX_METADATA_BYTES:
        raise Fail(INVALID_ARGUMENT, "metadata is larger than %d bytes" % MAX_METADATA_BYTES)
    import json  # here: most calls carry no metadata
    try:
        parsed = json.loads(m)
    except RecursionError:  # jsonb nests as deep as it likes; Python's parser stops at ~1,000
        raise Fail(INVALID_ARGUMENT, "metadata is nested too deeply") from None
    if not isinstance(parsed, dict):
        raise Fail(INVALID_ARGUMENT, "metadata must be a JSON object")
    return m


def expected_version(v: Any) -> Any:
    if v is not None and v < 0:
        raise Fail(INVALID_ARGUMENT, "expected_version must be 0 (must not exist yet) or a positive version")
    return v


def version(v: Any) -> Any:
    if v is not None and v < 1:
        raise Fail(INVALID_ARGUMENT, "version must be a positive integer")
    return v


MAX_VERSIONS = 10000
MAX_RETENTION = "100 years"  # the longest destroy_versions_after and rotate_every


def max_versions(n: Any) -> Any:
    """A max_versions argument: 0 (none, or on a secret its tenant's) to MAX_VERSIONS."""
    if n is not None and not 0 <= n <= MAX_VERSIONS:
        raise Fail(INVALID_ARGUMENT, "max_versions must be between 0 and %d" % MAX_VERSIONS,
                   hint="0 on a secret follows its tenant's setting; 0 on a tenant keeps every version.")
    return n


# Compared by the server: PL/Python hands an interval over as text in the session's
# IntervalStyle, which the server reads back as it wrote it.
INTERVAL_SQL = ("SELECT $1 OPERATOR(pg_catalog.<) '0'::pg_catalog.interval "
                "OR $1 OPERATOR(pg_catalog.>) $2 AS bad")


def interval(plpy: Any, v: Any, what: str, most: str) -> Any:
    """An interval argument: None, or 0 to `most` (an interval literal); one statement when given."""
    if v is None:
        return None
    from .access import plan  # access imports this module
    p = plan(plpy, "validate.interval", INTERVAL_SQL, ["pg_catalog.interval", "pg_catalog.interval"])
    if plpy.execute(p, [v, most])[0]["bad"]:
        raise Fail(INVALID_ARGUMENT, "%s must be between '0' and '%s'" % (what, most))
    return v


# An expiry clients can decode: years 1 to 9999 (Python's datetime, most languages' date
# types), bounds in UTC so the session's TimeZone does not move them; 'infinity' passes
# (it means "no expiry"). Compared by the server, as INTERVAL_SQL is: PL/Python hands a
# timestamptz over as text in the session's DateStyle.
EXPIRES_SQL = ("SELECT $1 OPERATOR(pg_catalog.<>) 'infinity'::pg_catalog.timestamptz"
               " AND ($1 OPERATOR(pg_catalog.<) '0001-01-01 00:00:00+00'::pg_catalog.timestamptz"
               " OR $1 OPERATOR(pg_catalog.>=) '10000-01-01 00:00:00+00'::pg_catalog.timestamptz) AS bad")


def expires_at(plpy: Any, v: Any) -> Any:
    """An expires_at argument: None, 'infinity' (remove the expiry) or a time in years 1 to
    9999 (UTC); '-infinity' is refused. One statement when given."""
    if v is None:
        return None
    from .access import plan  # access imports this module
    if plpy.execute(plan(plpy, "validate.expires_at", EXPIRES_SQL, ["pg_catalog.timestamptz"]), [v])[0]["bad"]:
        raise Fail(INVALID_ARGUMENT, "expires_at must be between 0001-01-01 and 9999-12-31 (UTC), or 'infinity' "
                   "to remove the expiry",
                   hint="'-infinity' and years past 9999 are not expiries clients can read.")
    return v


def page(p: Any, per_page: Any) -> tuple[int, int]:
    """page starts at 1; per_page is 1..MAX_PER_PAGE (larger values are clamped)."""
    if p is None or p < 1:
        raise Fail(INVALID_ARGUMENT, "page must be 1 or more")
    if per_page is None or per_page < 1:
        raise Fail(INVALID_ARGUMENT, "per_page must be 1 or more")
    return p, min(per_page, MAX_PER_PAGE)

