"""The grant surface: hush.grant and hush.revoke (capabilities on a name prefix),
what revoke's NOTICE says, and the audit rows of grant changes. hush.effective_access,
the whole-tenant shorthands and separation of duties are
test_access_grants_effective.py's. Real server; admin calls as adam (hush_admin), every
other call as the non-superuser role it is about (conftest.py's roles: rita reads acme,
alice writes acme, audrey audits, wendy is the OAuth worker, gateway is a NOINHERIT
member of acme_app)."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from grant_helpers import ALL, grant, roles, stored, trail  # roles: a fixture
from helpers import get, raises_sqlstate, rows, save

GRANT_COUNT = "SELECT count(*) FROM hush.tenant_grants"
AUDIT_COUNT = "SELECT count(*) FROM hush.audit_log"


def revoke(conn: psycopg.Connection, role: str, tenant: str, prefix: Any, caps: Any) -> dict:
    return rows(conn, "SELECT * FROM hush.revoke(%s, %s, %s, %s)", [role, tenant, prefix, caps])[0]


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
