"""Two writers at once: check-and-set lets exactly one win; plain saves lose nothing."""
from __future__ import annotations

import threading
import time

import psycopg

from helpers import get, save

VALUE_A = "writer-a-value-5d1e"
VALUE_B = "writer-b-value-88c0"


def _wait_until_blocked(db, user: str) -> str:
    """The query text of `user`'s backend once it waits on a lock."""
    for _ in range(200):
        found = db.sql("SELECT query FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'", [user])
        if found:
            return found[0][0]
        time.sleep(0.05)
    raise AssertionError(f"{user} never blocked")


def _race(db, kw_a: dict, kw_b: dict) -> tuple[object, object]:
    """alice saves inside an open transaction, bob's save blocks on her row lock,
    then alice commits. Returns (bob's result or exception, bob's query text as seen in pg_stat_activity)."""
    db.sql("SELECT hush.grant_tenant('bob', 'acme')")
    a = db.connect("alice", autocommit=False)
    b = db.connect("bob", autocommit=False)
    out: dict[str, object] = {}

    def bob() -> None:
        try:
            out["result"] = save(b, "acme", "k", VALUE_B, **kw_b)
            b.commit()
        except psycopg.Error as e:
            out["result"] = e
            b.rollback()

    try:
        save(a, "acme", "k", VALUE_A, **kw_a)
        t = threading.Thread(target=bob)
        t.start()
        query = _wait_until_blocked(db, "bob")
        a.commit()
        t.join(30)
        return out["result"], query
    finally:
        a.close()
        b.close()


def test_check_and_set_two_writers_exactly_one_wins(db):
    with db.connect("alice") as a:
        save(a, "acme", "k", "v1")
    result, query = _race(db, {"expected_version": 1}, {"expected_version": 1})
    assert isinstance(result, psycopg.Error) and result.sqlstate == "SH013"
    # Values travel as bind parameters: the server's view of the query holds none.
    assert "hush.save_secret" in query and VALUE_B not in query
    with db.connect("alice") as a:
        s = get(a, "acme", "k")
    assert (s["value"], s["version"]) == (VALUE_A, 2)
    assert db.sql("SELECT count(*) FROM hush.secret_versions") == [(2,)]


def test_two_create_only_writers_exactly_one_wins(db):
    result, _ = _race(db, {"expected_version": 0}, {"expected_version": 0})
    assert isinstance(result, psycopg.Error) and result.sqlstate == "SH013"
    with db.connect("alice") as a:
        assert get(a, "acme", "k")["value"] == VALUE_A


def test_plain_saves_both_land_as_versions(db):
    with db.connect("alice") as a:
        save(a, "acme", "k", "v1")
    result, _ = _race(db, {}, {})
    assert isinstance(result, dict) and result["version"] == 3
    with db.connect("alice") as a:
        assert [get(a, "acme", "k", v)["value"] for v in (1, 2, 3)] == ["v1", VALUE_A, VALUE_B]
