"""Decrypted values never reach a temporary file. PostgreSQL gathers the result of a
function called in FROM in work_mem and writes what does not fit to disk; the client
calls hush's reading functions in the select list, where rows pass through as they come.
SQL callers: docs/security.md, "Keeping values out of logs"."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

import hush

VALUE_BYTES = 60_000
COUNT = 40  # 2.4 MB of values against a 64 kB work_mem


def temp_files_logged(db: Any, run: Any) -> list[str]:
    """The server log's 'temporary file' lines written while run(conn) ran as alice."""
    marker = f"temp-marker-{uuid.uuid4()}"
    with db.connect("alice") as conn:
        conn.execute("SET work_mem = '64kB'")
        conn.execute(f"SELECT '{marker}'")  # statement text, not a parameter: the log shows it
        run(conn)
        conn.execute("SELECT pg_catalog.pg_sleep(0.2)")  # let the logger write
    log = db.cluster.log.read_text(errors="replace")
    return [line for line in log[log.index(marker):].splitlines() if "temporary file:" in line]


@pytest.fixture
def values(db: Any) -> list[str]:
    db.sql(f"ALTER DATABASE {db.name} SET log_temp_files = 0")
    names = [f"big/{i}" for i in range(COUNT)]
    with db.connect("alice") as conn:
        hush.Secrets(conn, "acme").save_many({n: f"{i:02d}" * (VALUE_BYTES // 2) for i, n in enumerate(names)})
    return names


def test_reading_in_from_spills_values_to_disk(db: Any, values: list[str]) -> None:
    """The control: the same read with the function in FROM writes a temporary file."""
    assert temp_files_logged(db, lambda conn: conn.execute(
        "SELECT value FROM hush.get_secrets('acme', %s)", [values]).fetchall())


def test_the_client_reads_without_a_temporary_file(db: Any, values: list[str]) -> None:
    def read(conn: Any) -> None:
        s = hush.Secrets(conn, "acme")
        assert len(s.get_many(values)) == COUNT
        assert s.get(values[0]).value.startswith("0")
    assert temp_files_logged(db, read) == []
