"""ALTER EXTENSION hush UPDATE: every path from an earlier release (its frozen
install script in releases/) to this version ends where a fresh install
does (the surface and schema of tests/test_surface.py, function bodies, event
triggers), keeps the data readable, and switches a session that already ran the
old Python over to the new; the update drops what left the surface and leaves
what a user or DBA made alone; what every update re-creates can run twice."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from conftest import extension_dir
from helpers import get, save
from test_surface import QUERIES, surface

ROOT = Path(__file__).resolve().parents[1]
# The common part as the build writes it, in an interpreter of its own as `make` runs it:
# the loader's compiled modules (marshal) come out byte for byte the same only there.
COMMON = ("import sys; sys.path.insert(0, 'tools'); import build_sql, sql_layout; "
          "sys.stdout.write(sql_layout.body(sys.argv[1], [], build_sql.expand))")

FUNCTION_DEFS = """SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
                     FROM pg_proc p WHERE p.pronamespace = 'hush'::regnamespace ORDER BY 1"""
GRANTS = "SELECT tenant_id, role_name, granted_at, granted_by FROM hush.tenant_grants ORDER BY 1, 2"
EVERY = ["read", "list", "write", "delete", "destroy", "oauth_use", "oauth_manage", "audit"]
READER = ["read", "list", "oauth_use", "audit"]  # what a hush_reader can call
TRAIL = "SELECT * FROM hush.audit_log ORDER BY id"
EVENT_TRIGGERS = "SELECT evtname, evtevent, evtenabled, evttags::text, evtfoid::regproc::text FROM pg_event_trigger ORDER BY 1"
MEMBERS = """SELECT pg_describe_object(d.classid, d.objid, 0) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
              WHERE e.extname = 'hush' AND d.deptype = 'e' ORDER BY 1"""


class Named:
    def __init__(self, cluster: Any, name: str) -> None:
        self.cluster, self.name = cluster, name

    def dsn(self, user: str = "postgres") -> str:
        return self.cluster.dsn(self.name, user=user)

    def connect(self, user: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.dsn(user), autocommit=True)

    def sql(self, query: str, params: object = None) -> list[tuple]:
        with self.connect() as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


@pytest.fixture
def fresh_db(cluster: Any, released_versions: list[str]) -> Iterator[Any]:
    """An empty database (no extension) of the session cluster, where old versions can be installed."""
    made: list[str] = []

    def make(name: str) -> Named:
        with psycopg.connect(cluster.dsn(), autocommit=True) as su:
            su.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return Named(cluster, name)
    yield make
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for name in made:
            su.execute(f"DROP DATABASE {name} WITH (FORCE)")


def versions(db: Any) -> tuple[list[str], str]:
    rows = db.sql("SELECT name, default_version FROM pg_available_extensions WHERE name = 'hush'")
    default = rows[0][1]
    sources = [r[0] for r in db.sql("SELECT source FROM pg_extension_update_paths('hush') "
                                    "WHERE target = %s AND path IS NOT NULL", [default])]
    return sources, default


def test_every_update_path_ends_like_a_fresh_install(fresh_db: Any) -> None:
    new = fresh_db("up_fresh")
    new.sql("CREATE EXTENSION hush CASCADE")
    sources, default = versions(new)
    assert sources, "no update path leads to the current version (tools/build_sql.py, releases/manifest.json)"
    for i, source in enumerate(sources):
        old = fresh_db(f"up_from_{i}")
        old.sql("CREATE EXTENSION hush VERSION %s CASCADE" % psycopg.sql.quote(source))
        old.sql("SELECT hush.grant_tenant('alice', 'acme')")
        with old.connect("alice") as alice:
            save(alice, "acme", "kept", "value-saved-before-the-update")
            assert get(alice, "acme", "kept")["value"] == "value-saved-before-the-update"
            grants = old.sql(GRANTS)
            trail = old.sql(TRAIL)
            assert grants and trail
            old.sql("ALTER EXTENSION hush UPDATE")
            # Every grant and audit row is still there, as it was.
            assert old.sql(GRANTS) == grants
            assert old.sql(TRAIL) == trail
            # The same session, whose backend holds the old version's Python, runs the new.
            assert get(alice, "acme", "kept")["value"] == "value-saved-before-the-update"
            save(alice, "acme", "kept", "saved-after")
        assert old.sql("SELECT extversion FROM pg_extension WHERE extname = 'hush'") == [(default,)]
        assert surface(old) == surface(new), f"update from {source} differs from a fresh install"
        assert old.sql(FUNCTION_DEFS) == new.sql(FUNCTION_DEFS)
        assert old.sql(EVENT_TRIGGERS) == new.sql(EVENT_TRIGGERS)
        with old.connect("alice") as alice:
            assert get(alice, "acme", "kept", 1)["value"] == "value-saved-before-the-update"
            assert get(alice, "acme", "kept")["value"] == "saved-after"


def test_whole_tenant_grants_keep_working_after_the_update(fresh_db: Any) -> None:
    """Grants made before scoped grants existed hold, on the whole tenant, every capability
    their role can call: a reader reads and lists, a writer writes, and hush.grant works on
    the updated database."""
    sources, _ = versions(fresh_db("up_grants_probe"))
    for i, source in enumerate(sources):
        old = fresh_db(f"up_grants_{i}")
        old.sql("CREATE EXTENSION hush VERSION %s CASCADE" % psycopg.sql.quote(source))
        old.sql("SELECT hush.grant_tenant('alice', 'acme'), hush.grant_tenant('rita', 'acme')")
        with old.connect("alice") as alice:
            save(alice, "acme", "payments/stripe", "value-saved-before-the-update")
        old.sql("ALTER EXTENSION hush UPDATE")
        every = ["read", "list", "write", "delete", "destroy", "oauth_use", "oauth_manage", "audit"]
        assert old.sql("SELECT role_name, prefix, capabilities FROM hush.tenant_grants ORDER BY 1") == [
            ("alice", "", every), ("rita", "", READER)], source
        with old.connect("rita") as rita:
            assert get(rita, "acme", "payments/stripe")["value"] == "value-saved-before-the-update"
            assert [r[0] for r in rita.execute("SELECT name FROM hush.list_secrets('acme')")] == ["payments/stripe"]
        with old.connect("alice") as alice:
            assert save(alice, "acme", "payments/stripe", "saved-after")["version"] == 2
            alice.execute("SELECT hush.delete_secret('acme', 'payments/stripe')")
        with old.connect("adam") as adam:
            row = adam.execute("SELECT capabilities FROM hush.grant('rita', 'acme', 'ci/', ARRAY['read'])").fetchone()
            assert row == (["read"],)
            assert adam.execute("SELECT capabilities FROM hush.revoke('rita', 'acme', '', ARRAY['audit'])"
                                ).fetchone()[0] == [c for c in READER if c != "audit"]
        with old.connect("rita") as rita:
            got = rita.execute("SELECT capability, prefix, implied_by FROM hush.effective_access('rita', 'acme') "
                               "WHERE prefix = 'ci/'").fetchall()
            assert got == [("read", "ci/", None), ("list", "ci/", "read")]


def test_the_update_keeps_of_each_old_grant_what_its_role_can_call(fresh_db: Any, cluster: Any) -> None:
    """A grant made before 0.5.0 keeps the capabilities its role can call at the update, as
    grant_tenant grants now: an auditor's old grant does not hold `read`, which would let it
    read values, unaudited, the day it is made a reader. A group whose members bring their
    own hush role, and a role dropped since, keep every capability; an admin's grant, which
    gave it nothing, goes."""
    sources, _ = versions(fresh_db("up_caps_probe"))
    team, member, gone = "up_caps_team", "up_caps_member", "up_caps_gone"

    def su(sql: str) -> None:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(sql)
    su(f"CREATE ROLE {team} NOLOGIN")  # no hush role of its own
    su(f"CREATE ROLE {member} LOGIN IN ROLE {team}, hush_reader")
    try:
        for i, source in enumerate(sources):
            old = fresh_db(f"up_caps_{i}")
            old.sql("CREATE EXTENSION hush VERSION %s CASCADE" % psycopg.sql.quote(source))
            su(f"CREATE ROLE {gone} LOGIN IN ROLE hush_auditor")
            for role in ("alice", "rita", "audrey", "adam", "wendy", team, gone):
                old.sql("SELECT hush.grant_tenant(%s, 'acme')", [role])
            su(f"DROP ROLE {gone}")
            with old.connect("alice") as alice:
                save(alice, "acme", "payments/stripe", "value-saved-before-the-update")
            old.sql("ALTER EXTENSION hush UPDATE")
            assert old.sql("SELECT role_name, prefix, capabilities FROM hush.tenant_grants ORDER BY 1") == [
                ("alice", "", EVERY), ("audrey", "", ["audit"]), ("rita", "", READER),
                (gone, "", EVERY), (team, "", EVERY), ("wendy", "", ["oauth_use"])], source
            with old.connect(member) as m:  # through its group's grant, with its own hush role
                assert get(m, "acme", "payments/stripe")["value"] == "value-saved-before-the-update"
            su("GRANT hush_reader TO audrey")
            try:
                with old.connect("audrey") as audrey:
                    with pytest.raises(psycopg.Error) as ei:
                        get(audrey, "acme", "payments/stripe")
                    assert ei.value.sqlstate in ("SH010", "SH020"), source
                    assert audrey.execute("SELECT count(*) FROM hush.audit_log('acme')").fetchone()[0] > 0
            finally:
                su("REVOKE hush_reader FROM audrey")
    finally:
        for role in (gone, member, team):
            su(f"DROP ROLE IF EXISTS {role}")


def test_the_update_drops_what_left_the_surface(fresh_db: Any) -> None:
    """A routine of the extension that the new version does not create again goes with the
    update (CREATE OR REPLACE with other arguments would leave it beside the new one, and a
    call matching both is ambiguous: 42725); a function and a table of the user's in schema
    hush, not members of the extension, stay as they were: the function is not made
    hush_owner's (as a SECURITY DEFINER function it would then run with hush's rights), and
    neither loses the privileges its owner gave."""
    old = fresh_db("up_sweep")
    old.sql("CREATE EXTENSION hush VERSION '0.4.0' CASCADE")
    old.sql("CREATE FUNCTION hush.left_the_surface(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1'")
    old.sql("ALTER EXTENSION hush ADD FUNCTION hush.left_the_surface(integer)")
    old.sql("CREATE FUNCTION hush.users_own(integer) RETURNS integer LANGUAGE sql SECURITY DEFINER AS 'SELECT $1'")
    old.sql("GRANT EXECUTE ON FUNCTION hush.users_own(integer) TO rita")
    old.sql("CREATE TABLE hush.users_table (a integer)")
    old.sql("GRANT SELECT ON hush.users_table TO PUBLIC")
    users = """SELECT pg_get_userbyid(proowner), proacl::text FROM pg_proc
                WHERE oid = 'hush.users_own(integer)'::regprocedure
               UNION ALL
               SELECT pg_get_userbyid(relowner), relacl::text FROM pg_class WHERE oid = 'hush.users_table'::regclass"""
    before = old.sql(users)
    assert before[0][0] == "postgres" and "=X/postgres" in before[0][1] and "rita=X/postgres" in before[0][1]
    assert "=r/postgres" in before[1][1]  # PUBLIC's
    assert old.sql("SELECT to_regprocedure('hush.get_secret(text, text, integer)') IS NOT NULL") == [(True,)]
    old.sql("ALTER EXTENSION hush UPDATE")
    assert old.sql(users) == before
    assert old.sql("SELECT to_regprocedure('hush.left_the_surface(integer)')") == [(None,)]
    assert old.sql("SELECT to_regprocedure('hush.get_secret(text, text, integer)')") == [(None,)]
    assert old.sql("SELECT hush.users_own(7)") == [(7,)]
    assert old.sql("SELECT count(*) FROM pg_proc WHERE proname = 'get_secret' "
                   "AND pronamespace = 'hush'::regnamespace") == [(1,)]


def test_the_update_keeps_a_policy_of_the_dbas(fresh_db: Any) -> None:
    """An update drops hush's own policies by name and makes them again, and no other: a
    restrictive policy a DBA put on hush.secrets stays in force, and hush's come out as on
    a fresh install (0.4.0's tenant_isolation policies gone)."""
    new = fresh_db("up_policy_fresh")
    new.sql("CREATE EXTENSION hush CASCADE")
    old = fresh_db("up_policy")
    old.sql("CREATE EXTENSION hush VERSION '0.4.0' CASCADE")
    old.sql("CREATE POLICY dba_no_purge ON hush.secrets AS RESTRICTIVE FOR DELETE USING (false)")
    assert [r[1] for r in old.sql(QUERIES["policies"]) if r[0] == "secrets"] == [
        "dba_no_purge", "purge_scan", "tenant_isolation"]
    old.sql("ALTER EXTENSION hush UPDATE")
    policies = old.sql(QUERIES["policies"])
    assert [r for r in policies if r[1] == "dba_no_purge"] == [
        ("secrets", "dba_no_purge", "RESTRICTIVE", "{public}", "DELETE", "false", None)]
    assert [r for r in policies if r[1] != "dba_no_purge"] == new.sql(QUERIES["policies"])


def test_what_every_update_recreates_can_run_twice(db: Any) -> None:
    """The common part of every install and update script (the prelude, the idempotent
    files, the sweep: tools/sql_layout.py) run again, as an update to a version of its own,
    on a database that has the current version changes nothing: surface, schema, function
    bodies, event triggers and the extension's members are as they were."""
    (version,) = db.sql("SELECT extversion FROM pg_extension WHERE extname = 'hush'")[0]
    again = f"{version}-again"
    script = os.path.join(extension_dir(), f"hush--{version}--{again}.sql")
    state = (surface(db), db.sql(FUNCTION_DEFS), db.sql(EVENT_TRIGGERS), db.sql(MEMBERS))
    with open(script, "w") as f:
        f.write(subprocess.run([sys.executable, "-c", COMMON, version], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout)
    try:
        db.sql(f"ALTER EXTENSION hush UPDATE TO '{again}'")
    finally:
        os.remove(script)
    assert db.sql("SELECT extversion FROM pg_extension WHERE extname = 'hush'") == [(again,)]
    assert (surface(db), db.sql(FUNCTION_DEFS), db.sql(EVENT_TRIGGERS), db.sql(MEMBERS)) == state
