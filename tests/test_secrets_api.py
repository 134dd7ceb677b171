"""The secret API, end to end, as a non-superuser writer (alice, tenant acme)."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest

from helpers import get, raises_sqlstate, rows, save


@pytest.fixture
def alice(db):
    with db.connect("alice") as conn:
        yield conn


def test_save_creates_then_adds_versions(alice):
    first = save(alice, "acme", "stripe", "sk_1", description="Stripe", tags=["prod", "pay"],
                 metadata='{"owner": "billing"}', kind="api_key")
    assert first["version"] == 1 and first["tenant_id"] == "acme" and first["name"] == "stripe"
    second = save(alice, "acme", "stripe", "sk_2")
    assert second["id"] == first["id"] and second["version"] == 2
    s = get(alice, "acme", "stripe")
    assert (s["value"], s["version"], s["kind"], s["description"]) == ("sk_2", 2, "api_key", "Stripe")
    # Fields not given on a new version are kept; tags are stored sorted and unique.
    assert s["tags"] == ["pay", "prod"] and s["metadata"] == {"owner": "billing"}
    assert get(alice, "acme", "stripe", 1)["value"] == "sk_1"


def test_get_unknown_version_and_unknown_name(alice):
    save(alice, "acme", "k", "v")
    with raises_sqlstate("SH011"):
        get(alice, "acme", "k", 7)
    with raises_sqlstate("SH010"):
        get(alice, "acme", "nope")


def test_by_id_functions(alice):
    sid = save(alice, "acme", "db_url", "postgres://a")["id"]
    r = alice.execute("SELECT value, version FROM hush.get_secret_by_id(%s, %s)", ["acme", sid]).fetchone()
    assert r == ("postgres://a", 1)
    alice.execute("SELECT hush.update_secret_by_id(%s, %s, value => %s)", ["acme", sid, "postgres://b"])
    assert alice.execute("SELECT value FROM hush.get_secret_by_id(%s, %s, 1)", ["acme", sid]).fetchone() == ("postgres://a",)
    assert get(alice, "acme", "db_url")["value"] == "postgres://b"
    alice.execute("SELECT hush.delete_secret_by_id(%s, %s)", ["acme", sid])
    with raises_sqlstate("SH010"):
        alice.execute("SELECT * FROM hush.get_secret_by_id(%s, %s)", ["acme", sid])


def test_update_value_makes_version_metadata_does_not(alice):
    save(alice, "acme", "k", "v1", description="old")
    r = alice.execute("SELECT version FROM hush.update_secret(%s, %s, description => %s, tags => %s)",
                      ["acme", "k", "new", ["t"]]).fetchone()
    assert r == (1,)
    r = alice.execute("SELECT version FROM hush.update_secret(%s, %s, %s)", ["acme", "k", "v2"]).fetchone()
    assert r == (2,)
    s = get(alice, "acme", "k")
    assert (s["value"], s["description"], s["tags"]) == ("v2", "new", ["t"])
    with raises_sqlstate("SH010"):
        alice.execute("SELECT hush.update_secret(%s, %s, %s)", ["acme", "missing", "x"])


def test_check_and_set(alice):
    with raises_sqlstate("SH013"):  # expected a version of a secret that does not exist
        save(alice, "acme", "cas", "x", expected_version=1)
    assert save(alice, "acme", "cas", "v1", expected_version=0)["version"] == 1
    with raises_sqlstate("SH013"):  # 0 = create only
        save(alice, "acme", "cas", "v1b", expected_version=0)
    assert save(alice, "acme", "cas", "v2", expected_version=1)["version"] == 2
    with raises_sqlstate("SH013"):
        save(alice, "acme", "cas", "stale", expected_version=1)
    with raises_sqlstate("SH013"):
        alice.execute("SELECT hush.update_secret(%s, %s, %s, expected_version => 1)", ["acme", "cas", "stale"])
    s = get(alice, "acme", "cas")
    assert (s["value"], s["version"]) == ("v2", 2)


def test_delete_restore(alice):
    save(alice, "acme", "k", "v")
    alice.execute("SELECT hush.delete_secret(%s, %s)", ["acme", "k"])
    with raises_sqlstate("SH010"):
        get(alice, "acme", "k")
    assert alice.execute("SELECT hush.secret_exists(%s, %s)", ["acme", "k"]).fetchone() == (False,)
    assert alice.execute("SELECT count(*) FROM hush.list_secrets(%s)", ["acme"]).fetchone() == (0,)
    listed = rows(alice, "SELECT name, deleted_at FROM hush.list_secrets(%s, include_deleted => true)", ["acme"])
    assert listed[0]["name"] == "k" and listed[0]["deleted_at"] is not None
    with raises_sqlstate("SH010"):  # deleting twice
        alice.execute("SELECT hush.delete_secret(%s, %s)", ["acme", "k"])
    with raises_sqlstate("SH014"):  # saving over a deleted name is refused, not a silent resurrection
        save(alice, "acme", "k", "v2")
    r = rows(alice, "SELECT * FROM hush.restore_secret(%s, %s)", ["acme", "k"])[0]
    assert r["deleted_at"] is None and r["version"] == 1
    assert get(alice, "acme", "k")["value"] == "v"
    # Restoring a live secret is a no-op.
    assert rows(alice, "SELECT * FROM hush.restore_secret(%s, %s)", ["acme", "k"])[0]["version"] == 1
    with raises_sqlstate("SH010"):
        alice.execute("SELECT hush.restore_secret(%s, %s)", ["acme", "never"])


def test_destroy_versions(alice, db):
    for v in ("a", "b", "c"):
        save(alice, "acme", "k", v)
    with raises_sqlstate("SH011"):
        alice.execute("SELECT hush.destroy_secret(%s, %s, %s)", ["acme", "k", [1, 9]])
    assert alice.execute("SELECT hush.destroy_secret(%s, %s, %s)", ["acme", "k", [1, 2]]).fetchone() == (2,)
    with raises_sqlstate("SH015"):
        get(alice, "acme", "k", 1)
    assert get(alice, "acme", "k")["value"] == "c"
    vs = rows(alice, "SELECT version, destroyed, is_current FROM hush.secret_versions(%s, %s)", ["acme", "k"])
    assert [(v["version"], v["destroyed"], v["is_current"]) for v in vs] == [(1, True, False), (2, True, False), (3, False, True)]
    # The bytes are gone from the row, not just hidden.
    left = db.sql("SELECT count(*) FROM hush.secret_versions WHERE ciphertext IS NOT NULL OR wrapped_dek IS NOT NULL")
    assert left == [(1,)]
    assert alice.execute("SELECT hush.destroy_secret(%s, %s)", ["acme", "k"]).fetchone() == (1,)
    with raises_sqlstate("SH015"):
        get(alice, "acme", "k")


def destroy_behind_a_rollback(db, destroy: str) -> tuple[dict, bool, bool]:
    """Run `destroy` (SQL) as alice while another alice session holds an uncommitted
    rollback_secret of acme/k to version 1 (a new version), and commit the rollback once the
    destroy waits for it (never by the clock alone). Returns what the destroy gave ("n": its
    count, or "error"), whether it was seen waiting, and whether it still runs."""
    out: dict = {}
    with db.connect("alice", autocommit=False) as a, db.connect("alice") as b, db.connect() as su:
        a.execute("SELECT hush.rollback_secret('acme', 'k', 1)")
        b.execute("SET lock_timeout = '60s'")  # a hang fails the test instead of stalling it

        def run():
            try:
                out["n"] = b.execute(destroy).fetchone()[0]
            except psycopg.Error as e:
                out["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        blocker, waited = a.info.backend_pid, False
        for _ in range(600):
            if blocker in su.execute("SELECT pg_blocking_pids(%s)", [b.info.backend_pid]).fetchone()[0]:
                waited = True
                break
            if not t.is_alive():
                break
            time.sleep(0.05)
        a.commit()
        t.join(60)
    return out, waited, t.is_alive()


def test_destroy_of_all_versions_beside_a_rollback_destroys_its_copy_too(alice, db):
    """destroy_secret locks the secret's row as rollback_secret does: a destroy of every
    version that runs while a rollback (which copies an old value into a new version) is
    uncommitted waits for it, then destroys the copy as well. Without the lock it destroyed
    only the versions its snapshot showed and the old value came back as the current one."""
    for v in ("a", "b", "c"):
        save(alice, "acme", "k", v)
    # The rollback writes version 4.
    out, waited, running = destroy_behind_a_rollback(db, "SELECT hush.destroy_secret('acme', 'k')")
    assert waited and not running and "error" not in out, out
    assert out["n"] == 4
    assert db.sql("SELECT v.version, v.ciphertext IS NULL AND v.wrapped_dek IS NULL FROM hush.secret_versions v "
                  "JOIN hush.secrets s ON s.id = v.secret_id WHERE s.name = 'k' ORDER BY 1") == [
        (1, True), (2, True), (3, True), (4, True)]
    with raises_sqlstate("SH015"):
        get(alice, "acme", "k")


def test_destroy_names_a_version_committed_while_it_waited(alice, db):
    """A version the destroy's first look did not see (committed while it waited for the
    secret's row) is found once the row is its own: not SH011."""
    for v in ("a", "b"):
        save(alice, "acme", "k", v)
    # The rollback writes version 3, which the destroy names.
    out, _, _ = destroy_behind_a_rollback(db, "SELECT hush.destroy_secret('acme', 'k', ARRAY[3])")
    assert out == {"n": 1}
    with raises_sqlstate("SH015"):
        get(alice, "acme", "k")
    assert get(alice, "acme", "k", 2)["value"] == "b"


def test_list_pagination_prefix_tags(alice):
    for i in range(7):
        save(alice, "acme", f"svc/{i}", "x", tags=["even" if i % 2 == 0 else "odd", "all"])
    save(alice, "acme", "other", "x")
    page1 = rows(alice, "SELECT * FROM hush.list_secrets(%s, 1, 3, name_prefix => %s)", ["acme", "svc/"])
    assert [r["name"] for r in page1] == ["svc/0", "svc/1", "svc/2"] and {r["total"] for r in page1} == {7}
    page3 = rows(alice, "SELECT * FROM hush.list_secrets(%s, 3, 3, name_prefix => %s)", ["acme", "svc/"])
    assert [r["name"] for r in page3] == ["svc/6"]
    assert "value" not in page1[0]
    # A tag filter matches secrets that carry all the given tags.
    both = rows(alice, "SELECT name FROM hush.list_secrets(%s, tags => %s)", ["acme", ["even", "all"]])
    assert [r["name"] for r in both] == ["svc/0", "svc/2", "svc/4", "svc/6"]
    # per_page is clamped to 1000; page and per_page below 1 are refused.
    assert len(rows(alice, "SELECT * FROM hush.list_secrets(%s, 1, 100000)", ["acme"])) == 8
    with raises_sqlstate("SH004"):
        alice.execute("SELECT * FROM hush.list_secrets(%s, 0)", ["acme"])
    with raises_sqlstate("SH004"):
        alice.execute("SELECT * FROM hush.list_secrets(%s, 1, 0)", ["acme"])


def test_search(alice):
    save(alice, "acme", "Stripe_Key", "x", description="payments")
    save(alice, "acme", "github", "x", tags=["ci-Stripe"])
    save(alice, "acme", "slack", "x", description="chat")
    found = rows(alice, "SELECT name, total FROM hush.search_secrets(%s, %s)", ["acme", "stripe"])
    assert [r["name"] for r in found] == ["Stripe_Key", "github"] and found[0]["total"] == 2
    assert [r["name"] for r in rows(alice, "SELECT name FROM hush.search_secrets(%s, %s)", ["acme", "CHAT"])] == ["slack"]
    page2 = rows(alice, "SELECT name FROM hush.search_secrets(%s, %s, 2, 1)", ["acme", "stripe"])
    assert [r["name"] for r in page2] == ["github"]


def test_get_secrets_many(alice):
    for n in ("a", "b", "c"):
        save(alice, "acme", n, n.upper())
    got = alice.execute("SELECT name, value FROM hush.get_secrets(%s, %s)", ["acme", ["c", "a"]]).fetchall()
    assert got == [("c", "C"), ("a", "A")]
    with raises_sqlstate("SH010") as ei:
        alice.execute("SELECT * FROM hush.get_secrets(%s, %s)", ["acme", ["a", "zz"]])
    assert "1 of 2 secrets not found in tenant acme: 'z...' (2 chars)" in str(ei.value)  # not found: masked


def test_expiry(alice):
    save(alice, "acme", "temp", "v", expires_at="2000-01-01T00:00:00Z")
    with raises_sqlstate("SH012"):
        get(alice, "acme", "temp")
    meta = rows(alice, "SELECT expires_at FROM hush.list_secrets(%s)", ["acme"])[0]
    assert meta["expires_at"].year == 2000
    alice.execute("SELECT hush.update_secret(%s, %s, expires_at => 'infinity')", ["acme", "temp"])
    assert get(alice, "acme", "temp")["expires_at"] is None
    save(alice, "acme", "later", "v", expires_at="2999-01-01T00:00:00Z")
    assert get(alice, "acme", "later")["value"] == "v"


def test_expiries_clients_cannot_read_are_refused(alice, db):
    """'-infinity' and years outside 1..9999 (UTC) are no expiry a client can decode (Python's
    datetime cannot): SH004 on every write path, nothing written; the bounds themselves pass
    and 'infinity' still removes the expiry."""
    sid = save(alice, "acme", "k", "v")["id"]

    def state():
        return (db.sql("SELECT * FROM hush.secrets ORDER BY id"), db.sql("SELECT count(*) FROM hush.secret_versions"),
                db.sql("SELECT max(id) FROM hush.audit_log"))
    before = state()
    for bad in ("-infinity", "0001-12-31 23:59:59+00 BC", "0001-01-01 00:00:00+01", "10000-01-01 00:00:00+00",
                "9999-12-31 23:00:00-01", "294276-01-01 00:00:00+00"):
        for name in ("k", "new"):
            with raises_sqlstate("SH004") as ei:
                save(alice, "acme", name, "v2", expires_at=bad)
            assert "expires_at must be between 0001-01-01 and 9999-12-31" in str(ei.value)
        with raises_sqlstate("SH004"):
            save(alice, "acme", "k", "v2", expected_version=1, expires_at=bad)
        for value in ("v2", None):
            with raises_sqlstate("SH004"):
                alice.execute("SELECT hush.update_secret('acme', 'k', %s, expires_at => %s)", [value, bad])
            with raises_sqlstate("SH004"):
                alice.execute("SELECT hush.update_secret_by_id('acme', %s, %s, expires_at => %s)", [sid, value, bad])
    assert state() == before
    # In any session time zone and date style: the bounds are UTC's.
    alice.execute("SET TimeZone = 'Pacific/Kiritimati'")
    alice.execute("SET DateStyle = 'SQL, DMY'")
    alice.execute("SELECT version FROM hush.save_secret('acme', 'k', 'v2', expires_at => '0001-01-01 00:00:00+00')")
    assert db.sql("SELECT expires_at = '0001-01-01 00:00:00+00' FROM hush.secrets WHERE name = 'k'") == [(True,)]
    alice.execute("SELECT hush.update_secret('acme', 'k', expires_at => '9999-12-31 23:59:59.999999+00')")
    assert db.sql("SELECT expires_at = '9999-12-31 23:59:59.999999+00' FROM hush.secrets WHERE name = 'k'") == [
        (True,)]
    with raises_sqlstate("SH004"):
        alice.execute("SELECT hush.update_secret('acme', 'k', expires_at => '10000-01-01 00:00:00+00')")
    alice.execute("SELECT hush.update_secret_by_id('acme', %s, expires_at => 'infinity')", [sid])
    assert db.sql("SELECT expires_at FROM hush.secrets WHERE name = 'k'") == [(None,)]


@pytest.mark.parametrize("value", [
    "",
    "plain ascii",
    "naïve café ☕ 🔐 日本語 עברית",
    "line1\nline2\ttab\r\n",
    "\u200b zero-width and \ufeff BOM",
    "x" * 65536,
])
def test_values_round_trip_byte_for_byte(alice, value):
    save(alice, "acme", "v", value)
    got = get(alice, "acme", "v")["value"]
    assert got.encode("utf-8") == value.encode("utf-8")


def test_exists_and_versions(alice):
    assert alice.execute("SELECT hush.secret_exists(%s, %s)", ["acme", "k"]).fetchone() == (False,)
    save(alice, "acme", "k", "1")
    save(alice, "acme", "k", "2")
    assert alice.execute("SELECT hush.secret_exists(%s, %s)", ["acme", "k"]).fetchone() == (True,)
    vs = rows(alice, "SELECT * FROM hush.secret_versions(%s, %s)", ["acme", "k"])
    assert [v["version"] for v in vs] == [1, 2]
    assert all(v["created_by"] == "alice" and len(v["key_id"]) == 32 for v in vs)
    assert "value" not in vs[0]


def test_reader_cannot_write(db):
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    with db.connect("rita") as r:
        assert get(r, "acme", "k")["value"] == "v"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            save(r, "acme", "k", "v2")
