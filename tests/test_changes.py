"""The change feed (issue 21): hush.changes(tenant, since, max_rows) tells applications
that cannot LISTEN of the tenant's changes (metadata only, names the caller may list),
oldest first, paged by opaque cursors, only below the oldest transaction still running,
so a late commit is never skipped; the audit partitions' index serves it. The channel
that announces the same changes is test_change_channel.py's. Real server,
non-superuser roles (the superuser only sets up and inspects)."""
from __future__ import annotations

import re
from typing import Any

import psycopg

from change_helpers import VALUE, feed, seen
from helpers import get, imported, owner_plan, raises_sqlstate, rows, save
from test_upgrade import fresh_db  # noqa: F401  (the fixture: an empty database that installs releases)


def change_actions() -> tuple[str, ...]:
    return imported("hush_plpy.changes").CHANGE_ACTIONS


# -- the feed ---------------------------------------------------------------------

def test_changes_in_order_metadata_only_reads_left_out(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "app/db", VALUE)
        save(a, "acme", "app/db", VALUE + "-2")
        a.execute("SELECT hush.update_secret('acme', 'app/db', description => 'the database')")
        get(a, "acme", "app/db")
        a.execute("SELECT hush.destroy_secret('acme', 'app/db', ARRAY[1])")
        a.execute("SELECT hush.delete_secret('acme', 'app/db')")
        a.execute("SELECT hush.restore_secret('acme', 'app/db')")
    with db.connect("bob") as b:
        save(b, "globex", "app/db", VALUE)
    with db.connect("rita", autocommit=False) as r:
        r.read_only = True  # reading the feed writes nothing: it works read-only (and on a standby)
        got = feed(r, "acme")
        r.rollback()
    assert [(g["name"], g["version"], g["change"]) for g in got] == [
        ("app/db", 1, "create"), ("app/db", 2, "new_version"), ("app/db", 2, "update_metadata"),
        ("app/db", 1, "destroy"), ("app/db", 2, "delete"), ("app/db", 2, "restore")]
    assert all(set(g) == {"cursor", "name", "version", "change", "at"} for g in got)
    assert [g["at"] for g in got] == sorted(g["at"] for g in got)
    assert VALUE not in str(got)
    # The read was recorded, and is no change.
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'read' AND tenant_id = 'acme'") == [(1,)]


def test_paging_returns_each_change_once(db: Any) -> None:
    with db.connect("alice") as a:
        for i in range(5):
            save(a, "acme", f"k{i}", VALUE)
    with db.connect("rita") as r:
        everything = feed(r, "acme")
        assert [g["name"] for g in everything] == [f"k{i}" for i in range(5)]
        pages, since = [], None
        while True:
            page = feed(r, "acme", since, max_rows=2)
            if not page:
                break
            assert len(page) <= 2
            pages.append(page)
            since = page[-1]["cursor"]
        assert [len(p) for p in pages] == [2, 2, 1]
        assert [g for p in pages for g in p] == everything
        assert len({g["cursor"] for g in everything}) == 5
        # Going on from the last cursor after more changes gives just those.
        with db.connect("alice") as a:
            save(a, "acme", "k0", VALUE)
        assert seen(r, since=since) == [("k0", 2, "new_version")]
        for bad in (0, 10001):
            with raises_sqlstate("SH004"):
                feed(r, "acme", max_rows=bad)


def test_a_late_commit_is_never_skipped(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "before", VALUE)
    early = db.connect("alice", autocommit=False)
    try:
        save(early, "acme", "early", VALUE)  # transaction A: has its id, stays open
        with db.connect("alice") as b:
            save(b, "acme", "late", VALUE)  # transaction B: a later id, commits first
        with db.connect("rita") as r:
            got = feed(r, "acme")
            # B's change sits after A's position: not shown while A may still commit before it.
            assert [g["name"] for g in got] == ["before"]
            early.commit()
            assert seen(r, since=got[-1]["cursor"]) == [("early", 1, "create"), ("late", 1, "create")]
    finally:
        early.close()


def test_changes_cursor_skips_the_past_but_not_an_open_transaction(db: Any) -> None:
    """changes_cursor(): what follows it is every change not finished when it was taken, and
    nothing before (a cache takes it before it reads anything)."""
    with db.connect("alice") as a:
        save(a, "acme", "old", VALUE)
    early = db.connect("alice", autocommit=False)
    try:
        save(early, "acme", "open", VALUE)  # still running when the cursor is taken
        with db.connect("rita") as r:
            (now,) = r.execute("SELECT hush.changes_cursor('acme')").fetchone()
            with db.connect("alice") as a:
                save(a, "acme", "new", VALUE)
            assert seen(r, since=now) == []  # held back by the open transaction, not skipped
            early.commit()
            assert seen(r, since=now) == [("open", 1, "create"), ("new", 1, "create")]
    finally:
        early.close()
    with db.connect("bob") as b, raises_sqlstate("SH020"):
        b.execute("SELECT hush.changes_cursor('acme')")


def test_foreign_cursors_are_refused(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", VALUE)
    with db.connect("bob") as b:
        save(b, "globex", "k", VALUE)
        globex_cursor = feed(b, "globex")[0]["cursor"]
    with db.connect("rita") as r:
        own = feed(r, "acme")[0]["cursor"]
        audit_cursor = rows(r, "SELECT cursor FROM hush.audit_log('acme')")[0]["cursor"]
        # (A character in the middle: the last one of 43 carries padding bits as well as data.)
        for bad in (globex_cursor, audit_cursor, own[:10] + ("A" if own[10] != "A" else "B") + own[11:], "not a cursor", ""):
            with raises_sqlstate("SH004") as ei:
                feed(r, "acme", since=bad)
            assert "hush.changes()" in str(ei.value)
        # Nor is a changes() cursor an audit_log() one.
        with raises_sqlstate("SH004"):
            rows(r, "SELECT * FROM hush.audit_log('acme', after => %s, oldest_first => true)", [own])
        assert feed(r, "acme", since=own) == []


# -- the index --------------------------------------------------------------------

PARTITION_INDEXES = """
SELECT c.relname AS partition, x.relname AS index, pg_get_indexdef(i.indexrelid) AS def,
       pg_get_expr(i.indpred, i.indrelid) AS pred
  FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
  JOIN pg_index i ON i.indrelid = h.inhrelid JOIN pg_class x ON x.oid = i.indexrelid
 WHERE h.inhparent = 'hush.audit_log'::regclass AND x.relname LIKE '%%\\_changes'
 ORDER BY 1
"""


def _check_change_indexes(conn: psycopg.Connection, monthly: int) -> None:
    parts = [p[0] for p in conn.execute("SELECT inhrelid::regclass::text FROM pg_inherits "
                                        "WHERE inhparent = 'hush.audit_log'::regclass ORDER BY 1").fetchall()]
    assert len(parts) == monthly + 1
    found = rows(conn, PARTITION_INDEXES)
    assert ["hush." + f["partition"] for f in found] == parts
    for f in found:
        assert f["index"] == f["partition"] + "_changes"
        assert "(tenant_id, txid, id)" in f["def"]
        assert tuple(re.findall(r"'([a-z_]+)'::text", f["pred"])) == change_actions(), f


def test_every_audit_partition_has_the_change_index(db: Any) -> None:
    db.sql("SELECT hush.create_audit_partitions(1)", user="adam")
    with db.connect() as su:
        _check_change_indexes(su, monthly=2)


def test_the_feed_can_use_the_change_index(db: Any) -> None:
    """The query's action condition is the index predicate: the planner may use it, even in a
    generic plan (the one a prepared plan settles on)."""
    changes_sql = imported("hush_plpy.changes").CHANGES_SQL
    plan = owner_plan(db, f"feed(text, bigint, bigint, integer, text[]) AS {changes_sql}",
                      "feed('acme', 0, 0, 10, NULL)")
    assert "Index Scan using audit_log_default_changes" in plan, plan


def test_the_update_gives_existing_partitions_the_change_index(fresh_db: Any) -> None:
    old = fresh_db("changes_up")
    old.sql("CREATE EXTENSION hush VERSION '0.4.0' CASCADE")
    old.sql("SELECT hush.create_audit_partitions(1)")
    old.sql("ALTER EXTENSION hush UPDATE")
    with old.connect() as su:
        _check_change_indexes(su, monthly=2)
        su.execute("SELECT hush.create_audit_partitions(2)")
        _check_change_indexes(su, monthly=3)


def test_change_actions_are_audit_actions() -> None:
    actions = imported("hush_plpy.audit").ACTIONS
    assert set(change_actions()) <= set(actions) and "read" not in change_actions()
