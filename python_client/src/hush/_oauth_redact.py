"""A provider's text, before hush keeps or shows it (last_error, audit rows, exceptions,
worker logs), with everything hush sent that provider blanked out.

A careless (or hostile) provider repeats what it received in its error descriptions, in
whatever form it had it: raw, percent-encoded (quote, quote_plus: a form body), JSON-escaped,
base64 (an echoed `Authorization: Basic` header: base64 of "client_id:client_secret", each
url-encoded as RFC 6749 2.3.1 has it; or a value anywhere inside a longer base64 text). Each
of those forms of every value sent is blanked; then the text is decoded every way hush knows
(a few layers deep), and if a value sent still shows, the whole text is withheld.

What was sent comes from the request as it left (Sent.hook, an httpx request hook): the
form body's values but the few that are public by nature (grant_type, client_id, scope...),
the query's, the Authorization header's credentials; plus what the caller names. So a
token, a code, a password, a code verifier, a client secret or an assertion authlib signed
are all covered, whichever request carried them.
"""
from __future__ import annotations

import base64
import binascii
import html
import json
import re
from typing import Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus

import httpx2 as httpx

MIN_CHARS = 4            # shorter values are not blanked: they would blank ordinary words
MAX_DESCRIPTION = 200    # what is kept of a provider's description, after redaction
MAX_INPUT = 2000         # what is looked at of it (the rest is never kept)
BLANK = "***"
WITHHELD = "(withheld: the provider's text repeated what hush sent it)"
# Form and query parameters that carry nothing secret; every other value sent is redacted.
PUBLIC_PARAMS = frozenset({"grant_type", "client_id", "scope", "redirect_uri", "response_type", "token_type_hint",
                           "client_assertion_type", "subject_token_type", "actor_token_type",
                           "requested_token_type", "audience", "resource"})
# RFC 6749 5.2: an error code is printable ASCII without space, quote or backslash.
_ERROR_CODE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}")
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")
_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[\"\\/bfnrt])")
_JSON_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _b64_forms(data: bytes) -> set[str]:
    """Base64 of `data` whole (padded or not, both alphabets), and the characters of it that
    `data` alone decides wherever it sits in a longer base64 text (one per alignment)."""
    whole = base64.b64encode(data).decode()
    forms = {whole, whole.rstrip("=")}
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data).decode()
        core = enc[-(-8 * k // 6):(8 * (k + len(data))) // 6]
        if len(core) >= 6:  # shorter cores would blank ordinary words
            forms.add(core)
    return forms | {f.replace("+", "-").replace("/", "_") for f in forms}


def forms(value: str) -> set[str]:
    """The forms of one value a provider may repeat."""
    escaped = json.dumps(value)[1:-1]
    out = {value, quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe="/"), escaped,
           json.dumps(value, ensure_ascii=False)[1:-1], escaped.replace("/", "\\/"), html.escape(value)}
    out |= _b64_forms(value.encode())
    return {f for f in out if len(f) >= MIN_CHARS}


def _basic(client_id: str, secret: str) -> set[str]:
    """An Authorization: Basic credential as hush's client sends it (RFC 6749 2.3.1: each part
    url-encoded) and as others do (raw)."""
    out: set[str] = set()
    for pair in (f"{quote(client_id, safe='')}:{quote(secret, safe='')}", f"{quote(client_id)}:{quote(secret)}",
                 f"{quote_plus(client_id)}:{quote_plus(secret)}", f"{client_id}:{secret}"):
        out |= _b64_forms(pair.encode())
    return out


def _json_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        c = m.group(1)
        if c[0] == "u":
            return chr(int(c[1:], 16))
        return _JSON_SIMPLE.get(c, c)
    return _JSON_ESCAPE.sub(one, text)


def _b64_decoded(text: str) -> Iterator[str]:
    for run in _B64_RUN.findall(text):
        body = run.rstrip("=")
        for k in range(4):  # the run may start inside a base64 text: try each way in
            part = body[k:]
            part = part[:-1] if len(part) % 4 == 1 else part  # one character short of a byte
            part += "=" * (-len(part) % 4)
            for alt in (b"+/", b"-_"):
                try:
                    yield base64.b64decode(part, altchars=alt, validate=True).decode("latin-1")
                except (binascii.Error, ValueError):
                    pass


def _views(text: str, depth: int = 3, most: int = 512) -> set[str]:
    """The text, and what it reads as once decoded, up to `depth` layers of encodings (and
    `most` readings in all: the check must not cost more than the request did)."""
    seen = {text}
    layer = [text]
    for _ in range(depth):
        found = []
        for t in layer:
            for v in (unquote_plus(t), unquote(t), _json_unescape(t), html.unescape(t), *_b64_decoded(t)):
                if v not in seen:
                    seen.add(v)
                    found.append(v)
                    if len(seen) >= most:
                        return seen
        layer = found
    return seen


def _cut(text: str, limit: int, patterns: Iterable[str]) -> str:
    """The text's first `limit` characters, less a tail that could be the start of a value
    cut in two (which no pattern would then match)."""
    if len(text) <= limit:
        return text
    text = text[:limit]
    lowered = text.lower()
    for p in patterns:
        p = p.lower()
        for n in range(min(len(p) - 1, len(text)), 0, -1):
            if lowered.endswith(p[:n]):
                text, lowered = text[:-n], lowered[:-n]
                break
    return text


def redact(text: str | None, sent: Sequence[str | None], limit: int = MAX_DESCRIPTION,
           basic: tuple[str, str] | None = None) -> str | None:
    """`text` with every form of every value in `sent` (and of the Basic credential of
    `basic` = (client_id, client_secret)) blanked, cut to `limit` characters; WITHHELD when
    a value still shows through some encoding."""
    if not text:
        return text
    values = sorted({v for v in sent if isinstance(v, str) and len(v) >= MIN_CHARS}, key=len, reverse=True)
    patterns: set[str] = set()
    for v in values:
        patterns |= forms(v)
    if basic and basic[1]:
        patterns |= _basic(*basic)
    text = _cut(text, MAX_INPUT, patterns)
    if patterns:
        alternatives = "|".join(re.escape(p) for p in sorted(patterns, key=len, reverse=True))
        text = re.sub(alternatives, BLANK, text, flags=re.IGNORECASE)
        lowered = [v.lower() for v in values]
        if any(v in view.lower() for view in _views(text) for v in lowered):
            return WITHHELD
    return text[:limit]


def error_code(code: object, sent: Sequence[str | None]) -> str:
    """A provider's `error`, if it is one (RFC 6749 5.2's characters, 64 at most, nothing hush
    sent in it); otherwise 'invalid_response'."""
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code) or redact(code, sent) != code:
        return "invalid_response"
    return code


class Sent:
    """What one call sent its provider, read off each request as it leaves (`hook`), with
    the values the caller names: what a reply from that provider must not repeat."""

    def __init__(self, *known: str | None) -> None:
        self.values: list[str | None] = list(known)
        self.basic: tuple[str, str] | None = None

    def hook(self, request: httpx.Request) -> None:
        for key, value in request.url.params.multi_items():
            if key not in PUBLIC_PARAMS:
                self.values.append(value)
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if credential:
            self.values.append(credential)
            if scheme.lower() == "basic":
                try:
                    user, _, password = base64.b64decode(credential, validate=True).decode().partition(":")
                except (binascii.Error, ValueError):
                    pass
                else:
                    self.values += [password, unquote(password), unquote_plus(password)]
                    self.basic = (unquote(user), unquote(password))
        if "application/x-www-form-urlencoded" in request.headers.get("Content-Type", ""):
            try:
                body = request.content.decode("utf-8", "replace")
            except httpx.RequestNotRead:
                return
            self.values += [v for k, v in parse_qsl(body, keep_blank_values=True) if k not in PUBLIC_PARAMS]

    def redact(self, text: str | None) -> str | None:
        return redact(text, self.values, basic=self.basic)

    def error_code(self, code: object) -> str:
        return error_code(code, self.values)
