"""Values stay out of the server log, even with log_statement = 'all' (set for
the whole test cluster) plus the settings the docs give, and with
auto_explain logging every plan verbosely."""
from __future__ import annotations

import uuid
from typing import Any

import psycopg

import hush
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


# auto_explain at its most talkative, for alice in the test's database only (the cluster is
# shared; roles are cluster-wide, but a database's role settings go with the database).
AUTO_EXPLAIN = {"session_preload_libraries": "auto_explain", "auto_explain.log_min_duration": "0",
                "auto_explain.log_verbose": "on", "auto_explain.log_nested_statements": "on",
                "auto_explain.log_analyze": "on"}


def set_for_alice(db: Any, settings: dict[str, str]) -> None:
    with db.connect() as su:
        for name, value in settings.items():
            su.execute(f"ALTER ROLE alice IN DATABASE {db.name} SET {name} = '{value}'")


def documented_settings(db: Any) -> dict[str, str]:
    """What docs/security.md, "Keeping values out of logs", says to set when auto_explain logs verbosely."""
    settings = {"plan_cache_mode": "force_generic_plan"}  # for the application roles
    if int(db.sql("SHOW server_version_num")[0][0]) >= 160000:
        settings["auto_explain.log_parameter_max_length"] = "0"  # cluster-wide in practice; 16+ only
    return settings


def calls_with(db: Any, canary: str) -> None:
    """Writes and reads carrying the canary: psycopg with bound values, and the client."""
    with db.connect("alice") as a:
        # pg_settings lists a module's settings once it is loaded (a placeholder, never).
        assert a.execute("SELECT setting FROM pg_catalog.pg_settings "
                         "WHERE name = 'auto_explain.log_verbose'").fetchall() == [("on",)]
        save(a, "acme", "k", canary)
        get(a, "acme", "k")
        a.execute("SELECT hush.update_secret('acme', 'k', %s)", [canary + "-2"])
        a.execute("SELECT * FROM hush.save_secrets('acme', %s, %s)", [["b1", "b2"], [canary + "-b1", canary + "-b2"]])
        a.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['k', 'b1'])").fetchall()
    with hush.connect(db.dsn("alice")) as client:
        s = client.tenant("acme")
        for i in range(7):  # past psycopg's prepare_threshold: named prepared statements too
            s.save(f"c{i}", f"{canary}-client-{i}")
            s.get(f"c{i}")
        s.save_many({"m1": canary + "-m1"})


def log_after(cluster: Any, db: Any, offset: int) -> str:
    with db.connect() as su:
        su.execute("SELECT pg_catalog.pg_sleep(0.2)")  # let the logger flush
    with open(cluster.log, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def test_auto_explain_logs_no_value_with_the_documented_settings(db: Any, cluster: Any) -> None:
    set_for_alice(db, AUTO_EXPLAIN)
    # Without them, a verbose plan of a custom plan prints the bound values as constants.
    leaked = f"explain-canary-{uuid.uuid4()}"
    start = cluster.log.stat().st_size
    calls_with(db, leaked)
    assert leaked in log_after(cluster, db, start)

    set_for_alice(db, documented_settings(db))
    canary = f"explain-canary-{uuid.uuid4()}"
    start = cluster.log.stat().st_size
    calls_with(db, canary)
    log = log_after(cluster, db, start)
    assert "Query Text: SELECT * FROM hush.save_secret(" in log and "hush.save_secret($1" in log  # plans logged...
    assert canary not in log  # ...without a value
