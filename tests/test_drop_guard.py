"""DROP EXTENSION hush and DROP SCHEMA hush are refused (SH050) unless
hush.allow_drop() was called earlier in the same transaction."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from helpers import get, raises_sqlstate, save


def extension_count(db: Any) -> int:
    return int(db.sql("SELECT count(*) FROM pg_extension WHERE extname = 'hush'")[0][0])


@pytest.mark.parametrize("statement", [
    "DROP EXTENSION hush",
    "DROP EXTENSION hush CASCADE",
    "drop extension if exists hush",
    'DROP EXTENSION IF EXISTS pg_trgm, "hush"',
    "DROP SCHEMA hush CASCADE",
    "DROP SCHEMA IF EXISTS public_archive, hush CASCADE",
])
def test_drops_of_hush_are_refused(db: Any, statement: str) -> None:
    with db.connect("alice") as alice:
        save(alice, "acme", "k", "still-here")
    with db.connect() as su:
        with raises_sqlstate("SH050") as ei:
            su.execute(statement)
        assert "hush.allow_drop()" in (ei.value.diag.message_hint or "")
    assert extension_count(db) == 1
    with db.connect("alice") as alice:
        assert get(alice, "acme", "k")["value"] == "still-here"


def test_other_drops_pass(db: Any) -> None:
    with db.connect() as su:
        su.execute("CREATE SCHEMA hush_archive")
        su.execute("DROP SCHEMA hush_archive")
        su.execute("DROP EXTENSION IF EXISTS hushy")
        su.execute("DROP SCHEMA IF EXISTS myhush")
    assert extension_count(db) == 1


def test_confirmation_counts_only_in_its_own_transaction(db: Any) -> None:
    with db.connect() as su:  # autocommit: the confirmation ends with its own statement
        su.execute("SELECT hush.allow_drop()")
        with raises_sqlstate("SH050"):
            su.execute("DROP EXTENSION hush")
        su.execute("SET hush.allow_drop_in = '1'")  # a forged session setting is no confirmation
        with raises_sqlstate("SH050"):
            su.execute("DROP EXTENSION hush")
    assert extension_count(db) == 1
    with db.connect(autocommit=False) as su:
        su.execute("SELECT hush.allow_drop()")
        su.execute("DROP EXTENSION hush")
        su.commit()
    assert extension_count(db) == 0


def test_only_superusers_confirm(db: Any) -> None:
    for role in ("adam", "alice"):
        with db.connect(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT hush.allow_drop()")
