"""Any command that would take the extension hush with it (DROP EXTENSION hush,
DROP SCHEMA hush CASCADE, DROP EXTENSION plpython3u CASCADE, DROP OWNED BY the
extension's owner, however spelt or built) is refused (SH050) unless
hush.allow_drop() was called earlier in the same transaction. The guard
decides by what the command drops, never by its text."""
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
    "DROP/**/EXTENSION hush",
    "DROP EXTENSION\n  -- a comment\n  hush",
    "DO $$ BEGIN EXECUTE 'DROP ' || 'EXTENSION hush'; END $$",
    "DO $$ BEGIN EXECUTE format('DROP SCHEMA %I CASCADE', 'hu' || 'sh'); END $$",
    "DROP EXTENSION plpython3u CASCADE",  # hush depends on it
    "DROP EXTENSION plpgsql CASCADE",  # so do hush's event triggers
    "DROP EXTENSION plpgsql, plpython3u CASCADE",
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


def guard_leftovers(db: Any) -> list[tuple]:
    """Event triggers and functions of the guard that do not belong to the extension."""
    return db.sql("""
        SELECT 'event trigger', t.evtname::text FROM pg_event_trigger t
         WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_event_trigger'::regclass
                             AND d.objid = t.oid AND d.deptype = 'e')
        UNION ALL
        SELECT 'function', p.oid::regprocedure::text FROM pg_proc p
         WHERE p.proname LIKE 'hush%' AND p.pronamespace::regnamespace::text <> 'hush'
        UNION ALL
        SELECT 'language', l.lanname::text FROM pg_language l WHERE l.lanname LIKE 'hush%'""")


def test_a_confirmation_rolled_back_with_its_savepoint_no_longer_counts(db: Any) -> None:
    with db.connect(autocommit=False) as su:
        su.execute("SAVEPOINT a")
        su.execute("SELECT hush.allow_drop()")
        su.execute("ROLLBACK TO a")
        with raises_sqlstate("SH050"):
            su.execute("DROP EXTENSION hush")
        su.rollback()
        # Released, not rolled back: it stands; and a rolled-back DROP leaves it standing too.
        su.execute("SAVEPOINT a")
        su.execute("SELECT hush.allow_drop()")
        su.execute("RELEASE a")
        su.execute("SAVEPOINT b")
        su.execute("DROP SCHEMA hush CASCADE")
        su.execute("ROLLBACK TO b")
        assert extension_count(db) == 1
        su.execute("DROP EXTENSION hush")
        su.commit()
    assert extension_count(db) == 0


def test_replica_sessions_are_guarded_too(db: Any) -> None:
    """session_replication_role = replica (data-fix scripts, replication tools)
    silences event triggers left ENABLE: hush's fire ALWAYS."""
    with db.connect() as su:
        su.execute("SET session_replication_role = replica")
        for statement in ("DROP SCHEMA hush CASCADE", "DROP EXTENSION hush", "DROP EXTENSION plpgsql CASCADE"):
            with raises_sqlstate("SH050"):
                su.execute(statement)
        su.execute("CREATE SCHEMA hush_archive")
        su.execute("DROP SCHEMA hush_archive")  # a command that passes still cleans up after itself
        assert guard_leftovers(db) == []
    assert extension_count(db) == 1
    with db.connect(autocommit=False) as su:
        su.execute("SET session_replication_role = replica")
        su.execute("SELECT hush.allow_drop()")
        su.execute("DROP EXTENSION hush")
        su.commit()
    assert extension_count(db) == 0


def test_a_forged_setting_is_no_confirmation(db: Any) -> None:
    # Any role's code in the superuser's transaction (a function it calls, a trigger) can do this.
    assert db.sql("SELECT set_config('hush.allow_drop_in', '1', true) IS NOT NULL", user="otto") == [(True,)]
    with db.connect(autocommit=False) as su:
        su.execute("SELECT set_config('hush.allow_drop_in', txid_current()::text, true)")
        with raises_sqlstate("SH050"):
            su.execute("DROP EXTENSION hush")
        su.rollback()
        su.execute("SELECT set_config('hush.allow_drop_in', txid_current()::text, false)")
        with raises_sqlstate("SH050"):
            su.execute("DROP SCHEMA hush CASCADE")
        su.rollback()
    assert extension_count(db) == 1


def test_drop_owned_by_the_extensions_owner(db: Any) -> None:
    """The extension belongs to the superuser who created it: DROP OWNED BY that role takes it."""
    with db.connect(autocommit=False) as su:
        su.execute("SELECT hush.allow_drop()")
        su.execute("DROP EXTENSION hush")
        su.commit()
    db.sql("CREATE ROLE hush_test_boss SUPERUSER LOGIN")
    db.sql("CREATE ROLE hush_test_deputy LOGIN IN ROLE hush_test_boss")  # has the boss's privileges, not superuser
    try:
        db.sql("CREATE EXTENSION hush", user="hush_test_boss")
        db.sql("SELECT hush.grant_tenant('alice', 'acme')")
        with db.connect("alice") as alice:
            save(alice, "acme", "k", "still-here")
        for role in ("hush_test_boss", "postgres", "hush_test_deputy"):
            with db.connect(role) as conn, raises_sqlstate("SH050"):
                conn.execute("DROP OWNED BY hush_test_boss")
        with db.connect("hush_test_deputy") as deputy, raises_sqlstate("SH050"):
            deputy.execute("DROP EXTENSION hush")
        with db.connect() as su, pytest.raises(psycopg.errors.DependentObjectsStillExist):
            su.execute("DROP OWNED BY hush_owner")  # refused by PostgreSQL itself: the extension needs them
        assert extension_count(db) == 1
        with db.connect("alice") as alice:
            assert get(alice, "acme", "k")["value"] == "still-here"
        assert guard_leftovers(db) == []
        with db.connect("hush_test_boss", autocommit=False) as boss:
            boss.execute("SELECT hush.allow_drop()")
            boss.execute("DROP OWNED BY hush_test_boss")
            boss.commit()
        assert extension_count(db) == 0
    finally:
        with db.connect(autocommit=False) as su:
            if extension_count(db):
                su.execute("SELECT hush.allow_drop()")
            su.execute("DROP OWNED BY hush_test_boss")
            su.commit()
        db.sql("DROP ROLE hush_test_deputy")
        db.sql("DROP ROLE hush_test_boss")


def test_nothing_of_the_guard_outlives_a_command(db: Any) -> None:
    with db.connect() as su:
        with raises_sqlstate("SH050"):
            su.execute("DROP EXTENSION hush CASCADE")
        su.execute("CREATE SCHEMA hush_archive")
        su.execute("CREATE TABLE hush_archive.t (x int)")
        su.execute("DROP SCHEMA hush_archive CASCADE")  # something dropped
        su.execute("DROP SCHEMA IF EXISTS hush_archive")  # nothing dropped
        assert guard_leftovers(db) == []
    with db.connect(autocommit=False) as su:
        su.execute("SELECT hush.allow_drop()")
        su.execute("DROP SCHEMA hush CASCADE")
        su.commit()
    assert extension_count(db) == 0
    assert db.sql("SELECT count(*) FROM pg_event_trigger") == [(0,)]
    assert guard_leftovers(db) == []


def test_application_roles_drop_their_own_schemas(db: Any) -> None:
    db.sql("GRANT CREATE ON DATABASE %s TO alice" % db.name)
    with db.connect("alice") as alice:
        alice.execute("CREATE SCHEMA alice_scratch")
        alice.execute("CREATE TABLE alice_scratch.t (x int)")
        alice.execute("DROP SCHEMA alice_scratch CASCADE")
        alice.execute("DROP OWNED BY alice")
    assert extension_count(db) == 1
