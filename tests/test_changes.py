"""Change notifications (issue 21): hush.change_channel(tenant) hands a role that may list
the tenant's secrets a random channel name, on which hush NOTIFYs with an empty payload at
the commit of every change to a secret; hush.changes(tenant, since, max_rows) is the same
news for applications that cannot LISTEN: the tenant's changes (metadata only, names the
caller may list), oldest first, paged by opaque cursors, only below the oldest transaction
still running, so a late commit is never skipped. Real server, non-superuser roles (the
superuser only sets up, inspects, and sends the sentinel notifications)."""
from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from helpers import get, raises_sqlstate, rows, save

PLPYTHON = Path(__file__).resolve().parent.parent / "plpython"
CHANNEL = re.compile(r"^hush_changes_[0-9a-f]{32}$")
VALUE = "s3cr3t-value-7f2a"  # never in a change row
SENTINEL = "sentinel"

# Roles of this module (cluster-wide): pay may list payments/ only; plugin holds a grant on
# acme that lets it list nothing (oauth_use only).
ROLES = {"ch_pay": "LOGIN IN ROLE hush_reader", "ch_plugin": "LOGIN IN ROLE hush_reader"}


def change_actions() -> tuple[str, ...]:
    sys.path.insert(0, str(PLPYTHON))
    try:
        from hush_plpy.changes import CHANGE_ACTIONS
    finally:
        sys.path.pop(0)
    return CHANGE_ACTIONS


@pytest.fixture(scope="module")
def people(cluster: Any) -> Iterator[None]:
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for role, spec in ROLES.items():
            su.execute(f"CREATE ROLE {role} {spec}")
    yield
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for role in ROLES:
            su.execute(f"DROP ROLE {role}")


def grant(db: Any, role: str, prefix: str, caps: list[str], tenant: str = "acme") -> None:
    db.sql("SELECT hush.grant(%s, %s, %s, %s::text[])", [role, tenant, prefix, caps], user="adam")


def channel(conn: psycopg.Connection, tenant: str) -> str:
    return conn.execute("SELECT hush.change_channel(%s)", [tenant]).fetchone()[0]


def feed(conn: psycopg.Connection, tenant: str, since: Any = None, max_rows: int = 1000) -> list[dict]:
    return rows(conn, "SELECT * FROM hush.changes(%s, %s, %s)", [tenant, since, max_rows])


def seen(conn: psycopg.Connection, tenant: str = "acme", since: Any = None) -> list[tuple]:
    return [(r["name"], r["version"], r["change"]) for r in feed(conn, tenant, since)]


def listen(db: Any, user: str, name: str) -> psycopg.Connection:
    conn = db.connect(user)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
    return conn


def heard(db: Any, listener: psycopg.Connection, name: str) -> list[tuple[str, str]]:
    """What the listener got on `name` since it last asked, up to a sentinel NOTIFY sent now:
    notifications arrive in commit order, so whatever an earlier commit sent is in by then."""
    db.sql("SELECT pg_notify(%s, %s)", [name, SENTINEL])
    got: list[tuple[str, str]] = []
    for n in listener.notifies(timeout=30):
        if n.channel == name and n.payload == SENTINEL:
            return got
        got.append((n.channel, n.payload))
    raise AssertionError(f"the sentinel on {name} never arrived; got {got}")


# -- the channel ------------------------------------------------------------------

def test_channel_is_random_per_tenant_stable_and_needs_a_grant(db: Any, people: None) -> None:
    grant(db, "ch_plugin", "", ["oauth_use"])  # a grant on acme that lists nothing
    assert db.sql("SELECT count(*) FROM hush.tenants WHERE tenant_id IN ('acme', 'globex')") == [(0,)]
    trail = db.sql("SELECT count(*) FROM hush.audit_log")
    with db.connect("rita") as r, db.connect("alice") as a, db.connect("bob") as b:
        acme = channel(r, "acme")
        assert CHANNEL.match(acme)
        assert channel(r, "acme") == acme and channel(a, "acme") == acme
        globex = channel(b, "globex")
        assert CHANNEL.match(globex) and globex != acme
        with raises_sqlstate("SH020"):
            channel(b, "acme")
    # A tenant no admin configured got its row, with the defaults, and nothing else changed.
    assert db.sql("SELECT tenant_id, change_channel, max_value_bytes, audit_reads FROM hush.tenants ORDER BY 1") == [
        ("acme", acme, 65536, True), ("globex", globex, 65536, True)]
    with db.connect("ch_plugin") as p:
        with raises_sqlstate("SH020"):
            channel(p, "acme")
        with raises_sqlstate("SH020"):
            feed(p, "acme")
    with db.connect("otto") as o, pytest.raises(psycopg.errors.InsufficientPrivilege):
        channel(o, "acme")
    # Handing it out is not audited, and once made it is read without writing.
    assert db.sql("SELECT count(*) FROM hush.audit_log") == trail
    with db.connect("rita", autocommit=False) as r:
        r.read_only = True
        assert channel(r, "acme") == acme
        r.rollback()


def test_concurrent_first_calls_get_the_same_channel(db: Any) -> None:
    first = db.connect("rita", autocommit=False)
    out: dict[str, Any] = {}

    def second() -> None:
        try:
            with db.connect("alice") as a:
                out["channel"] = channel(a, "acme")
        except psycopg.Error as e:
            out["channel"] = e

    try:
        made = channel(first, "acme")
        t = threading.Thread(target=second)
        t.start()
        for _ in range(200):  # until the second call waits for the first one's row
            if db.sql("SELECT 1 FROM pg_stat_activity WHERE usename = 'alice' AND wait_event_type = 'Lock'"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the second call never waited for the first")
        first.commit()
        t.join(30)
    finally:
        first.close()
    assert out["channel"] == made
    assert db.sql("SELECT change_channel FROM hush.tenants WHERE tenant_id = 'acme'") == [(made,)]


# -- notifications ----------------------------------------------------------------

def _purge(db: Any, a: psycopg.Connection) -> Callable[[], None]:
    a.execute("SELECT hush.delete_secret('acme', 'app/db')")
    db.sql("UPDATE hush.secrets SET deleted_at = now() - interval '400 days' WHERE deleted_at IS NOT NULL")
    return lambda: db.sql("SELECT hush.purge_deleted_secrets()", user="adam")


def _retention(db: Any, a: psycopg.Connection) -> Callable[[], None]:
    save(a, "acme", "app/db", "v2")
    save(a, "acme", "app/db", "v3")
    db.sql("SELECT hush.configure_tenant('acme', max_versions => 1)", user="adam")
    return lambda: db.sql("SELECT hush.maintain_secrets()", user="adam")


def _restore(db: Any, a: psycopg.Connection) -> Callable[[], Any]:
    a.execute("SELECT hush.delete_secret('acme', 'app/db')")
    return lambda: a.execute("SELECT hush.restore_secret('acme', 'app/db')")


def _promote(db: Any, a: psycopg.Connection) -> Callable[[], Any]:
    save(a, "acme", "app/db", VALUE, stage="pending")
    return lambda: a.execute("SELECT hush.promote_secret('acme', 'app/db')")


def _rollback(db: Any, a: psycopg.Connection) -> Callable[[], Any]:
    save(a, "acme", "app/db", "v2")
    return lambda: a.execute("SELECT hush.rollback_secret('acme', 'app/db', 1)")


# Each write step, after a setup: (setup(db, alice) -> the step). app/db exists with version 1.
STEPS: dict[str, Callable[[Any, psycopg.Connection], Callable[[], Any]]] = {
    "save (create)": lambda db, a: lambda: save(a, "acme", "app/new", VALUE),
    "save (new version)": lambda db, a: lambda: save(a, "acme", "app/db", VALUE),
    "update_secret (metadata)": lambda db, a: lambda: a.execute(
        "SELECT hush.update_secret('acme', 'app/db', description => 'the database')"),
    "delete_secret": lambda db, a: lambda: a.execute("SELECT hush.delete_secret('acme', 'app/db')"),
    "restore_secret": _restore,
    "destroy_secret": lambda db, a: lambda: a.execute("SELECT hush.destroy_secret('acme', 'app/db', ARRAY[1])"),
    "save_secrets": lambda db, a: lambda: a.execute(
        "SELECT hush.save_secrets('acme', ARRAY['bulk/a', 'bulk/b'], ARRAY[%s, %s])", [VALUE, VALUE]),
    "save (stage pending)": lambda db, a: lambda: save(a, "acme", "app/db", VALUE, stage="pending"),
    "promote_secret": _promote,
    "rollback_secret": _rollback,
    "purge by maintenance": _purge,
    "retention by maintenance": _retention,
}


@pytest.mark.parametrize("step", list(STEPS))
def test_every_change_notifies_the_tenant_channel_with_an_empty_payload(db: Any, step: str) -> None:
    with db.connect("alice") as a, db.connect("rita") as r:
        save(a, "acme", "app/db", "v1")
        name = channel(r, "acme")
        run = STEPS[step](db, a)
        with listen(db, "rita", name) as listener:
            assert heard(db, listener, name) == []
            run()
            assert heard(db, listener, name) == [(name, "")], step


def test_a_rolled_back_change_and_other_tenants_send_nothing(db: Any) -> None:
    with db.connect("rita") as r, db.connect("bob") as b:
        acme, globex = channel(r, "acme"), channel(b, "globex")
    guessed = "hush_changes_" + "0" * 32
    with listen(db, "rita", acme) as listener, listen(db, "bob", globex) as bob:
        bob.execute(sql.SQL("LISTEN {}").format(sql.Identifier(guessed)))
        with db.connect("alice", autocommit=False) as a:
            save(a, "acme", "app/db", VALUE)
            a.rollback()
        assert heard(db, listener, acme) == []
        with db.connect("alice") as a:
            save(a, "acme", "app/db", VALUE)
        assert heard(db, listener, acme) == [(acme, "")]
        # bob, on his own tenant's channel and on a guessed name, learns nothing of acme.
        assert heard(db, bob, globex) == [] and heard(db, bob, guessed) == []


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


def test_prefix_scoped_grants_see_only_their_names(db: Any, people: None) -> None:
    grant(db, "ch_pay", "payments/", ["list"])
    with db.connect("alice") as a:
        for name in ("payments/stripe", "paymentsx", "db/password", "payments/adyen"):
            save(a, "acme", name, VALUE)
    with db.connect("ch_pay") as p:
        assert seen(p) == [("payments/stripe", 1, "create"), ("payments/adyen", 1, "create")]
        # The channel tells of every change in the tenant: a role that may list some of its
        # names only is refused it (and pointed at changes()).
        with raises_sqlstate("SH020") as ei:
            channel(p, "acme")
        assert "hush.changes(" in ei.value.diag.message_hint
        with raises_sqlstate("SH020"):
            feed(p, "globex")
    # list on the whole tenant, through a '*' grant, is enough.
    grant(db, "ch_pay", "", ["list"], tenant="*")
    with db.connect("ch_pay") as p, db.connect("alice") as a:
        assert channel(p, "acme") == channel(a, "acme")


def test_a_revoke_renames_the_channel_and_wakes_its_listeners(db: Any) -> None:
    # PostgreSQL lets any role LISTEN on a name it knows: rita's grant ends, and so must
    # what she hears on the name she was given.
    with db.connect("rita") as r, db.connect("alice") as a, db.connect("bob") as b:
        old, globex = channel(r, "acme"), channel(b, "globex")
        revoked, app = listen(db, "rita", old), listen(db, "alice", old)
        db.sql("SELECT hush.revoke_tenant('rita', 'acme')", user="adam")
        assert heard(db, app, old) == [(old, "")]  # one last wake-up on the old name
        new = channel(a, "acme")
        assert CHANNEL.match(new) and new != old
        with raises_sqlstate("SH020"):
            channel(r, "acme")
        app.execute(sql.SQL("LISTEN {}").format(sql.Identifier(new)))
        save(a, "acme", "k", VALUE)
        assert heard(db, app, new) == [(new, "")]
        assert heard(db, app, old) == []
        assert heard(db, revoked, old) == [(old, "")]  # the wake-up; the save is not heard on the old name
        assert channel(b, "globex") == globex  # another tenant's channel stays
        revoked.close()
        app.close()


def test_a_revoke_during_the_channels_making_renames_what_was_made(db: Any) -> None:
    """The first change_channel() makes the channel in turn with grant changes: a revoke of
    the maker's grant that comes meanwhile waits for it, then renames the name it handed out."""
    maker = db.connect("rita", autocommit=False)
    made = channel(maker, "acme")  # made, not yet committed: holds grant changes back
    revoke = threading.Thread(target=db.sql, args=("SELECT hush.revoke_tenant('rita', 'acme')",),
                              kwargs={"user": "adam"})
    revoke.start()
    try:
        for _ in range(500):
            if db.sql("SELECT 1 FROM pg_stat_activity WHERE usename = 'adam' AND wait_event_type = 'Lock'"):
                break
            time.sleep(0.01)
        else:
            raise AssertionError("the revoke did not wait for the channel's making")
    finally:
        maker.commit()
        maker.close()
        revoke.join(10)
    with db.connect("alice") as a:
        assert channel(a, "acme") != made


def test_narrowing_or_star_revokes_rename_grants_do_not(db: Any, people: None) -> None:
    with db.connect("alice") as a, db.connect("bob") as b:
        def channels() -> tuple[str, str]:
            return channel(a, "acme"), channel(b, "globex")
        before = channels()
        grant(db, "ch_pay", "", ["read", "list"])
        grant(db, "ch_pay", "payments/", ["audit"])
        db.sql("SELECT hush.grant_tenant('ch_plugin', 'acme')", user="adam")
        assert channels() == before
        # A revoke that removes nothing renames nothing; one rolled back neither.
        db.sql("SELECT hush.revoke('ch_pay', 'acme', '', ARRAY['audit'])", user="adam")
        with db.connect("adam", autocommit=False) as adam:
            adam.execute("SELECT hush.revoke_tenant('ch_pay', 'acme')")
            adam.rollback()
        assert channels() == before
        # Narrowing a grant renames its tenant's channel only.
        db.sql("SELECT hush.revoke('ch_pay', 'acme', '', ARRAY['read'])", user="adam")
        narrowed = channels()
        assert narrowed[0] != before[0] and narrowed[1] == before[1]
        # A '*' grant reaches every tenant's channel: its revoke renames them all.
        grant(db, "ch_plugin", "", ["list"], tenant="*")
        with db.connect("ch_plugin") as p:
            assert channel(p, "globex") == narrowed[1]
        db.sql("SELECT hush.revoke('ch_plugin', '*', '', ARRAY['list'])", user="adam")
        after = channels()
        assert after[0] != narrowed[0] and after[1] != narrowed[1]
        assert all(CHANNEL.match(c) for c in after)


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
    sys.path.insert(0, str(PLPYTHON))
    try:
        from hush_plpy.changes import CHANGES_SQL
    finally:
        sys.path.pop(0)
    with db.connect() as su:
        # As the step runs it: hush_owner, under the owner_steps row policy.
        su.execute("SET enable_seqscan = off")
        su.execute("SET plan_cache_mode = force_generic_plan")
        su.execute("SELECT set_config('hush.tenant', 'acme', false)")
        su.execute("SET ROLE hush_owner")
        su.execute(f"PREPARE feed(text, bigint, bigint, integer, text[]) AS {CHANGES_SQL}")
        plan = "\n".join(r[0] for r in su.execute("EXPLAIN EXECUTE feed('acme', 0, 0, 10, NULL)").fetchall())
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


@pytest.fixture
def fresh_db(cluster: Any) -> Iterator[Any]:
    from test_upgrade import Named
    made: list[str] = []

    def make(name: str) -> Any:
        with psycopg.connect(cluster.dsn(), autocommit=True) as su:
            su.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return Named(cluster, name)
    yield make
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for name in made:
            su.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_change_actions_are_audit_actions() -> None:
    sys.path.insert(0, str(PLPYTHON))
    try:
        from hush_plpy.audit import ACTIONS
    finally:
        sys.path.pop(0)
    assert set(change_actions()) <= set(ACTIONS) and "read" not in change_actions()
