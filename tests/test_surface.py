"""The public surface, pinned: functions with their owners, grants, SECURITY
DEFINER flags, search_path settings and volatility; tables with owners, grants
and row-level security; policies; and the schema (columns, constraints, indexes,
composite types, domains, sequences), so the current shape reads in one place. A
change to any of them shows up as a diff against tests/golden/surface.txt. After a
deliberate change, regenerate it with HUSH_UPDATE_GOLDEN=1 make test
PYTEST_ARGS=tests/test_surface.py and review the diff."""
from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden" / "surface.txt"

QUERIES = {
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_function_result(p.oid), l.lanname,
               pg_get_userbyid(p.proowner), p.prosecdef, p.provolatile, p.proconfig::text,
               (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(p.proacl) a)
          FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.pronamespace = 'hush'::regnamespace ORDER BY 1""",
    "relations": """
        SELECT CASE WHEN c.relnamespace = 'hush'::regnamespace THEN c.relname::text
                    ELSE c.relnamespace::regnamespace::text || '.' || c.relname END,
               c.relkind, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity,
               (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(c.relacl) a)
          FROM pg_class c WHERE c.relnamespace IN ('hush'::regnamespace, 'hush_private'::regnamespace)
           AND c.relkind IN ('r', 'p', 'S', 'v')
         ORDER BY 1""",
    "schemas": """
        SELECT n.nspname, pg_get_userbyid(n.nspowner),
               (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(n.nspacl) a)
          FROM pg_namespace n WHERE n.nspname IN ('hush', 'hush_private') ORDER BY 1""",
    "policies": """
        SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check
          FROM pg_policies WHERE schemaname = 'hush' ORDER BY 1, 2""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
          FROM pg_trigger WHERE tgrelid::regclass::text LIKE 'hush.%' AND NOT tgisinternal ORDER BY 1, 2""",
    "config dump": """
        SELECT unnest(extconfig)::regclass::text FROM pg_extension WHERE extname = 'hush' ORDER BY 1""",
    # The schema, readable in one place. Columns by name, not position: a column added by
    # ALTER TABLE sits last in an updated database and where it was written in a fresh one.
    "schema: columns": """
        SELECT c.oid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
         WHERE c.relnamespace IN ('hush'::regnamespace, 'hush_private'::regnamespace) AND c.relkind IN ('r', 'p')
         ORDER BY 1, 2""",
    "schema: constraints": """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
          FROM pg_constraint c WHERE c.connamespace IN ('hush'::regnamespace, 'hush_private'::regnamespace)
           AND c.contypid = 0 ORDER BY 1, 2""",
    "schema: indexes": """
        SELECT i.tablename, i.indexname, i.indexdef
          FROM pg_indexes i WHERE i.schemaname IN ('hush', 'hush_private') ORDER BY 1, 2""",
    "schema: composite types": """
        SELECT t.typname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)
          FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid AND c.relkind = 'c'
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE t.typnamespace = 'hush'::regnamespace ORDER BY 1, 2""",
    "schema: domains": """
        SELECT t.typname, format_type(t.typbasetype, t.typtypmod), t.typnotnull, c.conname,
               pg_get_constraintdef(c.oid)
          FROM pg_type t LEFT JOIN pg_constraint c ON c.contypid = t.oid
         WHERE t.typnamespace = 'hush'::regnamespace AND t.typtype = 'd' ORDER BY 1, 4""",
    "schema: sequences": """
        SELECT s.seqrelid::regclass::text, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
               s.seqmax, s.seqcache, s.seqcycle,
               (SELECT d.refobjid::regclass::text || '.' || a.attname FROM pg_depend d
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seqrelid AND d.deptype = 'a')
          FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
         WHERE c.relnamespace IN ('hush'::regnamespace, 'hush_private'::regnamespace) ORDER BY 1""",
}


def surface(db) -> str:
    out = []
    for title, q in QUERIES.items():
        out.append(f"# {title}")
        out.extend(" | ".join("" if v is None else str(v) for v in row) for row in db.sql(q))
    return "\n".join(out) + "\n"


def test_public_surface_matches_golden_file(db):
    got = surface(db)
    if os.environ.get("HUSH_UPDATE_GOLDEN"):
        GOLDEN.write_text(got)
    assert GOLDEN.exists(), "tests/golden/surface.txt is missing"
    assert got == GOLDEN.read_text()


# The only SECURITY DEFINER functions: the keyring's source and the recorder's
# target (superuser-owned, for hush_owner), the dispatchers of hush's privileged
# steps, each owned by the role its steps run as, and the receiving end of read
# records and of a database's first key registration (for hush_recorder).
# Everything callers call runs as the caller.
DEFINERS = {"_root_key_source": "postgres", "_recorder_target": "postgres", "_recorder_room": "postgres",
            "_horizon_holder": "postgres",
            "_as_owner": "hush_owner",
            "_as_keykeeper": "hush_keykeeper", "_as_retention": "hush_retention", "_as_refresher": "hush_refresher",
            "_record": "hush_owner", "_register_first_root_key": "hush_owner"}
# Maintenance pins the time settings it hashes and partitions by.
PINNED_TIME_FUNCTIONS = {"_as_retention", "create_audit_partitions", "seal_audit", "verify_audit",
                         "cleanup_audit_logs", "purge_deleted_secrets", "cleanup_oauth"}
PINNED = "{\"search_path=pg_catalog, pg_temp\"}"
PINNED_TIME = "{\"search_path=pg_catalog, pg_temp\",TimeZone=UTC,\"DateStyle=ISO, YMD\"}"
# Functions that take or store intervals read them as PL/Python hands them over, as text:
# one IntervalStyle, whatever the session's, so the audit rows they write read the same; and
# they add intervals to times (rotated_at + rotate_every, now() - destroy_versions_after),
# where a day or a month is counted in the session's time zone: UTC, whatever the session's.
PINNED_INTERVALS = {"save_secret", "update_secret", "update_secret_by_id", "save_secrets", "promote_secret",
                    "rollback_secret", "due_for_rotation", "configure_tenant"}
PINNED_INTERVAL = "{\"search_path=pg_catalog, pg_temp\",IntervalStyle=postgres,TimeZone=UTC}"
PINNED_TIME_INTERVAL = ("{\"search_path=pg_catalog, pg_temp\",TimeZone=UTC,\"DateStyle=ISO, YMD\","
                        "IntervalStyle=postgres}")
# Without a SET clause: PostgreSQL refuses COMMIT in a procedure that has one; the loader names nothing.
UNPINNED = {"rewrap", "_load_python"}


def test_security_invariants(db):
    """What the golden file must always show, stated outright."""
    funcs = db.sql("""SELECT p.proname, pg_get_userbyid(p.proowner), p.prosecdef, p.proconfig::text, p.proacl::text
                        FROM pg_proc p WHERE p.pronamespace = 'hush'::regnamespace""")
    assert {name for name, _, secdef, *_ in funcs if secdef} == set(DEFINERS)
    for name, owner, secdef, config, acl in funcs:
        assert owner == DEFINERS.get(name, "hush_owner"), name
        if name in UNPINNED:
            assert config is None, name
        else:
            expected = {"maintain_secrets": PINNED_TIME_INTERVAL}.get(name) or (
                PINNED_TIME if name in PINNED_TIME_FUNCTIONS else PINNED_INTERVAL if name in PINNED_INTERVALS
                else PINNED)
            assert config == expected, (name, config)
        if name == "_root_key_source":
            assert set(acl.strip("{}").split(",")) == {"postgres=X/postgres", "hush_owner=X/postgres",
                                                        "hush_keykeeper=X/postgres"}
        if name in ("_recorder_target", "_recorder_room"):  # primary_conninfo; every session
            assert set(acl.strip("{}").split(",")) == {"postgres=X/postgres", "hush_owner=X/postgres"}
        if name == "_horizon_holder":  # other sessions' activity, for seal_audit's steps only
            assert set(acl.strip("{}").split(",")) == {"postgres=X/postgres", "hush_retention=X/postgres"}
        if name in ("_record", "_register_first_root_key"):
            assert set(acl.strip("{}").split(",")) == {"hush_owner=X/hush_owner", "hush_recorder=X/hush_owner"}
        # An ACL entry for PUBLIC has no grantee before '='.
        assert acl and not any(e.startswith("=") for e in acl.strip("{}").split(",")), f"{name}: PUBLIC may execute"
    owners = db.sql("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'hush_owner'")
    assert owners == [(False, False, False)]
    keeper = db.sql("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'hush_keykeeper'")
    assert keeper == [(False, True, False)]
    assert db.sql("SELECT count(*) FROM pg_auth_members WHERE roleid = 'hush_keykeeper'::regrole") == [(0,)]
    recorder = db.sql("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'hush_recorder'")
    assert recorder == [(False, False, False)]
    retention = db.sql("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'hush_retention'")
    assert retention == [(False, False, False)]
    # No one may become hush_retention: its DELETE is the one the audit trail lets through.
    assert db.sql("SELECT count(*) FROM pg_auth_members WHERE roleid = 'hush_retention'::regrole") == [(0,)]
    # hush_refresher reads connections of every tenant through its row policy: no one may become it,
    # and it can only lease (its UPDATE privilege covers the lease columns alone: holder label,
    # expiry, and the hash of each lease's token).
    refresher = db.sql("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'hush_refresher'")
    assert refresher == [(False, False, False)]
    assert db.sql("SELECT count(*) FROM pg_auth_members WHERE roleid = 'hush_refresher'::regrole") == [(0,)]
    assert db.sql("""SELECT string_agg(attname, ',' ORDER BY attname) FROM pg_attribute
                      WHERE attrelid = 'hush.oauth_connections'::regclass
                        AND has_column_privilege('hush_refresher', attrelid, attnum, 'UPDATE')""") == [
        ("lease_holder,lease_token_hash,lease_until",)]
    tables = ("secrets", "secret_versions", "audit_log", "oauth_providers", "oauth_pending", "oauth_connections",
              "oauth_events")
    forced = db.sql("""SELECT relname, relforcerowsecurity FROM pg_class
                        WHERE relnamespace = 'hush'::regnamespace AND relkind IN ('r', 'p') AND relname = ANY(%s)""",
                    [list(tables)])
    assert len(forced) == len(tables)
    for relname, force in forced:
        assert force, relname
    # No application role holds any privilege on any hush relation (every read is a step).
    app = ("hush_reader", "hush_writer", "hush_oauth_worker")
    assert db.sql("""SELECT c.relname, r.rolname FROM pg_class c CROSS JOIN unnest(%s::name[]) r(rolname)
                      WHERE c.relnamespace = 'hush'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S')
                        AND (has_table_privilege(r.rolname, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
                             OR c.relkind = 'S' AND has_sequence_privilege(r.rolname, c.oid, 'USAGE, SELECT, UPDATE'))""",
                  [list(app)]) == []
