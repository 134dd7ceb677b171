"""The secret API under scoped grants (issue 20): every function checks its capability on
the secret's name. A name outside what the caller may list answers exactly as one that
does not exist (counts and pages included); one it may list but not act on as asked is
refused (SH020); writes, deletes and destroys outside are refused from the name alone,
before any lookup. Audit rows name the grant; hush.audit_log shows the rows under the
caller's `audit` prefixes. Real server, non-superuser roles (the superuser only sets up
and inspects); grants made by adam (hush_admin) with hush.grant / hush.revoke.

The cast: pay reads payments/ (a payments service), ci writes ci/ (a CI job), oncall lists
the whole tenant (an on-call engineer), aud audits payments/ (an auditor).
"""
from __future__ import annotations

import uuid
from typing import Any, Callable

import psycopg
import pytest

from helpers import last_audit_id, module_roles, raises_sqlstate, rows, save

SECRET_CAPS = ["read", "list", "write", "delete", "destroy"]
# The capabilities that let a role list a name (access.IMPLIED_BY): a delete, restore or
# destroy tells whether the name exists, so they imply list too.
LISTS = {"read", "list", "write", "delete", "destroy"}
ROLES = {
    "sc_pay": "LOGIN IN ROLE hush_reader", "sc_ci": "LOGIN IN ROLE hush_writer",
    "sc_oncall": "LOGIN IN ROLE hush_reader", "sc_aud": "LOGIN IN ROLE hush_auditor",
    "sc_group": "NOLOGIN IN ROLE hush_reader", "sc_member": "LOGIN IN ROLE sc_group",
    **{f"sc_{c}": "LOGIN IN ROLE hush_writer" for c in SECRET_CAPS + ["outside"]},
}


people = module_roles(ROLES)  # the roles (cluster-wide), made once for this module


def grant(db: Any, role: str, prefix: str, caps: list[str], tenant: str = "acme") -> None:
    db.sql("SELECT hush.grant(%s, %s, %s, %s::text[])", [role, tenant, prefix, caps], user="adam")


def revoke(db: Any, role: str, prefix: str, caps: list[str], tenant: str = "acme") -> None:
    db.sql("SELECT hush.revoke(%s, %s, %s, %s::text[])", [role, tenant, prefix, caps], user="adam")


NAMES = ["payments/stripe", "payments/adyen", "paymentsx", "ci/deploy_key", "db/password"]


@pytest.fixture
def acme(db: Any, people: None) -> Any:
    """acme with NAMES (saved by alice, granted the whole tenant) and the cast's grants."""
    grant(db, "sc_pay", "payments/", ["read"])
    grant(db, "sc_ci", "ci/", ["write"])
    grant(db, "sc_oncall", "", ["list"])
    grant(db, "sc_aud", "payments/", ["audit"])
    with db.connect("alice") as alice:
        for n in NAMES:
            save(alice, "acme", n, f"value of {n}")
    return db


def fails(db: Any, user: str, sql: str, params: Any = None) -> tuple[str, str]:
    """(SQLSTATE, message) of a call that must fail."""
    with db.connect(user) as conn:
        with pytest.raises(psycopg.Error) as ei:
            conn.execute(sql, params).fetchall()
    return ei.value.sqlstate or "", ei.value.diag.message_primary or ""


def one(db: Any, user: str, sql: str, params: Any = None) -> Any:
    with db.connect(user) as conn:
        return conn.execute(sql, params).fetchone()[0]


def ident(db: Any, name: str) -> uuid.UUID:
    return db.sql("SELECT id FROM hush.secrets WHERE tenant_id = 'acme' AND name = %s", [name])[0][0]


def state(db: Any) -> list[Any]:
    """Everything a call could change, as the superuser sees it."""
    return [db.sql("SELECT tenant_id, name, current_version, deleted_at, updated_at, tags FROM hush.secrets "
                   "ORDER BY 1, 2"),
            db.sql("SELECT secret_id, version, destroyed_at FROM hush.secret_versions ORDER BY 1, 2"),
            last_audit_id(db)]


# -- reads and listings: outside is nowhere ------------------------------------------------

def test_a_prefix_reader_reads_inside_and_outside_gets_what_a_missing_name_gets(acme: Any) -> None:
    db = acme
    stripe = one(db, "sc_pay", "SELECT value FROM hush.get_secret('acme', 'payments/stripe')")
    assert stripe == "value of payments/stripe"
    # db/password exists, db/passwore does not: same first characters, same length, same answer.
    for sql in ("SELECT * FROM hush.get_secret('acme', %s)", "SELECT * FROM hush.secret_versions('acme', %s)",
                "SELECT * FROM hush.get_secrets('acme', ARRAY['payments/stripe', %s])"):
        assert fails(db, "sc_pay", sql, ["db/password"]) == fails(db, "sc_pay", sql, ["db/passwore"])
        assert fails(db, "sc_pay", sql, ["db/password"])[0] == "SH010"
    # Not a prefix of a name: paymentsx is outside payments/.
    assert fails(db, "sc_pay", "SELECT * FROM hush.get_secret('acme', 'paymentsx')")[0] == "SH010"
    by_id = "SELECT * FROM hush.get_secret_by_id('acme', %s)"
    outside = fails(db, "sc_pay", by_id, [ident(db, "db/password")])
    missing = fails(db, "sc_pay", by_id, [uuid.uuid4()])
    assert outside[0] == missing[0] == "SH010"
    assert outside[1].split(" not found")[1] == missing[1].split(" not found")[1]
    for by, key in (("", "db/password"), ("_by_id", ident(db, "db/password"))):
        assert one(db, "sc_pay", f"SELECT hush.secret_exists{by}('acme', %s)", [key]) is False
    assert one(db, "sc_pay", "SELECT hush.secret_exists_by_id('acme', %s)", [ident(db, "payments/adyen")]) is True


def test_a_listing_holds_only_names_under_the_callers_prefixes_with_their_totals_and_pages(acme: Any) -> None:
    db = acme
    with db.connect("alice") as alice:  # payments/ names among others, before, between and after them
        for n in ["a/1", "payments/p1", "payments/p2", "pay", "payments/p3", "q/1", "z/9", "ci/b"]:
            save(alice, "acme", n, "v")
    mine = sorted(n for n in NAMES + ["payments/p1", "payments/p2", "payments/p3"] if n.startswith("payments/"))

    def listing(user: str, **kw: Any) -> list[dict]:
        args = "".join(f", {k} => %({k})s" for k in kw)
        with db.connect(user) as conn:
            return rows(conn, f"SELECT name, total, total_exact FROM hush.list_secrets('acme'{args})", kw)

    got = listing("sc_pay")
    assert [r["name"] for r in got] == mine and {(r["total"], r["total_exact"]) for r in got} == {(len(mine), True)}
    pages = [listing("sc_pay", page=p, per_page=2) for p in (1, 2, 3)]
    assert [[r["name"] for r in pg] for pg in pages] == [mine[0:2], mine[2:4], mine[4:]]
    assert {r["total"] for pg in pages for r in pg} == {len(mine)}
    after, seen = None, []
    while True:
        page = listing("sc_pay", per_page=2, after=after)
        if not page:
            break
        seen += [r["name"] for r in page]
        after = page[-1]["name"]
    assert seen == mine
    assert [r["name"] for r in listing("sc_pay", name_prefix="payments/p")] == mine[1:4]
    assert listing("sc_pay", name_prefix="db/") == []
    with db.connect("sc_pay") as conn:
        found = rows(conn, "SELECT name, total FROM hush.search_secrets('acme', 'p', per_page => 2)")
        assert [r["name"] for r in found] == mine[:2] and found[0]["total"] == len(mine)
    # Grants add up: with ci/ too, one sorted listing of both.
    grant(db, "sc_pay", "ci/", ["list"])
    both = sorted(mine + ["ci/b", "ci/deploy_key"])
    assert [r["name"] for r in listing("sc_pay")] == both and listing("sc_pay")[0]["total"] == len(both)
    # The whole tenant: everything, as before.
    assert len(listing("sc_oncall")) == len(NAMES) + 8


# -- every function, one capability at a time ------------------------------------------------

def _save(conn: psycopg.Connection, n: str, _: Any) -> Any:
    return conn.execute("SELECT version FROM hush.save_secret('acme', %s, 'new')", [n])


# name -> (capability it needs, what a caller without it gets, the call on secret n (id i)).
# Without it: "read" SH020 if the caller may list the name, else SH010 (the name is hidden);
# "hidden" SH010; "listing" no row of it; "exists" false; "write" SH020; "by_id" as "read",
# and it needs the name listed too.
FUNCTIONS: dict[str, tuple[str, str, Callable[[psycopg.Connection, str, Any], Any]]] = {
    "get_secret": ("read", "read", lambda c, n, i: c.execute("SELECT value FROM hush.get_secret('acme', %s)", [n])),
    "get_secret_by_id": ("read", "read", lambda c, n, i: c.execute(
        "SELECT value FROM hush.get_secret_by_id('acme', %s)", [i])),
    "get_secrets": ("read", "read", lambda c, n, i: c.execute(
        "SELECT value FROM hush.get_secrets('acme', ARRAY[%s])", [n])),
    "list_secrets": ("list", "listing", lambda c, n, i: c.execute(
        "SELECT name FROM hush.list_secrets('acme', include_deleted => true)")),
    "search_secrets": ("list", "listing", lambda c, n, i: c.execute(
        "SELECT name FROM hush.search_secrets('acme', %s)", [n])),
    "secret_exists": ("list", "exists", lambda c, n, i: c.execute("SELECT hush.secret_exists('acme', %s)", [n])),
    "secret_exists_by_id": ("list", "exists", lambda c, n, i: c.execute(
        "SELECT hush.secret_exists_by_id('acme', %s)", [i])),
    "secret_versions": ("list", "hidden", lambda c, n, i: c.execute(
        "SELECT version FROM hush.secret_versions('acme', %s)", [n])),
    "save_secret": ("write", "write", _save),
    "save_secret, new": ("write", "write", lambda c, n, i: _save(c, n + "-new", i)),
    "save_secret, create only": ("write", "write", lambda c, n, i: c.execute(
        "SELECT version FROM hush.save_secret('acme', %s, 'v', expected_version => 0)", [n + "-new"])),
    "save_secret, create only, taken": ("write", "write-taken", lambda c, n, i: c.execute(
        "SELECT version FROM hush.save_secret('acme', %s, 'v', expected_version => 0)", [n])),
    "save_secret, check-and-set": ("write", "write", lambda c, n, i: c.execute(
        "SELECT version FROM hush.save_secret('acme', %s, 'v', expected_version => 2)", [n])),
    "save_secrets": ("write", "write", lambda c, n, i: c.execute(
        "SELECT version FROM hush.save_secrets('acme', ARRAY[%s], ARRAY['v'])", [n])),
    "update_secret": ("write", "write", lambda c, n, i: c.execute(
        "SELECT version FROM hush.update_secret('acme', %s, 'v')", [n])),
    "update_secret, metadata": ("write", "write", lambda c, n, i: c.execute(
        "SELECT version FROM hush.update_secret('acme', %s, tags => ARRAY['t'])", [n])),
    "update_secret_by_id": ("write", "by_id", lambda c, n, i: c.execute(
        "SELECT version FROM hush.update_secret_by_id('acme', %s, 'v')", [i])),
    "delete_secret": ("delete", "write", lambda c, n, i: c.execute("SELECT hush.delete_secret('acme', %s)", [n])),
    "delete_secret_by_id": ("delete", "by_id", lambda c, n, i: c.execute(
        "SELECT hush.delete_secret_by_id('acme', %s)", [i])),
    "restore_secret": ("delete", "write", lambda c, n, i: c.execute(
        "SELECT name FROM hush.restore_secret('acme', %s)", [n + "-gone"])),
    "destroy_secret": ("destroy", "write", lambda c, n, i: c.execute("SELECT hush.destroy_secret('acme', %s)", [n])),
}
ALLOWED_BY = {"read": {"read"}, "list": LISTS, "write": {"write"}, "delete": {"delete"}, "destroy": {"destroy"}}


@pytest.mark.parametrize("fn", list(FUNCTIONS))
def test_each_function_needs_its_capability_on_the_name(db: Any, people: None, fn: str) -> None:
    """sc_<cap> holds only <cap> on x/ and acts on x/<cap>; sc_outside holds every secret
    capability on x/ and acts on y/outside. Each call is allowed exactly when the capability
    it needs is held on the name; otherwise it is hidden or refused, and nothing changes."""
    need, without, call = FUNCTIONS[fn]
    for cap in SECRET_CAPS:
        grant(db, f"sc_{cap}", "x/", [cap])
    grant(db, "sc_outside", "x/", SECRET_CAPS)
    targets = {cap: f"x/{cap}" for cap in SECRET_CAPS} | {"outside": "y/outside"}
    with db.connect("alice") as alice:
        for n in targets.values():
            save(alice, "acme", n, "first-value-3b1f")
            save(alice, "acme", n, "second-value-3b1f")
            save(alice, "acme", n + "-gone", "v")
            alice.execute("SELECT hush.delete_secret('acme', %s)", [n + "-gone"])
    for cap, name in targets.items():
        held = set() if cap == "outside" else {cap}
        lists = bool(held & LISTS)
        before = state(db)
        with db.connect(f"sc_{cap}") as conn:
            # By id, a name the caller may not list is not found, whatever else it may do there.
            allowed = bool(held & ALLOWED_BY[need]) and (lists or without != "by_id")
            if allowed and without == "write-taken":
                with raises_sqlstate("SH013"):  # the caller may write there: the name is taken
                    call(conn, name, ident(db, name))
                continue
            if allowed:
                got = call(conn, name, ident(db, name)).fetchall()
                if without == "listing":
                    assert (name,) in got, (fn, cap, got)
                if without == "exists":
                    assert got == [(True,)], (fn, cap)
                continue
            if without == "listing":
                got = call(conn, name, ident(db, name)).fetchall()
                assert not any(r[0].startswith(name) for r in got), (fn, cap, got)
            elif without == "exists":
                assert call(conn, name, ident(db, name)).fetchall() == [(False,)], (fn, cap)
            else:
                code = {"hidden": "SH010", "write": "SH020", "write-taken": "SH020"}.get(
                    without, "SH020" if lists else "SH010")
                with raises_sqlstate(code) as ei:
                    call(conn, name, ident(db, name))
                assert "value-3b1f" not in str(ei.value)
        assert state(db) == before, (fn, cap)


# -- writes outside: refused from the name alone ---------------------------------------------

def test_a_write_outside_is_refused_alike_whether_the_name_exists_or_not_and_writes_nothing(acme: Any) -> None:
    db = acme
    with db.connect("alice") as alice:
        save(alice, "acme", "db/gone", "v")
        alice.execute("SELECT hush.delete_secret('acme', 'db/gone')")
    before = state(db)
    for sql in ("SELECT * FROM hush.save_secret('acme', %s, 'planted')",
                "SELECT * FROM hush.save_secret('acme', %s, 'planted', expected_version => 0)",
                "SELECT * FROM hush.save_secret('acme', %s, 'planted', expected_version => 7)",
                "SELECT * FROM hush.update_secret('acme', %s, 'planted')",
                "SELECT * FROM hush.update_secret('acme', %s, description => 'x')"):
        # An existing name, a deleted one, one that never was: one answer, no unique violation.
        got = {n: fails(db, "sc_ci", sql, [n]) for n in ("db/password", "db/gone", "db/passwore")}
        assert {code for code, _ in got.values()} == {"SH020"}, (sql, got)
        assert got["db/password"][1] == got["db/passwore"][1]
        assert "may not write" in got["db/password"][1]
    code, msg = fails(db, "sc_ci", "SELECT * FROM hush.save_secrets('acme', ARRAY['ci/a', 'db/password', 'q/x'], "
                      "ARRAY['1', '2', '3'])")
    assert code == "SH020" and "2 of 3" in msg and "'db/p...'" in msg and "'ci/a" not in msg
    assert state(db) == before
    # Inside, the same calls work.
    with db.connect("sc_ci") as ci:
        assert save(ci, "acme", "ci/new", "v")["version"] == 1
        assert ci.execute("SELECT count(*) FROM hush.save_secrets('acme', ARRAY['ci/a', 'ci/b'], "
                          "ARRAY['1', '2'])").fetchone() == (2,)


# -- audit rows name the grant -----------------------------------------------------------------

def test_audit_rows_record_the_grant_that_allowed_each_action(acme: Any) -> None:
    db = acme
    grant(db, "sc_ci", "ci/", ["delete", "destroy"])
    grant(db, "sc_group", "payments/", ["read"])
    since = last_audit_id(db)
    with db.connect("sc_pay") as pay:
        pay.execute("SELECT * FROM hush.get_secret('acme', 'payments/stripe')")
        pay.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['payments/stripe', 'payments/adyen'])")
        pay.execute("SELECT * FROM hush.get_secret_by_id('acme', %s)", [ident(db, "payments/adyen")])
    with db.connect("sc_member") as member:  # through the group whose privileges it has
        member.execute("SELECT * FROM hush.get_secret('acme', 'payments/stripe')")
    with db.connect("sc_ci") as ci:
        save(ci, "acme", "ci/a", "1")
        save(ci, "acme", "ci/a", "2", expected_version=1)
        ci.execute("SELECT * FROM hush.save_secrets('acme', ARRAY['ci/b', 'ci/a'], ARRAY['1', '3'])")
        ci.execute("SELECT * FROM hush.update_secret('acme', 'ci/a', description => 'd')")
        ci.execute("SELECT * FROM hush.update_secret_by_id('acme', %s, 'v')", [ident(db, "ci/b")])
        ci.execute("SELECT hush.delete_secret('acme', 'ci/a')")
        ci.execute("SELECT * FROM hush.restore_secret('acme', 'ci/a')")
        ci.execute("SELECT hush.delete_secret_by_id('acme', %s)", [ident(db, "ci/b")])
        ci.execute("SELECT hush.destroy_secret('acme', 'ci/a', ARRAY[1])")
    with db.connect("alice") as alice:
        alice.execute("SELECT * FROM hush.get_secret('acme', 'db/password')")
    got = db.sql("SELECT db_role, action, secret_name, detail FROM hush.audit_log WHERE id > %s ORDER BY id", [since])

    def g(role: str, prefix: str) -> list:
        return sorted({"tenant": "acme", "role": role, "prefix": prefix}.items())
    # In call order, but for the rows of one get_secrets or save_secrets (one statement each).
    assert sorted(repr((r, a, n, sorted(d["grant"].items()))) for r, a, n, d in got) == sorted(map(repr, [
        ("sc_pay", "read", "payments/stripe", g("sc_pay", "payments/")),
        ("sc_pay", "read", "payments/stripe", g("sc_pay", "payments/")),
        ("sc_pay", "read", "payments/adyen", g("sc_pay", "payments/")),
        ("sc_pay", "read", "payments/adyen", g("sc_pay", "payments/")),
        ("sc_member", "read", "payments/stripe", g("sc_group", "payments/")),
        ("sc_ci", "create", "ci/a", g("sc_ci", "ci/")),
        ("sc_ci", "new_version", "ci/a", g("sc_ci", "ci/")),
        ("sc_ci", "create", "ci/b", g("sc_ci", "ci/")),
        ("sc_ci", "new_version", "ci/a", g("sc_ci", "ci/")),
        ("sc_ci", "update_metadata", "ci/a", g("sc_ci", "ci/")),
        ("sc_ci", "new_version", "ci/b", g("sc_ci", "ci/")),
        ("sc_ci", "delete", "ci/a", g("sc_ci", "ci/")),
        ("sc_ci", "restore", "ci/a", g("sc_ci", "ci/")),
        ("sc_ci", "delete", "ci/b", g("sc_ci", "ci/")),
        ("sc_ci", "destroy", "ci/a", g("sc_ci", "ci/")),
        ("alice", "read", "db/password", g("alice", "")),
    ]))
    # A superuser acting as itself holds no grant, and says so, though PostgreSQL's pg_has_role
    # says it has the privileges of every role (alice's grant included).
    since = last_audit_id(db)
    with db.connect() as su:
        su.execute("SELECT * FROM hush.get_secret('acme', 'db/password')")
        su.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['db/password'])")
        save(su, "acme", "db/password", "by the superuser")
    details = [d for (d,) in db.sql("SELECT detail FROM hush.audit_log WHERE id > %s", [since])]
    assert len(details) == 3 and all(d["superuser"] is True and "grant" not in d for d in details)


def test_one_read_and_a_batch_record_the_same_grant_when_several_allow(acme: Any) -> None:
    """The role's own grant before those of roles whose privileges it has, then the longest
    prefix: get_secret (one name) and get_secrets (a join over the batch) choose alike."""
    db = acme
    grant(db, "sc_member", "payments/", ["read"])
    grant(db, "sc_member", "payments/s", ["read"])
    grant(db, "sc_group", "payments/stripe", ["read"])  # longer, but not the member's own
    grant(db, "sc_group", "", ["read"])
    since = last_audit_id(db)
    with db.connect("sc_member") as member:
        for n in ("payments/stripe", "payments/adyen", "db/password"):
            member.execute("SELECT * FROM hush.get_secret('acme', %s)", [n])
        member.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['payments/stripe', 'payments/adyen', "
                       "'db/password'])")
    got = db.sql("SELECT secret_name, detail->'grant'->>'role', detail->'grant'->>'prefix' FROM hush.audit_log "
                 "WHERE id > %s", [since])
    want = [("payments/stripe", "sc_member", "payments/s"), ("payments/adyen", "sc_member", "payments/"),
            ("db/password", "sc_group", "")]
    assert got[:3] == want and sorted(got[3:]) == sorted(want)


# -- the audit trail by prefix -----------------------------------------------------------------

def test_audit_log_shows_the_rows_under_the_callers_audit_prefixes(acme: Any) -> None:
    db = acme
    with db.connect("sc_pay") as pay:
        for _ in range(3):
            pay.execute("SELECT * FROM hush.get_secret('acme', 'payments/stripe')")
    with db.connect("alice") as alice:
        alice.execute("SELECT * FROM hush.get_secret('acme', 'db/password')")
    db.sql("SELECT hush.configure_tenant('acme', audit_reads => true)", user="adam")  # a row about no secret
    log = "SELECT secret_name, action, cursor FROM hush.audit_log('acme', max_rows => %s, after => %s)"
    with db.connect("sc_aud") as aud:
        mine = rows(aud, log, [1000, None])
        assert mine and all(r["secret_name"].startswith("payments/") for r in mine)
        assert len(mine) == 2 + 3  # two creates, three reads
        walked, after = [], None  # max_rows and cursors count only what the caller sees
        while page := rows(aud, log, [2, after]):
            walked += page
            after = page[-1]["cursor"]
        assert walked == mine
    with db.connect("alice") as alice:  # the whole tenant: every row, those about no secret too
        every = rows(alice, log, [1000, None])
        assert {r["secret_name"] for r in every} >= {None, "db/password", "payments/stripe"}
    for role in ("sc_pay", "sc_oncall"):  # grants on acme, none of them `audit`
        with db.connect(role) as conn:
            assert rows(conn, log, [1000, None]) == []
    with raises_sqlstate("SH020"):  # no grant on the tenant at all
        db.sql("SELECT * FROM hush.audit_log('globex')", user="sc_aud")


# -- revocation, next statement ----------------------------------------------------------------

def test_a_revoke_takes_effect_in_the_next_statement_of_an_open_session(acme: Any) -> None:
    db = acme
    read = "SELECT value FROM hush.get_secret('acme', 'payments/stripe')"
    with db.connect("sc_pay") as pay, db.connect("sc_oncall", autocommit=False) as oncall:
        assert pay.execute(read).fetchone() == ("value of payments/stripe",)
        assert oncall.execute("SELECT count(*) FROM hush.list_secrets('acme')").fetchone() == (len(NAMES),)
        revoke(db, "sc_pay", "payments/", ["read"])
        revoke(db, "sc_oncall", "", ["list"])
        grant(db, "sc_oncall", "db/", ["list"])
        with raises_sqlstate("SH020"):  # no grant on acme left at all
            pay.execute(read)
        # In the same READ COMMITTED transaction as the listing above.
        assert oncall.execute("SELECT count(*) FROM hush.list_secrets('acme')").fetchone() == (1,)
        oncall.rollback()
        grant(db, "sc_pay", "payments/", ["list"])  # list, not read: refused, no longer hidden
        with raises_sqlstate("SH020"):
            pay.execute(read)
        grant(db, "sc_pay", "payments/stripe", ["read"])
        assert pay.execute(read).fetchone() == ("value of payments/stripe",)


# -- whose grants: the identity contexts of the access model --------------------------------

def test_a_definer_function_reads_with_its_owners_prefix_grants(acme: Any) -> None:
    db = acme
    db.sql("CREATE SCHEMA app AUTHORIZATION sc_pay; GRANT USAGE ON SCHEMA app TO bob, sc_ci")
    with db.connect("sc_pay") as pay:
        pay.execute("""CREATE FUNCTION app.value(n text) RETURNS text LANGUAGE sql SECURITY DEFINER
                       SET search_path = pg_catalog AS $f$ SELECT s.value FROM hush.get_secret('acme', n) s $f$;
                       GRANT EXECUTE ON FUNCTION app.value(text) TO bob, sc_ci;""")
    for caller in ("bob", "sc_ci"):  # bob holds no acme grant; sc_ci holds ci/ (write), and read nowhere
        assert one(db, caller, "SELECT app.value('payments/stripe')") == "value of payments/stripe"
        assert fails(db, caller, "SELECT app.value('ci/deploy_key')")[0] == "SH010"  # pay's grants decide
        assert fails(db, caller, "SELECT app.value('db/password')")[0] == "SH010"
    trail = db.sql("SELECT db_role, session_role, detail->'grant'->>'role' FROM hush.audit_log "
                   "WHERE action = 'read' ORDER BY id")
    assert trail == [("sc_pay", "bob", "sc_pay"), ("sc_pay", "sc_ci", "sc_pay")]


ATTEMPTS = {"inside": "SELECT s.value INTO v FROM hush.get_secret('acme', 'payments/stripe') s",
            "outside": "SELECT s.value INTO v FROM hush.get_secret('acme', 'db/password') s",
            "write": "SELECT s.name INTO v FROM hush.save_secret('acme', 'payments/planted', 'x') s",
            "list": "SELECT pg_catalog.string_agg(s.name, ',') INTO v FROM hush.list_secrets('acme') s"}


def test_an_index_expression_run_by_a_superusers_analyze_gets_the_owners_prefix_grants(acme: Any) -> None:
    db = acme
    body = "\n  ".join(f"BEGIN {sql}; PERFORM m.note('{w}', 'ok', v); "
                       f"EXCEPTION WHEN others THEN PERFORM m.note('{w}', SQLSTATE, NULL); END;"
                       for w, sql in ATTEMPTS.items())
    grant(db, "sc_ci", "payments/", ["read"])  # and write on ci/ only
    db.sql(f"""CREATE SCHEMA m AUTHORIZATION sc_ci;
        SET ROLE sc_ci;
        CREATE TABLE m.loot (what text, outcome text, value text, run_as name);
        CREATE FUNCTION m.note(w text, o text, v text) RETURNS void LANGUAGE sql VOLATILE
            AS $$ INSERT INTO m.loot VALUES (w, o, v, CURRENT_USER) $$;
        CREATE FUNCTION m.try(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
        DECLARE v text;
        BEGIN
          IF x <> 1 THEN RETURN x; END IF;
          {body}
          RETURN x;
        END $f$;
        CREATE TABLE m.t (x int); INSERT INTO m.t SELECT generate_series(1, 50);
        CREATE INDEX ON m.t (m.try(x));
        DELETE FROM m.loot;
        RESET ROLE;""")
    since = last_audit_id(db)
    db.sql("ANALYZE m.t")  # as the superuser, who may read everything itself
    got = {w: (o, v, r) for w, o, v, r in db.sql("SELECT * FROM m.loot")}
    assert got == {"inside": ("ok", "value of payments/stripe", "sc_ci"), "outside": ("SH010", None, "sc_ci"),
                   "write": ("SH020", None, "sc_ci"),
                   "list": ("ok", "ci/deploy_key,payments/adyen,payments/stripe", "sc_ci")}
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE name = 'payments/planted'") == [(0,)]
    detail = db.sql("SELECT db_role, session_role, detail FROM hush.audit_log WHERE id > %s", [since])
    assert [(r, s, d["grant"]["prefix"], "superuser" in d) for r, s, d in detail] == [
        ("sc_ci", "postgres", "payments/", False)]


def test_prefixes_are_literal(acme: Any) -> None:
    """No wildcard characters: _ and % in a prefix match themselves only."""
    db = acme
    names = ("a_b/1", "axb/1", "a%c/1", "abc/1")
    with db.connect("alice") as alice:
        for n in names:
            save(alice, "acme", n, "v")
    grant(db, "sc_pay", "a_b/", ["read"])
    grant(db, "sc_pay", "a%", ["read"])
    readable = []
    for n in names:
        try:
            readable.append(one(db, "sc_pay", "SELECT name FROM hush.get_secret('acme', %s)", [n]))
        except psycopg.Error as e:
            assert e.sqlstate == "SH010"
    assert readable == ["a_b/1", "a%c/1"]
