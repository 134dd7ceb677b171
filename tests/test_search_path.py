"""A hostile search_path changes nothing a hush function does.

alice plants her own `=` operators, look-alike functions (set_config,
current_setting, now, pg_has_role) and temp tables named like hush's tables
(a tenant_grants granting her globex among them) ahead of pg_catalog."""
from __future__ import annotations

import pytest

from helpers import get, raises_sqlstate, rows, save

TRAPS = """
CREATE SCHEMA evil;
CREATE FUNCTION evil.yes(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.yes);
CREATE FUNCTION evil.yes_uuid(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = evil.yes_uuid);
CREATE FUNCTION evil.yes_int(integer, integer) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = evil.yes_int);
CREATE FUNCTION evil.set_config(text, text, boolean) RETURNS text LANGUAGE sql AS $$SELECT 'globex'$$;
CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE sql AS $$SELECT 'globex'$$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE sql AS $$SELECT 'globex'$$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '1999-01-01'::timestamptz$$;
CREATE FUNCTION evil.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE sql AS $$SELECT '00000000-0000-0000-0000-000000000000'::uuid$$;
CREATE TEMP TABLE tenant_grants (tenant_id text, role_name name, granted_at timestamptz, granted_by name);
INSERT INTO tenant_grants VALUES ('globex', 'alice', now(), 'alice'), ('*', 'alice', now(), 'alice');
CREATE TEMP TABLE secrets (LIKE pg_catalog.pg_class);
CREATE TEMP TABLE secret_versions (x int);
CREATE TEMP TABLE audit_log (x int);
CREATE TEMP TABLE root_keys (key_id text, state text);
INSERT INTO root_keys VALUES ('00000000000000000000000000000000', 'active');
SET search_path = pg_temp, evil, pg_catalog, public;
"""


@pytest.fixture
def hostile(db):
    with db.connect("bob") as b:
        save(b, "globex", "target", "globex-secret")
    with db.connect("alice") as a:
        save(a, "acme", "mine", "acme-v1")
    db.sql(f"GRANT CREATE ON DATABASE {db.name} TO alice")
    conn = db.connect("alice")
    conn.execute(TRAPS)
    yield db, conn
    conn.close()


def test_hostile_search_path_changes_nothing(hostile):
    db, a = hostile
    # The traps are live in this session: the planted = says anything equals anything.
    assert a.execute("SELECT 'a'::text = 'b'::text").fetchone() == (True,)
    assert get(a, "acme", "mine")["value"] == "acme-v1"
    with raises_sqlstate("SH020"):
        get(a, "globex", "target")
    with raises_sqlstate("SH010"):
        get(a, "acme", "target")
    assert [r["name"] for r in rows(a, "SELECT name FROM hush.list_secrets('acme')")] == ["mine"]
    assert [r["name"] for r in rows(a, "SELECT name FROM hush.search_secrets('acme', 'e')")] == ["mine"]
    saved = save(a, "acme", "mine", "acme-v2")
    assert saved["version"] == 2 and saved["created_at"].year > 2000
    saved = save(a, "acme", "new", "n")
    assert str(saved["id"]) != "00000000-0000-0000-0000-000000000000"
    with raises_sqlstate("SH013"):
        save(a, "acme", "mine", "stale", expected_version=1)
    assert get(a, "acme", "mine", 1)["value"] == "acme-v1"
    a.execute("SELECT hush.delete_secret('acme', 'new')")
    # Everything landed in hush's real tables, under the real key, with real audit rows.
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE tenant_id = 'acme'") == [(2,)]
    assert db.sql("SELECT count(DISTINCT key_id) FROM hush.secret_versions") == [(1,)]
    assert db.sql("SELECT key_id FROM hush.root_keys") != [("0" * 32,)]
    actions = db.sql("SELECT action FROM hush.audit_log WHERE tenant_id = 'acme' AND db_role = 'alice'"
                     " ORDER BY id")
    assert [x for (x,) in actions] == ["create", "read", "new_version", "create", "read", "delete"]
    # And bob's secret is untouched.
    with db.connect("bob") as b:
        assert get(b, "globex", "target")["value"] == "globex-secret"
