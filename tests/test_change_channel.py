"""Change notifications (issue 21): hush.change_channel(tenant) hands a role that may
list the tenant's secrets a random channel name, on which hush NOTIFYs with an empty
payload at the commit of every change to a secret; a revoke that narrows what a role
may list renames it. The feed of the same changes is test_changes.py's. Real server,
non-superuser roles (the superuser only sets up, inspects, and sends the sentinel
notifications)."""
from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable

import psycopg
import pytest
from psycopg import sql

from change_helpers import VALUE, feed, seen
from helpers import module_roles, raises_sqlstate, save

CHANNEL = re.compile(r"^hush_changes_[0-9a-f]{32}$")
SENTINEL = "sentinel"

# Roles of this module (cluster-wide): pay may list payments/ only; plugin holds a grant on
# acme that lets it list nothing (oauth_use only).
ROLES = {"ch_pay": "LOGIN IN ROLE hush_reader", "ch_plugin": "LOGIN IN ROLE hush_reader"}


people = module_roles(ROLES)


def grant(db: Any, role: str, prefix: str, caps: list[str], tenant: str = "acme") -> None:
    db.sql("SELECT hush.grant(%s, %s, %s, %s::text[])", [role, tenant, prefix, caps], user="adam")


def channel(conn: psycopg.Connection, tenant: str) -> str:
    return conn.execute("SELECT hush.change_channel(%s)", [tenant]).fetchone()[0]


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


# -- who may hear it --------------------------------------------------------------

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
