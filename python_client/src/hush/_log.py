"""The `hush` logger, and the switch that shows each call on stderr.

What is logged: the hush.* function, its tenant, rows returned and time taken, and
retries and reconnects. Never a parameter beyond the tenant: names can say more than
their owners want, and values must never reach a log."""
from __future__ import annotations

import logging
import os
import re

logger = logging.getLogger("hush")

_FUNCTION = re.compile(r"hush\.(\w+)\(")
_FROM_FUNCTION = re.compile(r"\bFROM hush\.(\w+)\(")


def function_of(sql: str) -> str:
    """The hush.* function a statement calls (the one it selects FROM, else the first), for log lines."""
    m = _FROM_FUNCTION.search(sql) or _FUNCTION.search(sql)
    return f"hush.{m.group(1)}" if m else "statement"


def debug(enabled: bool = True) -> None:
    """Log every hush call at DEBUG on the `hush` logger, with a stderr handler if it has
    none (HUSH_DEBUG=1 does this at import). `debug(False)` goes back to WARNING."""
    logger.setLevel(logging.DEBUG if enabled else logging.WARNING)
    if enabled and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


_prepare: bool | None = None


def set_prepare_default(prepare: bool | None) -> None:
    """What prepare_default() says in this process (the CLI's --prepare); None: HUSH_PREPARE."""
    global _prepare
    _prepare = prepare


def prepare_default() -> bool:
    """HUSH_PREPARE=1: let psycopg prepare hush's statements (direct connections only;
    a transaction pooler such as pgbouncer 1.18 loses them between transactions)."""
    if _prepare is not None:
        return _prepare
    # The values click's flag takes for `hush --prepare`'s HUSH_PREPARE, so the CLI and the library agree.
    return os.environ.get("HUSH_PREPARE", "").strip().lower() in ("1", "true", "t", "yes", "y", "on")


if os.environ.get("HUSH_DEBUG") == "1":
    debug()
