"""Whose authority: hush acts for the role the calling code runs as, in every
context PostgreSQL runs code as a role other than the session's.

mallory is a hush_writer granted only tenant `evil`. She owns a schema and
plants code that tries everything against tenant `acme` (read, write, delete,
destroy, grant, OAuth token read, audit read, list), noting each outcome and
the session it ran in. Then other roles run that code: a superuser's ANALYZE,
VACUUM ANALYZE, CREATE INDEX, REINDEX and REFRESH MATERIALIZED VIEW (which run
index expressions and view queries as the table's owner), a SECURITY DEFINER
trigger that alice fires, and a definer function alice calls. Nothing may
cross, and the audit trail names mallory, not the session's role.
"""
from __future__ import annotations

import json
from contextlib import nullcontext as _no_error
from typing import Any, Callable

import psycopg
import pytest

from helpers import get, last_audit_id, raises_sqlstate, save

SECRET = "acme-db-password-9f2c"
TOKEN = "acme-oauth-access-token-71d0"
# Each attempt is one PL/pgSQL block; the outcome ('ok' or the SQLSTATE) is noted
# with the session and the role that ran it, so a test can tell the trap ran.
ATTEMPTS = {
    "read": "SELECT s.value INTO v FROM hush.get_secret('acme', 'db_password') s",
    "read_many": "SELECT pg_catalog.string_agg(s.value, ',') INTO v FROM hush.get_secrets('acme', ARRAY['db_password']) s",
    "write": "SELECT s.name INTO v FROM hush.save_secret('acme', 'planted', 'by-mallory') s",
    "update": "SELECT s.name INTO v FROM hush.update_secret('acme', 'db_password', 'overwritten') s",
    "delete": "PERFORM hush.delete_secret('acme', 'db_password')",
    "destroy": "SELECT hush.destroy_secret('acme', 'db_password')::text INTO v",
    "grant": "SELECT hush.grant_tenant('mallory', 'acme')::text INTO v",
    "oauth_token": "SELECT hush.oauth_access_token('acme', 'crm', 'u1') INTO v",
    "oauth_tokens": "SELECT t.access_token INTO v FROM hush.oauth_connection_tokens('acme', 'crm', 'u1') t",
    "audit": "SELECT pg_catalog.count(*)::text INTO v FROM hush.audit_log('acme') a",
    "list": "SELECT pg_catalog.count(*)::text INTO v FROM hush.list_secrets('acme') s",
    "table": "SELECT pg_catalog.count(*)::text INTO v FROM hush.secret_versions sv WHERE sv.tenant_id = 'acme'",
    # Her own tenant works from anywhere, and is recorded as hers.
    "own_read": "SELECT s.value INTO v FROM hush.get_secret('evil', 'own') s",
}
TRAP = """
CREATE SCHEMA m AUTHORIZATION mallory;
SET ROLE mallory;
CREATE TABLE m.loot (what text, outcome text, value text, session_role name, run_as name);
CREATE FUNCTION m.note(w text, o text, v text) RETURNS void LANGUAGE sql VOLATILE
    AS $$ INSERT INTO m.loot VALUES (w, o, v, SESSION_USER, CURRENT_USER) $$;
CREATE FUNCTION m.try(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
DECLARE v text;
BEGIN
  IF x <> 1 THEN RETURN x; END IF;
  %s
  RETURN x;
END $f$;
GRANT USAGE ON SCHEMA m TO PUBLIC;
GRANT INSERT, SELECT ON m.loot TO PUBLIC;
RESET ROLE;
""" % "\n  ".join(
    f"BEGIN {sql}; PERFORM m.note('{what}', 'ok', v); "
    f"EXCEPTION WHEN others THEN PERFORM m.note('{what}', SQLSTATE, NULL); END;"
    for what, sql in ATTEMPTS.items())
REFUSED = {"SH020", "42501"}  # not your tenant; not your function


@pytest.fixture
def acme(db: Any) -> Any:
    """acme holds a secret and an OAuth connection; mallory has her own secret in evil and the trap."""
    with db.connect("alice") as alice:
        save(alice, "acme", "db_password", SECRET)
        alice.execute("SELECT hush.oauth_save_provider('acme', 'crm', %s)",
                      [json.dumps({"client_id": "x", "token_endpoint": "http://127.0.0.1:9/token"})])
        alice.execute("SELECT hush.oauth_store_tokens('acme', 'crm', 'u1', 'authorization_code', %s)",
                      [json.dumps({"access_token": TOKEN, "expires_in": 3600})])
    with db.connect("mallory") as m:
        save(m, "evil", "own", "mallory-own-value")
    db.sql(TRAP)
    return db


def loot(db: Any, session: str) -> dict[str, tuple[str, Any, str]]:
    got = db.sql("SELECT what, outcome, value, run_as FROM m.loot WHERE session_role = %s", [session])
    return {w: (o, v, r) for w, o, v, r in got}


def assert_nothing_crossed(db: Any, session: str, since: int) -> None:
    """The trap ran in `session`'s context (after audit row `since`), and nothing crossed."""
    noted = loot(db, session)
    assert set(noted) == set(ATTEMPTS), f"the trap did not run in {session}'s context: {noted}"
    for what, (outcome, value, role) in noted.items():
        assert role == "mallory", (what, role)
        if what == "own_read":
            assert (outcome, value) == ("ok", "mallory-own-value")
        else:
            assert outcome in REFUSED, (what, outcome, value)
            assert value is None
    # The audit trail names the role the code ran as: mallory's own read is hers, in the
    # session of whoever ran it; nothing of acme was read or changed by anyone but alice.
    trail = db.sql("SELECT tenant_id, action, db_role, session_role FROM hush.audit_log WHERE id > %s ORDER BY id",
                   [since])
    assert trail == [("evil", "read", "mallory", session)]
    # acme is as alice left it: value, versions, no planted secret, no grant for mallory.
    with db.connect("alice") as alice:
        assert get(alice, "acme", "db_password")["value"] == SECRET
        assert alice.execute("SELECT count(*) FROM hush.secret_versions('acme', 'db_password')").fetchone() == (1,)
        assert alice.execute("SELECT hush.secret_exists('acme', 'planted')").fetchone() == (False,)
    assert db.sql("SELECT count(*) FROM hush.tenant_grants WHERE role_name = 'mallory' AND tenant_id <> 'evil'") == [(0,)]


def superuser_runs(sql: str) -> Callable[[Any], None]:
    def run(db: Any) -> None:
        db.sql(sql)
    return run


CONTEXTS = {
    "ANALYZE": ("CREATE TABLE m.t (x int); INSERT INTO m.t SELECT generate_series(1, 50); "
                "CREATE INDEX ON m.t (m.try(x));", superuser_runs("ANALYZE m.t")),
    "VACUUM ANALYZE": ("CREATE TABLE m.t (x int); INSERT INTO m.t SELECT generate_series(1, 50); "
                       "CREATE INDEX ON m.t (m.try(x));", superuser_runs("VACUUM ANALYZE m.t")),
    "CREATE INDEX": ("CREATE TABLE m.t (x int); INSERT INTO m.t SELECT generate_series(1, 50);",
                     superuser_runs("CREATE INDEX ON m.t (m.try(x))")),
    "REINDEX": ("CREATE TABLE m.t (x int); INSERT INTO m.t SELECT generate_series(1, 50); "
                "CREATE INDEX ON m.t (m.try(x));", superuser_runs("REINDEX TABLE m.t")),
    "REFRESH MATERIALIZED VIEW": ("CREATE MATERIALIZED VIEW m.mv AS SELECT m.try(1) AS x WITH NO DATA;",
                                  superuser_runs("REFRESH MATERIALIZED VIEW m.mv")),
}


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_a_superusers_maintenance_command_runs_mallorys_code_with_her_tenants_only(acme: Any, context: str) -> None:
    setup, run = CONTEXTS[context]
    with acme.connect("mallory") as m:
        m.execute(setup)
        m.execute("DELETE FROM m.loot")  # what her own session noted while setting up
    since = last_audit_id(acme)
    run(acme)
    assert_nothing_crossed(acme, "postgres", since)


def test_a_definer_trigger_alice_fires_runs_as_its_owner(acme: Any) -> None:
    with acme.connect("mallory") as m:
        m.execute("""
            CREATE TABLE m.inbox (x int);
            GRANT INSERT ON m.inbox TO alice;
            CREATE FUNCTION m.on_insert() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
                SET search_path = pg_catalog AS $f$ BEGIN PERFORM m.try(1); RETURN NEW; END $f$;
            CREATE TRIGGER inbox_trap BEFORE INSERT ON m.inbox FOR EACH ROW EXECUTE FUNCTION m.on_insert();""")
    since = last_audit_id(acme)
    with acme.connect("alice") as alice:
        alice.execute("INSERT INTO m.inbox VALUES (1)")
    assert_nothing_crossed(acme, "alice", since)


def test_a_definer_function_alice_calls_runs_as_its_owner(acme: Any) -> None:
    with acme.connect("mallory") as m:
        m.execute("""
            CREATE FUNCTION m.helpful() RETURNS int LANGUAGE plpgsql SECURITY DEFINER
                SET search_path = pg_catalog AS $f$ BEGIN RETURN m.try(1); END $f$;
            GRANT EXECUTE ON FUNCTION m.helpful() TO alice;""")
    since = last_audit_id(acme)
    with acme.connect("alice") as alice:
        alice.execute("SELECT m.helpful()")
    assert_nothing_crossed(acme, "alice", since)


def test_an_apps_definer_function_owned_by_a_granted_role_reads_for_its_callers(acme: Any) -> None:
    """The other side of the rule: code owned by a role granted acme reads acme, whoever calls it,
    and the record names that role (with the session's login role beside it)."""
    acme.sql("CREATE SCHEMA app AUTHORIZATION alice")
    with acme.connect("alice") as alice:
        alice.execute("""
            CREATE FUNCTION app.password() RETURNS text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
                AS $f$ SELECT s.value FROM hush.get_secret('acme', 'db_password') s $f$;
            GRANT USAGE ON SCHEMA app TO bob;
            GRANT EXECUTE ON FUNCTION app.password() TO bob;""")
    with acme.connect("bob") as bob:
        assert bob.execute("SELECT app.password()").fetchone() == (SECRET,)
        with raises_sqlstate("SH020"):  # bob himself is not granted acme
            get(bob, "acme", "db_password")
    trail = acme.sql("SELECT db_role, session_role FROM hush.audit_log "
                     "WHERE tenant_id = 'acme' AND action = 'read' ORDER BY id")
    assert trail == [("alice", "bob")]


def test_the_postgrest_pattern_works_only_after_switching_role(acme: Any) -> None:
    """gateway is a NOINHERIT member of acme_app: it has acme_app's privileges only once it
    switched role (pg_has_role ... 'USAGE'), with SET ROLE or SET LOCAL ROLE."""
    with acme.connect("gateway") as gw:
        with raises_sqlstate("42501"):  # not even EXECUTE: gateway itself is in no hush role
            get(gw, "acme", "db_password")
        gw.execute("SET ROLE acme_app")
        assert get(gw, "acme", "db_password")["value"] == SECRET
        gw.execute("RESET ROLE")
    with acme.connect("gateway", autocommit=False) as gw:
        gw.execute("SET LOCAL ROLE acme_app")
        assert get(gw, "acme", "db_password")["value"] == SECRET
        gw.commit()
    trail = acme.sql("SELECT db_role, session_role FROM hush.audit_log WHERE tenant_id = 'acme' AND action = 'read'")
    assert trail == [("acme_app", "gateway"), ("acme_app", "gateway")]


def test_a_noinherit_member_of_a_granted_role_gets_nothing_without_switching(acme: Any) -> None:
    """nia may call hush's functions (privileges of her own) and is a NOINHERIT member of
    nia_reader, which is granted acme: pg_has_role(..., 'MEMBER') would admit her; 'USAGE',
    hush's rule, does not until she switches role."""
    acme.sql("CREATE ROLE nia_reader NOLOGIN IN ROLE hush_reader")
    try:
        acme.sql("SELECT hush.grant_tenant('nia_reader', 'acme')")
        acme.sql("""CREATE ROLE nia LOGIN NOINHERIT IN ROLE nia_reader;
                    GRANT USAGE ON SCHEMA hush TO nia;
                    GRANT EXECUTE ON FUNCTION hush.get_secret(text, text, integer, text), hush._load_python(),
                                              hush._as_owner(text, name) TO nia;""")
        with acme.connect("nia") as nia:
            with raises_sqlstate("SH020"):
                get(nia, "acme", "db_password")
            nia.execute("SET ROLE nia_reader")
            assert get(nia, "acme", "db_password")["value"] == SECRET
    finally:
        acme.sql("DROP OWNED BY nia_reader")
        acme.sql("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nia') THEN "
                 "DROP OWNED BY nia; DROP ROLE nia; END IF; END $$")
        acme.sql("DROP ROLE nia_reader")


def test_a_superuser_acting_as_itself_may_act_on_every_tenant_and_the_record_says_so(acme: Any) -> None:
    since = last_audit_id(acme)
    with acme.connect() as su:
        assert get(su, "acme", "db_password")["value"] == SECRET
        save(su, "globex", "set_by_admin", "v")
    got = acme.sql("SELECT tenant_id, action, db_role, detail->'superuser' FROM hush.audit_log WHERE id > %s "
                   "ORDER BY id", [since])
    assert got == [("acme", "read", "postgres", True), ("globex", "create", "postgres", True)]


def test_is_superuser_of_the_session_grants_nothing(acme: Any) -> None:
    """A superuser session that SET ROLEs to mallory acts as mallory."""
    with acme.connect() as su:
        su.execute("SET ROLE mallory")
        with raises_sqlstate("SH020"):
            get(su, "acme", "db_password")


# -- what application roles can reach ----------------------------------------------------------

APP_ROLES = ["alice", "bob", "rita", "wendy", "mallory"]
LOCKS = ["ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE",
         "EXCLUSIVE", "ACCESS EXCLUSIVE"]


def hush_relations(db: Any) -> list[tuple[str, str, str]]:
    """Every table, partition, view and sequence of schema hush, with its first column."""
    return db.sql("""SELECT c.relname, c.relkind,
                            (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = 1)
                       FROM pg_class c
                      WHERE c.relnamespace = 'hush'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S')
                      ORDER BY 1""")


@pytest.mark.parametrize("role", APP_ROLES)
def test_no_application_role_can_read_probe_lock_write_or_draw_from_hush_relations(acme: Any, role: str) -> None:
    """Application roles hold no privilege on any hush relation: no SELECT (a role that could
    query a row-secured table could count another tenant's rows with EXPLAIN ANALYZE, whose
    leakproof conditions run before the row policy), no LOCK in any mode (a strong one would
    block every tenant), no INSERT, UPDATE, DELETE or TRUNCATE, no sequence."""
    db = acme
    relations = hush_relations(db)
    with db.connect(role) as conn:
        for rel, kind, col in relations:
            if kind == "S":
                for call in (f"nextval('hush.{rel}')", f"currval('hush.{rel}')", f"setval('hush.{rel}', 1)"):
                    with raises_sqlstate("42501"):
                        conn.execute(f"SELECT {call}")
                continue
            for mode in LOCKS:
                with conn.transaction():
                    with raises_sqlstate("42501"):
                        conn.execute(f"LOCK TABLE hush.{rel} IN {mode} MODE")
            for stmt in (f"SELECT {col} FROM hush.{rel} WHERE tenant_id = 'acme'" if col == "tenant_id" else
                         f"SELECT {col} FROM hush.{rel}",
                         f"EXPLAIN ANALYZE SELECT 1 FROM hush.{rel}",
                         f"INSERT INTO hush.{rel} DEFAULT VALUES", f"UPDATE hush.{rel} SET {col} = {col}",
                         f"DELETE FROM hush.{rel}", f"TRUNCATE hush.{rel}"):
                with raises_sqlstate("42501"):
                    conn.execute(stmt)


@pytest.mark.parametrize("role", ["adam", "audrey"])
def test_admins_and_auditors_read_configuration_and_the_trail_only(db: Any, role: str) -> None:
    """They read what their role is for (the whole audit trail; admins the configuration), so
    ACCESS SHARE is theirs there; nothing stronger, and no write, anywhere."""
    readable = {"audit_log", "audit_seals", "maintenance_log"} | (
        {"tenants", "tenant_grants", "root_keys", "node_keyrings"} if role == "adam" else set())
    with db.connect(role) as conn:
        for rel, kind, col in hush_relations(db):
            if kind == "S":
                continue
            with pytest.raises(psycopg.Error) if rel not in readable else _no_error():
                conn.execute(f"SELECT {col} FROM hush.{rel} LIMIT 1")
            for mode in LOCKS[1:]:
                with conn.transaction():
                    with raises_sqlstate("42501"):
                        conn.execute(f"LOCK TABLE hush.{rel} IN {mode} MODE")
            for stmt in (f"INSERT INTO hush.{rel} DEFAULT VALUES", f"UPDATE hush.{rel} SET {col} = {col}",
                         f"DELETE FROM hush.{rel}", f"TRUNCATE hush.{rel}"):
                with raises_sqlstate("42501"):
                    conn.execute(stmt)


DISPATCHERS = ["_as_owner", "_as_keykeeper", "_as_retention", "_as_refresher"]


@pytest.mark.parametrize("role", ["alice", "adam", "audrey", "wendy", "otto"])
def test_the_dispatchers_run_nothing_without_a_ticket(db: Any, role: str) -> None:
    """Calling a dispatcher directly is refused whatever the ticket and the claimed caller."""
    with db.connect(role) as conn:
        for d in DISPATCHERS:
            for ticket, caller in (("0" * 32, "postgres"), ("", "alice"), (None, None)):
                with raises_sqlstate("42501"):
                    conn.execute(f"SELECT hush.{d}(%s, %s)", [ticket, caller])
