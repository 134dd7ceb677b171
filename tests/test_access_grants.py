"""The grant surface: hush.grant and hush.revoke (capabilities on a name prefix),
hush.effective_access, the whole-tenant shorthands grant_tenant and revoke_tenant,
and separation of duties. Real server; admin calls as adam (hush_admin), every
other call as the non-superuser role it is about (conftest.py's roles: rita reads
acme, alice writes acme, audrey audits, wendy is the OAuth worker, gateway is a
NOINHERIT member of acme_app)."""
from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest

from helpers import get, raises_sqlstate, rows, save

ALL = ["read", "list", "write", "delete", "destroy", "oauth_use", "oauth_manage", "audit"]
GRANT_COUNT = "SELECT count(*) FROM hush.tenant_grants"
AUDIT_COUNT = "SELECT count(*) FROM hush.audit_log"


def grant(conn: psycopg.Connection, role: str, tenant: str, prefix: Any, caps: Any) -> dict:
    return rows(conn, "SELECT * FROM hush.grant(%s, %s, %s, %s)", [role, tenant, prefix, caps])[0]


def revoke(conn: psycopg.Connection, role: str, tenant: str, prefix: Any, caps: Any) -> dict:
    return rows(conn, "SELECT * FROM hush.revoke(%s, %s, %s, %s)", [role, tenant, prefix, caps])[0]


def access(conn: psycopg.Connection, role: str, tenant: str) -> list[tuple]:
    return [(r["capability"], r["prefix"], r["grant_tenant"], r["grant_role"], r["implied_by"], r["callable"])
            for r in rows(conn, "SELECT * FROM hush.effective_access(%s, %s)", [role, tenant])]


def stored(db: Any, role: str) -> list[tuple]:
    return db.sql("SELECT tenant_id, prefix, capabilities FROM hush.tenant_grants WHERE role_name = %s "
                  "ORDER BY 1, 2", [role])


def trail(db: Any, *actions: str) -> list[tuple]:
    return db.sql("SELECT action, tenant_id, db_role, detail FROM hush.audit_log WHERE action = ANY(%s) ORDER BY id",
                  [list(actions)])


@pytest.fixture
def roles(db: Any) -> Iterator[Any]:
    """make(name, spec): a role made for one test (roles are cluster-wide), dropped after it."""
    made: list[str] = []

    def make(name: str, spec: str = "") -> str:
        full = f"{name}_{db.name}"
        db.sql(f'CREATE ROLE "{full}" {spec}')
        made.append(full)
        return full
    yield make
    for r in reversed(made):
        db.sql(f'DROP OWNED BY "{r}"; DROP ROLE "{r}"')


# -- hush.grant / hush.revoke -------------------------------------------------------------

def test_grant_adds_capabilities_and_returns_the_grant(db: Any) -> None:
    with db.connect("adam") as adam:
        # Called as the reserved word it is, schema-qualified, both ways.
        first = adam.execute("SELECT hush.grant('rita', 'acme', 'payments/', ARRAY['list'])").fetchone()[0]
        assert first.startswith("(acme,rita,payments/,{list},")
        again = grant(adam, "rita", "acme", "payments/", ["read", "list", "read"])
    assert (again["tenant_id"], again["role_name"], again["prefix"], again["capabilities"], again["granted_by"]) \
        == ("acme", "rita", "payments/", ["read", "list"], "adam")
    assert stored(db, "rita") == [("acme", "", ["read", "list", "oauth_use", "audit"]),
                                  ("acme", "payments/", ["read", "list"])]
    with db.connect("adam") as adam:
        same = grant(adam, "rita", "acme", "payments/", ["list"])  # nothing new: unchanged, not audited
    assert same == again
    assert [(d["added"], d["capabilities"]) for _, _, _, d in trail(db, "grant_access")] == [
        (["list"], ["list"]), (["read"], ["read", "list"])]


def test_revoke_removes_from_exactly_that_grant(db: Any) -> None:
    with db.connect("adam") as adam:
        grant(adam, "alice", "acme", "ci/", ["write", "delete", "list"])
        left = revoke(adam, "alice", "acme", "ci/", ["delete", "destroy"])  # destroy was never held: fine
        assert (left["prefix"], left["capabilities"]) == ("ci/", ["list", "write"])
        unchanged = revoke(adam, "alice", "acme", "ci/", ["read"])
        assert unchanged["capabilities"] == ["list", "write"]
        gone = revoke(adam, "alice", "acme", "ci/", ["list", "write"])
        assert (gone["tenant_id"], gone["role_name"], gone["prefix"], gone["capabilities"]) == \
            ("acme", "alice", "ci/", [])
        assert stored(db, "alice") == [("acme", "", ALL)]  # the whole-tenant grant is another grant
        before = db.sql(AUDIT_COUNT)
        with raises_sqlstate("SH025") as e:
            revoke(adam, "alice", "acme", "ci/", ["list"])
        assert e.value.diag.message_primary == \
            "hush: role alice holds no grant on prefix 'ci...' (3 chars) in tenant 'acm...' (4 chars)"
        # A value passed in a role's or a tenant's place is not echoed whole (nor logged).
        with raises_sqlstate("SH025") as e:
            revoke(adam, "sk_live_0123456789", "sk_live_abcdefghij", "", ["read"])
        assert "0123456789" not in str(e.value) and "abcdefghij" not in str(e.value)
        with raises_sqlstate("SH004") as e:
            grant(adam, "sk_live_0123456789", "acme", "", ["read"])
        assert "0123456789" not in str(e.value)
        with raises_sqlstate("SH025"):
            revoke(adam, "alice", "globex", "", ["read"])
        with raises_sqlstate("SH025"):
            revoke(adam, "no_such_role", "acme", "", ["read"])
    assert db.sql(AUDIT_COUNT) == before
    assert [(d["removed"], d["capabilities"]) for _, _, _, d in trail(db, "revoke_access")] == [
        (["delete"], ["list", "write"]), (["list", "write"], [])]


def test_wildcard_tenant_and_dropped_roles(db: Any, roles: Any) -> None:
    ghost = roles("ghost", "IN ROLE hush_reader")
    with db.connect("adam") as adam:
        assert grant(adam, "rita", "*", "shared/", ["read"])["tenant_id"] == "*"
        grant(adam, ghost, "acme", "x/", ["list"])
    db.sql(f'DROP ROLE "{ghost}"')
    with db.connect("adam") as adam:  # a grant left behind by a dropped role can still go
        assert revoke(adam, ghost, "acme", "x/", ["list"])["capabilities"] == []
    # Grants are kept by role name (they survive a dump and restore): a role created later
    # under a dropped role's name would inherit what is left. revoke_tenant clears them all,
    # per tenant and on '*', with no role to look up.
    phantom = roles("phantom", "IN ROLE hush_reader")
    with db.connect("adam") as adam:
        for tenant, prefix in (("acme", "a/"), ("acme", "b/"), ("*", ""), ("globex", "")):
            grant(adam, phantom, tenant, prefix, ["read"])
    db.sql(f'DROP ROLE "{phantom}"')
    with db.connect("adam") as adam:
        for tenant in ("acme", "*", "globex"):
            assert adam.execute("SELECT hush.revoke_tenant(%s, %s)", [phantom, tenant]).fetchone() == (True,)
        assert adam.execute("SELECT hush.revoke_tenant(%s, 'acme')", [phantom]).fetchone() == (False,)
    assert stored(db, phantom) == []
    assert [d for _, _, _, d in trail(db, "revoke_tenant")][-3:] == [
        {"role": phantom, "prefixes": ["a/", "b/"]}, {"role": phantom, "prefixes": [""]},
        {"role": phantom, "prefixes": [""]}]
    db.sql(f'CREATE ROLE "{ghost}"; CREATE ROLE "{phantom}"')  # for the fixture to drop


BAD_ARGUMENTS = [
    # (role, tenant, prefix, capabilities, sqlstate, in the message)
    ("no_such_role", "acme", "", ["read"], "SH004", "does not exist"),
    (None, "acme", "", ["read"], "SH004", "role"),
    ("rita", "bad tenant", "", ["read"], "SH002", "tenant"),
    ("rita", None, "", ["read"], "SH002", "tenant"),
    ("rita", "acme", None, ["read"], "SH004", "prefix must not be NULL"),
    ("rita", "acme", "p" * 256, ["read"], "SH004", "256 characters"),
    ("rita", "acme", "pay\nments/", ["read"], "SH004", "control characters"),
    ("rita", "acme", "pay\x7fments/", ["read"], "SH004", "control characters"),
    ("rita", "acme", "", [], "SH004", "at least one"),
    ("rita", "acme", "", None, "SH004", "at least one"),
    ("rita", "acme", "", ["read", None], "SH004", "NULL"),
    ("rita", "acme", "", ["reed"], "SH004", "unknown capability"),
    ("rita", "acme", "", ["READ"], "SH004", "unknown capability"),
]


@pytest.mark.parametrize("fn", ["grant", "revoke"])
@pytest.mark.parametrize("role,tenant,prefix,caps,code,said", BAD_ARGUMENTS)
def test_bad_arguments_are_refused_and_nothing_is_written(db: Any, fn: str, role: Any, tenant: Any, prefix: Any,
                                                          caps: Any, code: str, said: str) -> None:
    if fn == "revoke" and role == "no_such_role":
        code, said = "SH025", "no grant"  # revoke does not look the role up: dropped roles' grants go too
    before = db.sql(GRANT_COUNT), db.sql(AUDIT_COUNT), db.sql("SELECT * FROM hush.tenant_grants ORDER BY 1, 2, 3")
    with db.connect("adam") as adam, raises_sqlstate(code) as e:
        adam.execute(f"SELECT * FROM hush.{fn}(%s, %s, %s, %s::text[])", [role, tenant, prefix, caps])
    assert said in str(e.value)
    if "capability" in said:  # the message's hint lists what is known
        assert e.value.diag.message_hint == "The capabilities are: " + ", ".join(ALL) + "."
    assert (db.sql(GRANT_COUNT), db.sql(AUDIT_COUNT), db.sql("SELECT * FROM hush.tenant_grants ORDER BY 1, 2, 3")) \
        == before


def test_a_two_dimensional_array_is_refused(db: Any) -> None:
    with db.connect("adam") as adam, raises_sqlstate("SH004"):
        adam.execute("SELECT hush.grant('rita', 'acme', '', ARRAY[['read'], ['list']])")


def test_a_prefix_need_not_be_a_name(db: Any) -> None:
    with db.connect("adam") as adam:
        for prefix in ("payments/", "p" * 255, "a b", "ünï/", "%_*"):  # literal: no wildcard characters
            assert grant(adam, "rita", "acme", prefix, ["list"])["prefix"] == prefix


def test_a_capability_the_role_cannot_call_is_refused(db: Any, roles: Any) -> None:
    nobody = roles("nobody", "LOGIN")
    before = db.sql(GRANT_COUNT), db.sql(AUDIT_COUNT)
    with db.connect("adam") as adam:
        for role, caps, needs in [("audrey", ["read"], "hush_reader"), ("audrey", ["audit", "list"], "hush_reader"),
                                  ("rita", ["write"], "hush_writer"), ("rita", ["read", "destroy"], "hush_writer"),
                                  ("wendy", ["oauth_manage"], "hush_writer"), ("wendy", ["read"], "hush_reader"),
                                  ("adam", ["read"], "hush_reader"), (nobody, ["list"], "hush_reader"),
                                  # NOINHERIT: acme_app's functions only after SET ROLE, as acme_app
                                  ("gateway", ["read"], "hush_reader")]:
            with raises_sqlstate("SH024") as e:
                grant(adam, role, "acme", "", caps)
            assert f"role {role} cannot call" in str(e.value) and needs in e.value.diag.message_hint
            assert "audit (" not in str(e.value)  # only what is missing is named
        with raises_sqlstate("SH024"):
            adam.execute("SELECT hush.grant_tenant(%s, 'acme')", [nobody])
    assert (db.sql(GRANT_COUNT), db.sql(AUDIT_COUNT)) == before
    with db.connect("adam") as adam:  # what they can call, they are granted
        assert grant(adam, "audrey", "acme", "", ["audit"])["capabilities"] == ["audit"]
        assert grant(adam, "wendy", "acme", "github", ["oauth_use"])["capabilities"] == ["oauth_use"]
        assert grant(adam, "rita", "acme", "", ["oauth_use", "audit"])["capabilities"] == \
            ["read", "list", "oauth_use", "audit"]


def test_hush_roles_and_superusers_are_not_granted(db: Any, roles: Any) -> None:
    """hush's own roles (hush_owner may call every function, as their owner, so SH024 would not
    stop it), their members, and superusers act without a grant: a grant to them is refused
    by hush.grant and grant_tenant alike, before anything is written."""
    boss = roles("boss", "SUPERUSER")
    deputy = roles("deputy", "LOGIN IN ROLE hush_owner")
    rec = roles("rec", "LOGIN IN ROLE hush_recorder")
    cases = [(r, "is one of hush's own roles") for r in
             ("hush_owner", "hush_retention", "hush_keykeeper", "hush_refresher", "hush_recorder")]
    cases += [("postgres", "is a superuser: it acts on every tenant without a grant"),
              (boss, "is a superuser: it acts on every tenant without a grant"),
              (deputy, "is a member of hush_owner, one of hush's own roles"),
              (rec, "is a member of hush_recorder, one of hush's own roles")]
    before = db.sql("SELECT * FROM hush.tenant_grants ORDER BY 1, 2, 3"), db.sql(AUDIT_COUNT)
    with db.connect("adam") as adam:
        for role, said in cases:
            for tenant in ("acme", "*"):
                for call, args in (("SELECT * FROM hush.grant(%s, %s, '', ARRAY['read', 'audit'])", [role, tenant]),
                                   ("SELECT * FROM hush.grant(%s, %s, 'x/', ARRAY['list'])", [role, tenant]),
                                   ("SELECT hush.grant_tenant(%s, %s)", [role, tenant])):
                    with raises_sqlstate("SH004") as e:
                        adam.execute(call, args)
                    assert e.value.diag.message_primary == f"hush: role {role} {said}" or \
                        e.value.diag.message_primary.startswith(f"hush: role {role} {said}:"), (role, call)
    assert (db.sql("SELECT * FROM hush.tenant_grants ORDER BY 1, 2, 3"), db.sql(AUDIT_COUNT)) == before


def test_only_admins_grant_and_revoke(db: Any) -> None:
    for user in ("alice", "rita", "audrey", "wendy", "otto"):
        with db.connect(user) as c:
            for call in ("SELECT hush.grant('alice', 'acme', '', ARRAY['read'])",
                         "SELECT hush.revoke('alice', 'acme', '', ARRAY['read'])",
                         "SELECT hush.grant_tenant('alice', 'globex')", "SELECT hush.revoke_tenant('alice', 'acme')"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    c.execute(call)


# -- revoke's NOTICE ------------------------------------------------------------------------

def notices(conn: psycopg.Connection) -> list[str]:
    said: list[str] = []
    conn.add_notice_handler(lambda d: said.append(f"{d.severity_nonlocalized}: {d.message_primary}"))
    return said


def test_revoke_tenant_says_which_grants_still_let_the_role_in(db: Any, roles: Any) -> None:
    """revoke_tenant removes the role's own grants on the tenant; a '*' grant or a group's
    may still let it in, and the NOTICE names each (read back: the access goes on)."""
    ops = roles("ops", "NOLOGIN IN ROLE hush_reader")
    olga = roles("olga", f'LOGIN IN ROLE "{ops}"')
    with db.connect("alice") as alice:
        save(alice, "acme", "github/x", "v")
    with db.connect("adam") as adam:
        said = notices(adam)
        grant(adam, olga, "acme", "", ["read"])
        adam.execute("SELECT hush.revoke_tenant(%s, 'acme')", [olga])
        assert said == []  # nothing else lets it in
        grant(adam, olga, "acme", "", ["read"])
        grant(adam, olga, "*", "github", ["read"])
        grant(adam, ops, "acme", "gh", ["list"])
        adam.execute("SELECT hush.revoke_tenant(%s, 'acme')", [olga])
    assert said == [f"NOTICE: role {olga} may still act on tenant acme: through the grant of {olga} on prefix "
                    "'gith...' (6 chars) in tenant * (read)",
                    f"NOTICE: role {olga} may still act on tenant acme: through the grant of {ops} on prefix "
                    "'g...' (2 chars) in tenant acme (list)"]
    with db.connect(olga) as o:
        assert get(o, "acme", "github/x")["value"] == "v"


def test_revoke_says_when_a_broader_grant_still_allows(db: Any, roles: Any) -> None:
    ops = roles("ops", "NOLOGIN IN ROLE hush_writer")
    olga = roles("olga", f'LOGIN IN ROLE "{ops}"')
    with db.connect("adam") as adam:
        said = notices(adam)
        grant(adam, olga, "acme", "payments/", ["read", "write"])
        revoke(adam, olga, "acme", "payments/", ["read"])
        assert said == []  # nothing else allows it
        grant(adam, ops, "acme", "pay", ["read"])  # a shorter prefix, through a group role
        grant(adam, olga, "*", "", ["destroy"])  # every tenant
        grant(adam, olga, "acme", "payments/", ["read"])
        revoke(adam, olga, "acme", "payments/", ["read", "destroy", "list", "delete"])
        assert said == [
            f"NOTICE: role {olga} may still read names starting with 'paym...' (9 chars) in tenant acme: "
            f"through the grant of {ops} on prefix 'pa...' (3 chars) in tenant acme",
            # the grant itself still holds write, which implies list
            f"NOTICE: role {olga} may still list names starting with 'paym...' (9 chars) in tenant acme: "
            f"through the grant of {olga} on prefix 'paym...' (9 chars) in tenant acme",
            f"NOTICE: role {olga} may still destroy names starting with 'paym...' (9 chars) in tenant acme: "
            f"through the grant of {olga} on prefix '' (the whole tenant) in tenant *",
        ]
        said.clear()
        chief = roles("chief", "LOGIN IN ROLE hush_reader")  # a superuser is granted nothing: made one after
        grant(adam, chief, "acme", "", ["read"])
        db.sql(f'ALTER ROLE "{chief}" SUPERUSER')
        revoke(adam, chief, "acme", "", ["read"])
        assert said == [f"NOTICE: role {chief} may still read names starting with '' (the whole tenant) "
                        "in tenant acme: as a superuser"]


# -- the audit trail ------------------------------------------------------------------------

def test_changes_are_audited_under_the_grants_tenant(db: Any, roles: Any) -> None:
    ada = roles("ada", "LOGIN IN ROLE hush_admin, hush_reader")
    aud = roles("aud", "LOGIN IN ROLE hush_auditor, hush_reader")
    with db.connect("adam") as adam:
        grant(adam, "rita", "globex", "payments/", ["read"])
        revoke(adam, "rita", "globex", "payments/", ["read"])
        grant(adam, ada, "acme", "", ["list"])
        grant(adam, ada, "acme", "", ["read", "list"])
        grant(adam, aud, "*", "", ["audit", "read"])
        revoke(adam, aud, "*", "", ["read"])
    got = [(a, t, who, d) for a, t, who, d in trail(db, "grant_access", "revoke_access")]
    assert got == [
        ("grant_access", "globex", "adam", {"role": "rita", "prefix": "payments/", "added": ["read"],
                                            "capabilities": ["read"]}),
        ("revoke_access", "globex", "adam", {"role": "rita", "prefix": "payments/", "removed": ["read"],
                                             "capabilities": []}),
        ("grant_access", "acme", "adam", {"role": ada, "prefix": "", "added": ["list"], "capabilities": ["list"]}),
        # read to an admin or an auditor stands out
        ("grant_access", "acme", "adam", {"role": ada, "prefix": "", "added": ["read"],
                                          "capabilities": ["read", "list"], "admin": True}),
        ("grant_access", "*", "adam", {"role": aud, "prefix": "", "added": ["read", "audit"],
                                       "capabilities": ["read", "audit"], "auditor": True}),
        ("revoke_access", "*", "adam", {"role": aud, "prefix": "", "removed": ["read"], "capabilities": ["audit"]}),
    ]


# -- hush.effective_access --------------------------------------------------------------------

def test_effective_access_for_oneself_and_for_others(db: Any) -> None:
    with db.connect("adam") as adam:
        grant(adam, "rita", "acme", "payments/", ["read"])
        grant(adam, "alice", "acme", "ci/", ["write"])
    rita_sees = [("read", "", "acme", "rita", None, True), ("list", "", "acme", "rita", None, True),
                 ("oauth_use", "", "acme", "rita", None, True), ("audit", "", "acme", "rita", None, True),
                 ("read", "payments/", "acme", "rita", None, True),
                 ("list", "payments/", "acme", "rita", "read", True)]  # read implies list
    with db.connect("rita") as rita:
        assert access(rita, "rita", "acme") == rita_sees
        assert access(rita, "rita", "globex") == []
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            access(rita, "alice", "acme")
    with db.connect("adam") as adam:
        assert access(adam, "rita", "acme") == rita_sees
        assert [e for e in access(adam, "alice", "acme") if e[1] == "ci/"] == [
            ("list", "ci/", "acme", "alice", "write", True), ("write", "ci/", "acme", "alice", None, True)]
        with raises_sqlstate("SH004"):
            access(adam, "no_such_role", "acme")
        with raises_sqlstate("SH002"):
            access(adam, "rita", "bad tenant")
    for user in ("audrey", "wendy"):  # every hush role may ask about itself
        with db.connect(user) as c:
            assert access(c, user, "acme") == ([("oauth_use", "", "acme", "wendy", None, True)]
                                               if user == "wendy" else [])
    with db.connect("otto") as otto, pytest.raises(psycopg.errors.InsufficientPrivilege):
        access(otto, "otto", "acme")


@pytest.mark.parametrize("cap", ["delete", "destroy"])
def test_delete_and_destroy_imply_list_on_their_prefix_only(db: Any, roles: Any, cap: str) -> None:
    # A delete, restore or destroy tells whether the name exists (restore returns its metadata):
    # a role holding one of them may list the names under its prefix, and nothing else.
    who = roles(cap + "r", "LOGIN IN ROLE hush_writer")
    with db.connect("alice") as alice:
        for n in ("ci/a", "ci/b", "db/x"):
            save(alice, "acme", n, "v")
    with db.connect("adam") as adam:
        grant(adam, who, "acme", "ci/", [cap])
    with db.connect(who) as c:
        assert c.execute("SELECT name FROM hush.list_secrets('acme') ORDER BY name").fetchall() == [
            ("ci/a",), ("ci/b",)]
        assert c.execute("SELECT hush.secret_exists('acme', 'ci/a'), hush.secret_exists('acme', 'db/x')"
                         ).fetchone() == (True, False)
        with raises_sqlstate("SH020"):  # listed, not read
            get(c, "acme", "ci/a")
        with raises_sqlstate("SH010"):  # outside ci/: hidden
            c.execute("SELECT * FROM hush.secret_versions('acme', 'db/x')")
        assert access(c, who, "acme") == [("list", "ci/", "acme", who, cap, True),
                                           (cap, "ci/", "acme", who, None, True)]


def test_effective_access_through_groups_wildcards_and_noinherit(db: Any, roles: Any) -> None:
    ops = roles("ops", "NOLOGIN IN ROLE hush_reader")
    olga = roles("olga", f'LOGIN IN ROLE "{ops}"')
    with db.connect("adam") as adam:
        grant(adam, ops, "acme", "ops/", ["list"])
        grant(adam, olga, "*", "shared/", ["read"])
    olga_sees = [("list", "ops/", "acme", ops, None, True),
                 ("read", "shared/", "*", olga, None, True), ("list", "shared/", "*", olga, "read", True)]
    with db.connect(olga) as o:
        assert access(o, olga, "acme") == olga_sees
        assert access(o, olga, "globex") == olga_sees[1:]  # '*' is every tenant
        assert access(o, ops, "acme") == [olga_sees[0]]  # a role whose privileges she has
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            access(o, "rita", "acme")
    with db.connect(olga) as o:  # the group may not look at its members
        o.execute(f'SET ROLE "{ops}"')
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            access(o, olga, "acme")
    # gateway is a NOINHERIT member of acme_app: nothing of acme_app's until it switches role.
    with db.connect("adam") as adam:
        assert access(adam, "gateway", "acme") == []
    with db.connect("gateway") as g:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # it may not even call hush
            access(g, "acme_app", "acme")
        g.execute("SET ROLE acme_app")
        assert [e[0] for e in access(g, "acme_app", "acme")] == ALL


def test_effective_access_says_what_the_role_cannot_call(db: Any, roles: Any) -> None:
    demoted = roles("demoted", "LOGIN IN ROLE hush_writer")
    db.sql(f"SELECT hush.grant_tenant('{demoted}', 'acme')")
    db.sql(f'REVOKE hush_writer FROM "{demoted}"; GRANT hush_reader TO "{demoted}"')
    with db.connect("adam") as adam:
        got = {e[0]: e[5] for e in access(adam, demoted, "acme")}
    assert got == {"read": True, "list": True, "write": False, "delete": False, "destroy": False,
                   "oauth_use": True, "oauth_manage": False, "audit": True}
    with db.connect("adam") as adam:  # a superuser may do everything, through no grant
        assert access(adam, "postgres", "globex") == [(c, "", None, None, None, True) for c in ALL]


# -- the whole-tenant shorthands ---------------------------------------------------------------

@pytest.mark.parametrize("hush_role,caps,mark", [
    ("hush_reader", ["read", "list", "oauth_use", "audit"], {}),
    ("hush_writer", ALL, {}),
    ("hush_auditor", ["audit"], {}),
    ("hush_oauth_worker", ["oauth_use"], {}),
    ("hush_reader, hush_auditor", ["read", "list", "oauth_use", "audit"], {"auditor": True}),
    ("hush_writer, hush_admin", ALL, {"admin": True}),
])
def test_grant_tenant_grants_what_the_role_can_call(db: Any, roles: Any, hush_role: str, caps: list[str],
                                                    mark: dict) -> None:
    r = roles("r", f"LOGIN IN ROLE {hush_role}")
    with db.connect("adam") as adam:
        assert adam.execute("SELECT hush.grant_tenant(%s, 'acme')", [r]).fetchone() == (True,)
        assert adam.execute("SELECT hush.grant_tenant(%s, 'acme')", [r]).fetchone() == (False,)
    assert stored(db, r) == [("acme", "", caps)]
    (action, tenant, who, detail), = trail(db, "grant_tenant")[-1:]
    assert (action, tenant, who, detail) == ("grant_tenant", "acme", "adam",
                                             {"role": r, "prefix": "", "added": caps, "capabilities": caps, **mark})


def test_grant_tenant_adds_to_a_whole_tenant_grant(db: Any, roles: Any) -> None:
    r = roles("r", "LOGIN IN ROLE hush_reader")
    with db.connect("adam") as adam:
        grant(adam, r, "acme", "", ["list"])
        grant(adam, r, "acme", "payments/", ["read"])
        db.sql(f'GRANT hush_writer TO "{r}"')  # the role can call more than when first granted
        assert adam.execute("SELECT hush.grant_tenant(%s, 'acme')", [r]).fetchone() == (True,)
        with raises_sqlstate("SH024"):
            adam.execute("SELECT hush.grant_tenant('adam', 'acme')")  # an admin calls no capability's functions
    assert stored(db, r) == [("acme", "", ALL), ("acme", "payments/", ["read"])]
    assert trail(db, "grant_tenant")[-1][3]["added"] == [c for c in ALL if c != "list"]


def test_revoke_tenant_removes_every_prefix(db: Any) -> None:
    with db.connect("adam") as adam:
        grant(adam, "rita", "acme", "payments/", ["read"])
        grant(adam, "rita", "acme", "ci/", ["list"])
        grant(adam, "rita", "globex", "x/", ["list"])
        assert adam.execute("SELECT hush.revoke_tenant('rita', 'acme')").fetchone() == (True,)
        assert adam.execute("SELECT hush.revoke_tenant('rita', 'acme')").fetchone() == (False,)
    assert stored(db, "rita") == [("globex", "x/", ["list"])]
    assert trail(db, "revoke_tenant")[-1] == ("revoke_tenant", "acme", "adam",
                                              {"role": "rita", "prefixes": ["", "ci/", "payments/"]})
    with db.connect("rita") as rita, raises_sqlstate("SH020"):
        get(rita, "acme", "anything")


# -- separation of duties ---------------------------------------------------------------------

VALUE_READERS = ["hush.get_secret(text,text,integer,text)", "hush.get_secret_by_id(text,uuid,integer,text)",
                 "hush.get_secrets(text,hush.secret_names)", "hush.oauth_token(text,text,text)",
                 "hush.oauth_access_token(text,text,text,integer)", "hush.oauth_provider(text,text)",
                 "hush.oauth_connection_tokens(text,text,text)"]


def test_admins_and_auditors_read_no_values_unless_granted(db: Any, roles: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "payments/stripe", "sk_live_value")
    # Neither role may call a function that returns a value, whatever grants it is given.
    for role in ("hush_admin", "hush_auditor"):
        assert db.sql("SELECT f FROM unnest(%s::text[]) f WHERE has_function_privilege(%s, f::regprocedure, "
                      "'EXECUTE')", [VALUE_READERS, role]) == [], role
    with db.connect("adam") as adam:
        with raises_sqlstate("SH024"):  # an admin manages grants, but not into reading values
            grant(adam, "adam", "acme", "", ["read"])
        with raises_sqlstate("SH024"):
            grant(adam, "audrey", "acme", "", ["read"])
        grant(adam, "audrey", "acme", "", ["audit"])
    with db.connect("adam") as adam, pytest.raises(psycopg.errors.InsufficientPrivilege):
        get(adam, "acme", "payments/stripe")
    with db.connect("audrey") as aud:
        assert access(aud, "audrey", "acme") == [("audit", "", "acme", "audrey", None, True)]
        trail_rows = rows(aud, "SELECT * FROM hush.audit_log('acme')")
        assert {r["action"] for r in trail_rows} >= {"create", "grant_access"}
        assert "sk_live_value" not in repr(trail_rows)
        for call in ("SELECT * FROM hush.get_secret('acme', 'payments/stripe')",
                     "SELECT * FROM hush.list_secrets('acme')",
                     "SELECT * FROM hush.secret_versions('acme', 'payments/stripe')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                aud.execute(call)
        with raises_sqlstate("SH020"):  # no grant on globex: not its trail either
            aud.execute("SELECT * FROM hush.audit_log('globex')")
    # An admin who is to read too is made a reader as well, and granted read: it shows in the trail.
    both = roles("both", "LOGIN IN ROLE hush_admin, hush_reader")
    with db.connect("adam") as adam:
        grant(adam, both, "acme", "payments/", ["read"])
    with db.connect(both) as b:
        assert get(b, "acme", "payments/stripe")["value"] == "sk_live_value"
    assert trail(db, "grant_access")[-1][3] == {"role": both, "prefix": "payments/", "added": ["read"],
                                                "capabilities": ["read"], "admin": True}
