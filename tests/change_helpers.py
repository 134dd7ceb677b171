"""What the change feed's tests share (test_changes.py, test_change_channel.py): the
value saved, which no change row may show, and reading hush.changes()."""
from __future__ import annotations

from typing import Any

import psycopg

from helpers import rows

VALUE = "s3cr3t-value-7f2a"  # never in a change row


def feed(conn: psycopg.Connection, tenant: str, since: Any = None, max_rows: int = 1000) -> list[dict]:
    return rows(conn, "SELECT * FROM hush.changes(%s, %s, %s)", [tenant, since, max_rows])


def seen(conn: psycopg.Connection, tenant: str = "acme", since: Any = None) -> list[tuple]:
    return [(r["name"], r["version"], r["change"]) for r in feed(conn, tenant, since)]
