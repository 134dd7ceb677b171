"""What may be said about a DSN that failed: libpq's reason, without the password.

libpq's messages quote what they could not parse ('missing "=" after "..."') and the
hosts they could not reach, and a password with a space or an unencoded '@' in it ends
up in exactly those places; so quoted fragments of a parse error are never repeated,
and the DSN's password and a URL's user-info are cut out of every other reason."""
from __future__ import annotations

import difflib
import re
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ._errors import InvalidArgument

_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def _is_url(conninfo: str) -> bool:
    return conninfo.startswith(("postgresql://", "postgres://"))


def check(conninfo: str) -> None:
    """Refuse a URL whose user-info holds an unencoded '@': libpq would take the rest of
    the password for the host, and show it in its error."""
    if _is_url(conninfo) and urlsplit(conninfo).netloc.count("@") > 1:
        raise InvalidArgument("the DSN URL has more than one '@' before its host: percent-encode an '@' in the "
                              "user name or password as %40")


def _secrets(conninfo: str) -> list[str]:
    found = []
    if _is_url(conninfo):
        userinfo = urlsplit(conninfo).netloc.rpartition("@")[0]
        found += [userinfo, *userinfo.split(":", 1)[1:]]
    try:
        password = conninfo_to_dict(conninfo).get("password")
    except psycopg.Error:
        password = None
    if password:
        found.append(str(password))
    return sorted((s for s in found if s), key=len, reverse=True)


_UNKNOWN_OPTION = re.compile(r'invalid connection option "([^"]*)"')


def _typo(text: str) -> str | None:
    """'invalid connection option "hots"' for a near miss of a libpq keyword (a typo, worth
    showing with its correction); None for anything else, which may be part of a password."""
    m = _UNKNOWN_OPTION.search(text)
    if m is None:
        return None
    keywords = [d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults()]
    near = difflib.get_close_matches(m.group(1), keywords, n=1, cutoff=0.7)
    return f'invalid connection option "{m.group(1)}" (did you mean {near[0]}?)' if near else None


def reason(conninfo: str, exc: BaseException) -> str:
    """The first line of a connection failure, safe to show: a parse error without its
    quoted fragments (but a keyword's typo), any other without the DSN's password."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.ProgrammingError):
        return _typo(text) or _QUOTED.sub('"..."', text)
    for secret in _secrets(conninfo):
        text = text.replace(secret, "***")
    return text
