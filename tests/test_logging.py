"""Values stay out of the server log, even with log_statement = 'all' (set for
the whole test cluster) plus the settings the README documents."""
from __future__ import annotations

import uuid

import psycopg

from helpers import get, raises_sqlstate, save


def test_no_value_in_server_log(db, cluster):
    canary = f"log-canary-{uuid.uuid4()}"
    assert db.sql("SHOW log_statement") == [("all",)]
    assert db.sql("SHOW log_parameter_max_length") == [("0",)]
    with db.connect("alice") as a:
        save(a, "acme", "k", canary)
        get(a, "acme", "k")
        a.execute("SELECT hush.update_secret('acme', 'k', %s)", [canary + "-2"])
        a.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['k'])")
        # Failing calls: errors are logged with their statement.
        with raises_sqlstate("SH001"):
            save(a, "acme", "", canary)
        with raises_sqlstate("SH020"):
            save(a, "globex", "k", canary)
        with raises_sqlstate("SH003"):
            save(a, "acme", "big", canary * 3000)
        with raises_sqlstate("SH013"):
            save(a, "acme", "k", canary, expected_version=9)
    with psycopg.connect(cluster.dsn(db.name), autocommit=True) as su:
        su.execute("SELECT pg_catalog.pg_sleep(0.2)")  # let the logger flush
    log = cluster.log.read_text(errors="replace")
    assert "hush.save_secret" in log and "hush.get_secret" in log  # statements were logged...
    assert canary not in log  # ...but never a value
