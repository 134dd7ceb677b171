"""Nobody in where they don't belong: every path, as non-superuser login roles."""
from __future__ import annotations

import psycopg
import pytest

from helpers import get, raises_sqlstate, save


@pytest.fixture
def two_tenants(db):
    with db.connect("alice") as a:
        save(a, "acme", "shared-name", "acme-value")
    with db.connect("bob") as b:
        save(b, "globex", "shared-name", "globex-value")
        save(b, "globex", "only-in-globex", "globex-only")
    return db


CROSS_TENANT_CALLS = [
    ("SELECT * FROM hush.get_secret('globex', %s)", True),
    ("SELECT * FROM hush.get_secrets('globex', ARRAY[%s])", True),
    ("SELECT hush.secret_exists('globex', %s)", True),
    ("SELECT * FROM hush.secret_versions('globex', %s)", True),
    ("SELECT hush.update_secret('globex', %s, 'x')", True),
    ("SELECT hush.update_secret('globex', %s, description => 'x')", True),
    ("SELECT hush.save_secret('globex', %s, 'x')", True),
    ("SELECT hush.delete_secret('globex', %s)", True),
    ("SELECT hush.restore_secret('globex', %s)", True),
    ("SELECT hush.destroy_secret('globex', %s)", True),
    ("SELECT * FROM hush.list_secrets('globex', name_prefix => %s)", True),
    ("SELECT * FROM hush.search_secrets('globex', %s)", True),
]


@pytest.mark.parametrize("query,_", CROSS_TENANT_CALLS)
@pytest.mark.parametrize("name", ["only-in-globex", "shared-name", "does-not-exist"])
def test_cross_tenant_calls_get_one_answer(two_tenants, query, _, name):
    """The same error whether or not the name exists in the other tenant."""
    with two_tenants.connect("alice") as a:
        with raises_sqlstate("SH020") as ei:
            a.execute(query, [name])
        # The tenant only by its first characters: alice may not act on it (docs/errors.md).
        assert ei.value.diag.message_primary == "hush: role alice may not act on tenant 'glob...' (6 chars)"
        assert "globex-value" not in str(ei.value)
    # Nothing changed in globex.
    with two_tenants.connect("bob") as b:
        assert get(b, "globex", "shared-name")["value"] == "globex-value"
        assert b.execute("SELECT count(*) FROM hush.secret_versions('globex', 'shared-name')").fetchone() == (1,)


def test_cross_tenant_by_id(two_tenants):
    with two_tenants.connect("bob") as b:
        gid = get(b, "globex", "shared-name")["id"]
    with two_tenants.connect("alice") as a:
        for q in ("SELECT * FROM hush.get_secret_by_id('globex', %s)",
                  "SELECT hush.update_secret_by_id('globex', %s, 'x')",
                  "SELECT hush.delete_secret_by_id('globex', %s)",
                  "SELECT hush.secret_exists_by_id('globex', %s)"):
            with raises_sqlstate("SH020"):
                a.execute(q, [gid])
        assert a.execute("SELECT hush.secret_exists_by_id('acme', %s)", [gid]).fetchone() == (False,)
        # Asking for globex's id under alice's own tenant finds nothing: RLS, not the WHERE clause.
        with raises_sqlstate("SH010"):
            a.execute("SELECT * FROM hush.get_secret_by_id('acme', %s)", [gid])
        with raises_sqlstate("SH010"):
            a.execute("SELECT hush.delete_secret_by_id('acme', %s)", [gid])


@pytest.mark.parametrize("role", ["alice", "rita", "adam", "audrey", "otto", "gateway"])
@pytest.mark.parametrize("table", ["secrets", "secret_versions", "root_keys", "tenant_grants", "tenants"])
def test_no_direct_table_access(two_tenants, role, table):
    with two_tenants.connect(role) as conn:
        if role == "adam" and table in ("root_keys", "tenant_grants", "tenants"):
            conn.execute(f"SELECT * FROM hush.{table}")  # configuration, no tenant data
            return
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT * FROM hush.{table}")


@pytest.mark.parametrize("role", ["alice", "rita", "otto", "gateway"])
def test_app_roles_cannot_read_or_touch_audit(two_tenants, role):
    with two_tenants.connect(role) as conn:
        for q in ("SELECT * FROM hush.audit_log", "DELETE FROM hush.audit_log", "UPDATE hush.audit_log SET action = 'x'",
                  "INSERT INTO hush.audit_log (tenant_id, action) VALUES ('acme', 'forged')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(q)


def test_role_without_hush_role_cannot_call(two_tenants):
    with two_tenants.connect("otto") as o:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            o.execute("SELECT * FROM hush.get_secret('acme', 'shared-name')")


def test_internal_functions_are_not_callable(two_tenants):
    """The keyring's source is for hush_owner alone; the dispatchers run nothing without a
    ticket (tests/test_authority.py tries every one). Loading hush's Python is harmless and
    every invoker function needs it."""
    with two_tenants.connect("alice") as a:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            a.execute("SELECT hush._root_key_source()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            a.execute("SELECT hush._as_owner('00000000000000000000000000000000', 'postgres')")
        a.execute("SELECT hush._load_python()")


def test_admin_and_auditor_read_no_values(two_tenants):
    for role in ("adam", "audrey"):
        with two_tenants.connect(role) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM hush.get_secret('acme', 'shared-name')")


def test_set_role_is_the_caller(two_tenants):
    """PostgREST style: a login role with no grant switches to a granted role with SET ROLE."""
    with two_tenants.connect("gateway") as g:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # NOINHERIT: no hush role before SET ROLE
            g.execute("SELECT * FROM hush.get_secret('acme', 'shared-name')")
        g.execute("SET ROLE acme_app")
        assert get(g, "acme", "shared-name")["value"] == "acme-value"
        save(g, "acme", "from-gateway", "v")
        with raises_sqlstate("SH020"):
            get(g, "globex", "shared-name")
    rows = two_tenants.sql("SELECT db_role, session_role FROM hush.audit_log WHERE secret_name = 'from-gateway'")
    assert rows == [("acme_app", "gateway")]


def test_grant_through_group_membership_and_revoke(two_tenants):
    db = two_tenants
    db.sql("CREATE ROLE ops NOLOGIN IN ROLE hush_reader")
    db.sql("CREATE ROLE olga LOGIN IN ROLE ops")
    try:
        with db.connect("olga") as o, raises_sqlstate("SH020"):
            get(o, "globex", "shared-name")
        with db.connect("adam") as adm:
            assert adm.execute("SELECT hush.grant_tenant('ops', 'globex')").fetchone() == (True,)
            assert adm.execute("SELECT hush.grant_tenant('ops', 'globex')").fetchone() == (False,)
        with db.connect("olga") as o:
            assert get(o, "globex", "shared-name")["value"] == "globex-value"
            with raises_sqlstate("SH020"):
                get(o, "acme", "shared-name")
        with db.connect("adam") as adm:
            assert adm.execute("SELECT hush.revoke_tenant('ops', 'globex')").fetchone() == (True,)
        with db.connect("olga") as o, raises_sqlstate("SH020"):
            get(o, "globex", "shared-name")
    finally:
        db.sql("DROP ROLE olga")
        db.sql("DROP ROLE ops")


def test_wildcard_grant(two_tenants):
    db = two_tenants
    db.sql("CREATE ROLE allseer LOGIN IN ROLE hush_reader")
    try:
        with db.connect("adam") as adm:
            adm.execute("SELECT hush.grant_tenant('allseer', '*')")
        with db.connect("allseer") as s:
            assert get(s, "acme", "shared-name")["value"] == "acme-value"
            assert get(s, "globex", "shared-name")["value"] == "globex-value"
    finally:
        db.sql("DROP ROLE allseer")


def test_only_admins_grant(two_tenants):
    with two_tenants.connect("alice") as a:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            a.execute("SELECT hush.grant_tenant('alice', 'globex')")
    with two_tenants.connect("adam") as adm:
        with raises_sqlstate("SH004"):
            adm.execute("SELECT hush.grant_tenant('no_such_role', 'acme')")
        with raises_sqlstate("SH002"):
            adm.execute("SELECT hush.grant_tenant('alice', 'bad tenant')")


@pytest.mark.parametrize("audit_reads", [True, False])
def test_a_preset_tenant_setting_changes_nothing(two_tenants, audit_reads):
    """hush sets hush.tenant itself on every call and never trusts an earlier value;
    the one-round-trip read path (tenants without read audit) included."""
    db = two_tenants
    for t in ("acme", "globex"):
        db.sql("SELECT hush.configure_tenant(%s, audit_reads => %s)", [t, audit_reads])
    with db.connect("alice") as a:
        for preset in ("globex", "", "acme"):
            a.execute("SELECT set_config('hush.tenant', %s, false)", [preset])
            assert get(a, "acme", "shared-name")["value"] == "acme-value"
            assert a.execute("SELECT name, value FROM hush.get_secrets('acme', ARRAY['shared-name'])").fetchall() == \
                [("shared-name", "acme-value")]
            with raises_sqlstate("SH020"):
                get(a, "globex", "shared-name")
            with raises_sqlstate("SH010"):
                get(a, "acme", "only-in-globex")
            with raises_sqlstate("SH010"):
                a.execute("SELECT * FROM hush.get_secrets('acme', ARRAY['shared-name', 'only-in-globex'])")


def test_superuser_acts_on_every_tenant_but_not_after_set_role(two_tenants):
    with two_tenants.connect("postgres") as su:
        assert get(su, "globex", "shared-name")["value"] == "globex-value"
        su.execute("SET ROLE bob")
        assert get(su, "globex", "shared-name")["value"] == "globex-value"
        with raises_sqlstate("SH020"):
            get(su, "acme", "shared-name")


def test_grants_to_dropped_and_mixed_case_roles(two_tenants):
    db = two_tenants
    db.sql('CREATE ROLE "Temp Role" NOLOGIN IN ROLE hush_reader')  # grant_tenant: a role that can call hush
    db.sql('CREATE ROLE "Mixed.Case" LOGIN IN ROLE hush_reader')
    try:
        with db.connect("adam") as adm:
            adm.execute("SELECT hush.grant_tenant('Temp Role', 'acme')")
            adm.execute("SELECT hush.grant_tenant('Mixed.Case', 'acme')")
        db.sql('DROP ROLE "Temp Role"')  # leaves a stale grant behind
        with db.connect("Mixed.Case") as m:
            assert get(m, "acme", "shared-name")["value"] == "acme-value"
            with raises_sqlstate("SH020"):
                get(m, "globex", "shared-name")
        with db.connect("alice") as a:
            assert get(a, "acme", "shared-name")["value"] == "acme-value"
    finally:
        db.sql('DROP ROLE "Mixed.Case"')
