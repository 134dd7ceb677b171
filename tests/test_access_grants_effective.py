"""hush.effective_access (what a role may do in a tenant, and through which grant), the
whole-tenant shorthands grant_tenant and revoke_tenant, and separation of duties: admins
and auditors read no values unless granted. hush.grant and hush.revoke themselves are
test_access_grants.py's. Real server; admin calls as adam (hush_admin), every other call
as the non-superuser role it is about (conftest.py's roles)."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from grant_helpers import ALL, grant, roles, stored, trail  # roles: a fixture
from helpers import get, raises_sqlstate, rows, save


def access(conn: psycopg.Connection, role: str, tenant: str) -> list[tuple]:
    return [(r["capability"], r["prefix"], r["grant_tenant"], r["grant_role"], r["implied_by"], r["callable"])
            for r in rows(conn, "SELECT * FROM hush.effective_access(%s, %s)", [role, tenant])]


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
