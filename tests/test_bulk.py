"""hush.save_secrets: many secrets in one call, all or nothing, audited per secret;
and pagination that stays cheap in large tenants (keyset `after`, bounded totals)."""
from __future__ import annotations

import psycopg
import pytest

from helpers import get, raises_sqlstate, rows, save


def save_many(conn, tenant, names, values, **kw):
    args = "".join(f", {k} => %({k})s" for k in kw)
    return rows(conn, f"SELECT * FROM hush.save_secrets(%(t)s, %(n)s, %(v)s{args})",
                {"t": tenant, "n": names, "v": values, **kw})


def _counts(db):
    return db.sql("SELECT (SELECT count(*) FROM hush.secrets), (SELECT count(*) FROM hush.secret_versions),"
                  " (SELECT count(*) FROM hush.audit_log)")[0]


def test_creates_and_adds_versions_with_one_audit_row_each(db):
    with db.connect("alice") as a:
        save(a, "acme", "b", "old-b", tags=["keep"])
        out = save_many(a, "acme", ["a", "b", "c"], ["A", "B2", "C"], kind="api_key", tags=["imported"])
        assert [(r["name"], r["version"]) for r in out] == [("a", 1), ("b", 2), ("c", 1)]
        assert [get(a, "acme", n)["value"] for n in "abc"] == ["A", "B2", "C"]
        assert get(a, "acme", "b", 1)["value"] == "old-b"
        assert get(a, "acme", "a")["tags"] == ["imported"] and get(a, "acme", "a")["kind"] == "api_key"
        assert save_many(a, "acme", [], []) == []
    audit = db.sql("SELECT action, secret_name, version, db_role FROM hush.audit_log"
                   " WHERE action IN ('create', 'new_version') ORDER BY id")
    assert audit[1:] == [("create", "a", 1, "alice"), ("new_version", "b", 2, "alice"), ("create", "c", 1, "alice")]


def test_one_transaction_and_few_subtransactions(db):
    """A batch of 2,000 is one set-based call: every row shares one transaction id."""
    with db.connect("alice") as a:
        names = [f"k{i}" for i in range(2000)]
        save_many(a, "acme", names, [f"v{i}" for i in range(2000)])
        assert get(a, "acme", "k1999")["value"] == "v1999"
    assert db.sql("SELECT count(DISTINCT txid), count(*) FROM hush.audit_log WHERE action = 'create'") == [(1, 2000)]


@pytest.mark.parametrize("names,values,code", [
    (["ok", ""], ["v", "v"], "SH001"),
    (["ok", "bad\x01"], ["v", "v"], "SH001"),
    (["ok", "dup", "dup"], ["v", "v", "v"], "SH004"),
    (["ok", "big"], ["v", "x" * 65537], "SH003"),
    (["ok", "n"], ["v", None], "SH004"),
    (["ok"], ["v", "w"], "SH004"),
])
def test_a_bad_row_fails_the_whole_call_and_writes_nothing(db, names, values, code):
    with db.connect("alice") as a:
        save(a, "acme", "existing", "v")
    before = _counts(db)
    with db.connect("alice") as a, raises_sqlstate(code) as ei:
        save_many(a, "acme", names, values)
    assert "x" * 100 not in str(ei.value)
    assert _counts(db) == before


def test_a_deleted_name_fails_the_whole_call(db):
    with db.connect("alice") as a:
        save(a, "acme", "gone", "v")
        a.execute("SELECT hush.delete_secret('acme', 'gone')")
    before = _counts(db)
    with db.connect("alice") as a, raises_sqlstate("SH014") as ei:
        save_many(a, "acme", ["new1", "gone", "new2"], ["1", "2", "3"])
    assert "'gone'" in str(ei.value)
    assert _counts(db) == before


def test_bulk_respects_tenants_and_roles(db):
    with db.connect("alice") as a, raises_sqlstate("SH020"):
        save_many(a, "globex", ["x"], ["v"])
    with db.connect("rita") as r, pytest.raises(psycopg.errors.InsufficientPrivilege):
        save_many(r, "acme", ["x"], ["v"])
    assert db.sql("SELECT count(*) FROM hush.secrets") == [(0,)]


def test_keyset_pagination_and_bounded_total(db):
    with db.connect("alice") as a:
        names = [f"n{i:05d}" for i in range(10050)]  # more than the count cap of 1,000
        for i in range(0, len(names), 5000):
            save_many(a, "acme", names[i:i + 5000], ["v"] * len(names[i:i + 5000]))
        page = rows(a, "SELECT name, total, total_exact FROM hush.list_secrets('acme', per_page => 3, after => 'n09998')")
        assert [r["name"] for r in page] == ["n09999", "n10000", "n10001"]
        # More than 1,000 matches: the total is capped and says so.
        assert (page[0]["total"], page[0]["total_exact"]) == (1000, False)
        small = rows(a, "SELECT total, total_exact FROM hush.list_secrets('acme', name_prefix => 'n0999')")
        assert {(r["total"], r["total_exact"]) for r in small} == {(10, True)}
        # Walking a prefix by keyset visits every name once.
        seen, after = [], None
        while True:
            got = [r["name"] for r in rows(a, "SELECT name FROM hush.list_secrets('acme', per_page => 4,"
                                              " name_prefix => 'n0010', after => %s)", [after])]
            if not got:
                break
            seen += got
            after = got[-1]
        assert seen == [f"n0010{i}" for i in range(10)]
        found = rows(a, "SELECT name FROM hush.search_secrets('acme', 'N1004', per_page => 2, after => 'n10045')")
        assert [r["name"] for r in found] == ["n10046", "n10047"]
