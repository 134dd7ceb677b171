"""JSON for the read record's path, without the json package.

`import json` imports re, about 11 ms of a new connection's first audited read,
on the reading backend and again on the recorder's: this uses the C helpers
json itself is built on (_json). dumps() is canonical (sorted keys, no spaces),
so a MAC over it is stable; loads() takes exactly one value and nothing after it.
"""
from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any


class _Context:
    """What _json.make_scanner reads off json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None


_scan = _json.make_scanner(_Context())


def dumps(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(_json.encode_basestring_ascii(k) + ":" + dumps(value[k]) for k in sorted(value)) + "}"
    raise TypeError("not JSON for a read record: %s" % type(value).__name__)


def loads(text: str) -> Any:
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("not JSON: something after the value")
    return value
