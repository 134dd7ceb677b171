"""Scoped grants from the Python client (issue 20): Tenants/Client grant and revoke with
`prefix=` and `capabilities=`, effective_access, their errors, and the whole-tenant
shorthand left as it was; sync, over a pool and in hush.aio. Real server, as adam
(hush_admin) for grants and as the roles themselves for effective_access."""
from __future__ import annotations

import asyncio
import itertools
import re
import shlex
from typing import Any, Iterator

import psycopg
import pytest

import hush
import hush.aio
from docs_text import documented_roles, page_of, section
from helpers import imported
from hush import _access

_names = itertools.count()


@pytest.fixture
def role(db: Any) -> Iterator[Any]:
    """A factory of login roles for this test (roles are the cluster's: dropped afterwards)."""
    made: list[str] = []

    def make(hush_role: str | None) -> str:
        name = f"scoped_{next(_names)}_{db.name}"
        db.sql(f"CREATE ROLE {name} LOGIN" + (f" IN ROLE {hush_role}" if hush_role else ""))
        made.append(name)
        return name
    yield make
    for name in made:
        db.sql(f"DROP ROLE IF EXISTS {name}")


def test_scoped_grant_adds_up_and_revoke_takes_away(db: Any, role: Any) -> None:
    pay = role("hush_reader")
    with db.connect("adam") as conn:
        tenants = hush.Tenants(conn)
        g = tenants.grant(pay, "acme", prefix="payments/", capabilities=["read"])
        assert isinstance(g, hush.AccessGrant)
        assert (g.tenant_id, g.role_name, g.prefix, g.capabilities, g.granted_by, g.notices) == \
            ("acme", pay, "payments/", ["read"], "adam", ())
        # A string is one capability, not its letters; capabilities add up on the same grant.
        assert tenants.grant(pay, "acme", prefix="payments/", capabilities="list").capabilities == ["read", "list"]
        # Granting what it holds changes nothing and is no error.
        assert tenants.grant(pay, "acme", prefix="payments/", capabilities=("read",)).capabilities == ["read", "list"]
        left = tenants.revoke(pay, "acme", prefix="payments/", capabilities=["list"])
        assert left.capabilities == ["read"]
        assert len(left.notices) == 1 and "may still list" in left.notices[0]  # read implies it
        gone = tenants.revoke(pay, "acme", prefix="payments/", capabilities=["read"])
        assert (gone.prefix, gone.capabilities) == ("payments/", [])
        with pytest.raises(hush.GrantNotFound) as ei:
            tenants.revoke(pay, "acme", prefix="payments/", capabilities=["read"])
        assert ei.value.code == "SH025" and "prefix 'paym...' (9 chars)" in str(ei.value)
    actions = db.sql("SELECT action, detail->>'role', detail->>'prefix' FROM hush.audit_log "
                     "WHERE action IN ('grant_access', 'revoke_access') ORDER BY id")
    assert actions == [("grant_access", pay, "payments/")] * 2 + [("revoke_access", pay, "payments/")] * 2


def test_revoke_says_when_a_broader_grant_still_allows(db: Any) -> None:
    """rita holds the whole tenant (conftest's grant_tenant): a narrower revoke leaves her list."""
    with db.connect("adam") as conn:
        tenants = hush.Tenants(conn)
        tenants.grant("rita", "acme", prefix="payments/", capabilities=["list"])
        left = tenants.revoke("rita", "acme", prefix="payments/", capabilities=["list"])
    assert left.capabilities == []
    assert len(left.notices) == 1 and "may still list" in left.notices[0] and "rita" in left.notices[0]
    assert not left.notices[0].startswith("hush: ")


def test_effective_access_as_the_role_itself_and_as_admin(db: Any, role: Any) -> None:
    oncall = role("hush_reader")
    with db.connect("adam") as conn:
        hush.Tenants(conn).grant(oncall, "acme", prefix="", capabilities=["list"])
        hush.Tenants(conn).grant(oncall, "acme", prefix="payments/", capabilities=["read"])
        as_admin = hush.Tenants(conn).effective_access(oncall, "acme")
    with db.connect(oncall) as conn:
        mine = hush.Tenants(conn).effective_access(oncall, "acme")
        with pytest.raises(hush.PermissionDenied):  # another role's access: admins only
            hush.Tenants(conn).effective_access("alice", "acme")
    assert mine == as_admin
    assert all(isinstance(e, hush.AccessEntry) for e in mine)
    got = {(e.capability, e.prefix, e.grant_tenant, e.grant_role, e.implied_by, e.callable) for e in mine}
    assert got == {("list", "", "acme", oncall, None, True), ("read", "payments/", "acme", oncall, None, True),
                   ("list", "payments/", "acme", oncall, "read", True)}
    with db.connect("rita") as conn:  # nothing on a tenant it holds no grant on
        assert hush.Tenants(conn).effective_access("rita", "globex") == []


def test_whole_tenant_shorthand_is_unchanged(db: Any, role: Any) -> None:
    writer = role("hush_writer")
    with db.connect("adam") as conn:
        tenants = hush.Tenants(conn)
        assert tenants.grant(writer, "acme") is True
        assert tenants.grant(writer, "acme") is False
        caps = {e.capability for e in tenants.effective_access(writer, "acme") if e.prefix == ""}
        assert caps == set(_access.CAPABILITIES)  # a writer can call every capability's functions
        tenants.grant(writer, "acme", prefix="ci/", capabilities=["write"])
        assert tenants.revoke(writer, "acme") is True  # every prefix
        assert tenants.effective_access(writer, "acme") == []
        assert tenants.revoke(writer, "acme") is False


def test_errors_map_to_their_classes_and_write_nothing(db: Any, role: Any) -> None:
    before = db.sql("SELECT count(*) FROM hush.tenant_grants")[0][0]
    with db.connect("adam") as conn:
        tenants = hush.Tenants(conn)
        with pytest.raises(hush.CapabilityNotCallable) as ei:  # rita is only a reader
            tenants.grant("rita", "acme", prefix="ci/", capabilities=["read", "write"])
        assert ei.value.code == "SH024" and isinstance(ei.value, hush.InvalidInput) and "write" in str(ei.value)
        with pytest.raises(hush.CapabilityNotCallable):  # separation of duties: an admin reads no value
            tenants.grant("adam", "acme", prefix="", capabilities=["read"])
        for bad in (["reed"], [], ["read", None]):
            with pytest.raises(hush.InvalidArgument) as ei2:
                tenants.grant("rita", "acme", prefix="p/", capabilities=bad)  # type: ignore[arg-type]
            assert ei2.value.code == "SH004"
        with pytest.raises(hush.InvalidArgument) as ei3:  # a prefix alone: refused before any call
            tenants.grant("rita", "acme", prefix="p/")  # type: ignore[call-overload]
        assert ei3.value.code == "SH004" and "capabilities" in str(ei3.value)
        with pytest.raises(hush.InvalidArgument):
            tenants.revoke("rita", "acme", prefix="p/")  # type: ignore[call-overload]
        with pytest.raises(hush.InvalidTenant):
            tenants.grant("rita", "no spaces", capabilities=["read"])
    with db.connect("alice") as conn, pytest.raises(hush.PermissionDenied):  # grants are hush_admin's
        hush.Tenants(conn).grant("alice", "acme", prefix="x/", capabilities=["read"])
    assert db.sql("SELECT count(*) FROM hush.tenant_grants")[0][0] == before


def test_client_and_its_transaction(db: Any, role: Any) -> None:
    """hush.connect()'s shortcuts, and a Tenants over a connection inside a transaction that
    rolls back: the grant goes with it."""
    ci = role("hush_writer")
    with hush.connect(db.dsn("adam"), max_size=1) as client:
        g = client.grant(ci, "acme", prefix="ci/", capabilities=["write", "delete"])
        assert g.capabilities == ["write", "delete"]
        assert {(e.capability, e.prefix) for e in client.effective_access(ci, "acme")} == \
            {("write", "ci/"), ("delete", "ci/"), ("list", "ci/")}
        assert client.revoke(ci, "acme", prefix="ci/", capabilities=["delete"]).capabilities == ["write"]
        assert client.revoke(ci, "acme") is True
    with db.connect("adam", autocommit=False) as conn:
        hush.Tenants(conn).grant(ci, "acme", prefix="ci/", capabilities=["write"])
        conn.rollback()
    assert db.sql("SELECT count(*) FROM hush.tenant_grants WHERE role_name = %s", [ci])[0][0] == 0


def test_async_twins(db: Any, role: Any) -> None:
    ci = role("hush_writer")

    async def main() -> None:
        async with await hush.aio.connect(db.dsn("adam"), max_size=1) as client:
            g = await client.grant(ci, "acme", prefix="ci/", capabilities=["write"])
            assert isinstance(g, hush.AccessGrant) and g.capabilities == ["write"]
            await client.grant(ci, "acme", prefix="", capabilities=["list"])
            left = await client.revoke(ci, "acme", prefix="ci/", capabilities=["write"])
            assert left.capabilities == [] and left.notices == ()  # write is not list: nothing left to say
            with pytest.raises(hush.GrantNotFound):
                await client.revoke(ci, "acme", prefix="ci/", capabilities=["write"])
            assert [(e.capability, e.prefix) for e in await client.effective_access(ci, "acme")] == [("list", "")]
            assert await client.grant(ci, "globex") is True
            assert await client.revoke(ci, "globex") is True
        async with await psycopg.AsyncConnection.connect(db.dsn("adam"), autocommit=True) as conn:
            tenants = hush.aio.AsyncTenants(conn)
            await tenants.grant(ci, "acme", prefix="ci/", capabilities=["write"])
            left = await tenants.revoke(ci, "acme", prefix="ci/", capabilities=["list", "write"])
            assert len(left.notices) == 1 and "may still list" in left.notices[0]  # the '' grant above
            with pytest.raises(hush.CapabilityNotCallable):
                await tenants.grant("audrey", "acme", prefix="", capabilities=["read"])
    asyncio.run(main())


def test_capabilities_are_the_servers() -> None:
    assert _access.CAPABILITIES == imported("hush_plpy.access").CAPABILITIES


# -- the docs' "Access control" section, run as it is written -----------------------------

FENCE = re.compile(r"^```(sql|python|sh)\n(.*?)^```", re.S | re.M)
EXAMPLE_ROLES = ("sec_admin", "payments_app", "ci_deployer", "oncall", "acme_auditor", "payments_auditor")


def _statements(sql: str) -> list[str]:
    """The statements of a block, without the comment lines that show a result."""
    parts = re.split(r";\s*(?:--[^\n]*)?\n", sql.rstrip() + "\n")
    return [p for p in parts if "\n".join(x for x in p.splitlines() if not x.lstrip().startswith("--")).strip()]


def _shown_rows(sql: str) -> list[list[str]]:
    """A block's commented result table (after its header line), as cells."""
    lines = [x[3:] for x in sql.splitlines() if x.startswith("--  ")]
    return [[c.strip() for c in line.split("|")] for line in lines[1:]]


def _cell(v: Any) -> str:
    return "t" if v is True else "f" if v is False else "" if v is None else str(v)


@pytest.fixture
def example_roles(db: Any) -> Iterator[None]:
    yield
    for name in EXAMPLE_ROLES:
        db.sql(f"DROP ROLE IF EXISTS {name}")


def test_readme_access_control_example_runs_as_written(db: Any, example_roles: None, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from hush.cli import build
    from click.testing import CliRunner

    blocks = FENCE.findall(section("Access control"))
    assert [kind for kind, _ in blocks] == ["sql"] * 4 + ["python"] + ["sql"] * 9 + ["sh"], \
        "the docs' example changed: update this test"
    notices: list[str] = []
    for kind, body in blocks:
        if kind == "python":
            for var, user in (("CI_DSN", "ci_deployer"), ("PAYMENTS_DSN", "payments_app")):
                monkeypatch.setenv(var, db.dsn(user))
            capsys.readouterr()
            exec(compile(body, page_of("Access control"), "exec"),
                 {"stripe_key": "sk_live_example", "deploy_token": "tok_1"})
            assert capsys.readouterr().out.splitlines() == ["SH020", "SH020", "['payments/stripe_key']", "False"]
            continue
        if kind == "sh":
            _run_cli_block(db, body, build(), CliRunner())
            continue
        first, _, sql = body.partition("\n")
        m = re.fullmatch(r"--\s*as (\w+)(?:; error (\w{5}))?", first.strip())
        assert m, first
        user, error = m[1], m[2]
        with db.connect(user) as conn:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
            for stmt in _statements(sql):
                if error:
                    with pytest.raises(psycopg.Error) as ei:
                        conn.execute(stmt)
                    assert ei.value.sqlstate == error, (stmt, ei.value)
                    continue
                cur = conn.execute(stmt)
                got = cur.fetchall() if cur.description else []
                if "effective_access" in stmt:
                    assert [[_cell(v) for v in row] for row in got] == _shown_rows(sql)
                if "FROM hush.list_secrets" in stmt and user == "oncall":
                    assert sorted(r[0] for r in got) == ["ci/deploy_token", "payments/stripe_key"]
                if "FROM hush.audit_log(" in stmt:
                    allowed = {(r[1], r[2]): r[4] for r in got if r[2]}
                    assert allowed[("read", "payments/stripe_key")] == \
                        {"tenant": "acme", "role": "payments_app", "prefix": "payments/"}
                    if user == "payments_auditor":  # its prefix's rows, and no other
                        assert {r[2] for r in got} == {"payments/stripe_key"}
                    else:
                        assert allowed[("create", "ci/deploy_token")]["prefix"] == "ci/"
                        assert any(r[2] is None for r in got)  # rows about no secret: the grants
                if "FROM hush.audit_log GROUP" in stmt:  # the cluster-wide auditor: every tenant's rows
                    every = db.sql("SELECT tenant_id, count(*) FROM hush.audit_log GROUP BY tenant_id")
                    assert sorted(got) == sorted(every) and len(every) > 1
                if "hush.revoke(" in stmt:
                    assert got == [(["write"],)]
    assert any("may still list" in n and "ci_deployer" in n for n in notices), notices
    # Nothing of a value in the trail the auditor read.
    assert not db.sql("SELECT 1 FROM hush.audit_log WHERE detail::text LIKE '%sk_live_example%'")


def _run_cli_block(db: Any, body: str, cli: Any, runner: Any) -> None:
    """The block's `hush` lines as sec_admin; an oncall session opened before them sees each
    change at its next statement."""
    lines = [shlex.split(line, comments=True) for line in body.splitlines() if line.strip()]
    with db.connect("oncall") as oncall:
        read = "SELECT value FROM hush.get_secret('acme', 'payments/stripe_key')"
        with pytest.raises(psycopg.Error) as ei:
            oncall.execute(read)
        assert ei.value.sqlstate == "SH020"
        for argv in lines:
            assert argv[0] == "hush"
            r = runner.invoke(cli, argv[1:], env={"HUSH_DSN": db.dsn("sec_admin")}, prog_name="hush")
            assert r.exit_code == 0, r.stderr
            if argv[1:3] == ["access", "grant"]:
                assert oncall.execute(read).fetchone() == ("sk_live_example",)
            if argv[1:3] == ["access", "show"]:
                assert "read" in r.stdout and "'payments/'" in r.stdout
        with pytest.raises(psycopg.Error) as ei:  # revoked: at the very next statement
            oncall.execute(read)
        assert ei.value.sqlstate == "SH020"


def test_readme_function_table_roles_are_the_grants(db: Any) -> None:
    """The functions table of the docs says who may call the grant functions; EXECUTE agrees."""
    documented = documented_roles("(?:grant|revoke|effective_access|audit_log)", r"`(\w+)\(")
    assert set(documented) == {"grant_tenant", "revoke_tenant", "grant", "revoke", "effective_access", "audit_log"}
    for name, roles in documented.items():
        granted = db.sql("""SELECT array(SELECT (a).grantee::regrole::text FROM (SELECT aclexplode(p.proacl) AS a) x)
                              FROM pg_proc p WHERE p.pronamespace = 'hush'::regnamespace AND p.proname = %s""", [name])
        assert [set(g) - {"hush_owner"} for (g,) in granted] == [roles], name
