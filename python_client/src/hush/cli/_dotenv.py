"""The .env dialect `hush import` reads and `hush export` writes.

    # comment                  blank lines and comment lines are skipped
    export NAME=value          `export ` is allowed and ignored
    NAME=value # note          unquoted: trimmed; ` #` starts a comment
    NAME='a $literal'          single quotes: taken as is, may span lines
    NAME="line\\nnext \\"q\\""    double quotes: \\n \\r \\t \\" \\\\ \\$ escapes, may span lines

No variable expansion: `${OTHER}` stays as written. A name is everything
before the first `=`, trimmed; names need not be environment-variable names
(hush names are free-form), but `hush run` and .env export skip those that are
not. A name given twice is an error. Errors name the line, never its value.
"""
from __future__ import annotations

import re

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}
_PLAIN = re.compile(r"[A-Za-z0-9_./:@%+,=-]*")


class DotenvError(ValueError):
    pass


def _quoted(text: str, i: int, quote: str, line: int) -> tuple[str, int]:
    """The value of a quoted string starting after its opening quote at text[i]."""
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and quote == '"' and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise DotenvError(f"line {line}: the {quote} quote is never closed")


def parse(text: str) -> list[tuple[str, str]]:
    """(name, value) pairs in file order."""
    pairs: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    i, n = 0, len(text)
    line = 1
    while i < n:
        end = text.find("\n", i)
        end = n if end < 0 else end
        start_line = line
        raw = text[i:end]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i, line = end + 1, line + 1
            continue
        if "=" not in raw:
            raise DotenvError(f"line {line}: expected NAME=value")
        head, _, _ = raw.partition("=")
        name = head.strip()
        if name.startswith("export "):
            name = name[len("export "):].strip()
        if not name:
            raise DotenvError(f"line {line}: empty name")
        j = i + len(head) + 1
        while j < end and text[j] in " \t":
            j += 1
        if j < end and text[j] in "'\"":
            value, j = _quoted(text, j + 1, text[j], line)
            line += text.count("\n", i, j)
            rest_end = text.find("\n", j)
            rest_end = n if rest_end < 0 else rest_end
            rest = text[j:rest_end].strip()
            if rest and not rest.startswith("#"):
                raise DotenvError(f"line {line}: unexpected text after the closing quote")
            end = rest_end
        else:
            value = text[j:end]
            hash_at = re.search(r"\s#", value)
            if hash_at:
                value = value[:hash_at.start()]
            value = value.strip().removesuffix("\r")
        if name in seen:
            raise DotenvError(f"line {start_line}: {name!r} was already given on line {seen[name]}")
        seen[name] = start_line
        pairs.append((name, value))
        i, line = end + 1, line + 1
    return pairs


def quote(value: str) -> str:
    """A value as .env text that parse() reads back exactly."""
    if _PLAIN.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def format_pairs(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{name}={quote(value)}\n" for name, value in pairs)
