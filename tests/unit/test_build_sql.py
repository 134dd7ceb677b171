"""The build's refusals, without a server: a shipped incremental file or a frozen release
file that changed, a new one numbered below it, a version released already, an inlined
call whose arguments do not fit its Python function, schema DDL in an idempotent file,
functions or markers in an incremental one; and how an update script is put together
(tools/build_sql.py, tools/sql_layout.py)."""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import build_sql  # noqa: E402
import sql_layout  # noqa: E402

VERSION = "0.5.0"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of sql/ and releases/ the layout reads instead of the real ones."""
    shutil.copytree(ROOT / "sql", tmp_path / "sql")
    shutil.copytree(ROOT / "releases", tmp_path / "releases")
    monkeypatch.setattr(sql_layout, "INCREMENTAL", tmp_path / "sql" / "incremental")
    monkeypatch.setattr(sql_layout, "IDEMPOTENT", tmp_path / "sql" / "idempotent")
    monkeypatch.setattr(sql_layout, "RELEASES", tmp_path / "releases")
    monkeypatch.setattr(sql_layout, "MANIFEST", tmp_path / "releases" / "manifest.json")
    monkeypatch.setattr(sql_layout, "ROOT", tmp_path)
    return tmp_path


def refused(tree: Path) -> str:
    with pytest.raises(SystemExit) as e:
        sql_layout.scripts(VERSION, build_sql.expand)
    return str(e.value)


def test_the_tree_builds_an_install_and_an_update_script(tree: Path) -> None:
    scripts = sql_layout.scripts(VERSION, build_sql.expand)
    assert sorted(scripts) == sorted(sql_layout.script_names(VERSION)) == [
        "hush--0.4.0--0.5.0.sql", "hush--0.5.0.sql"]
    install, update = scripts["hush--0.5.0.sql"], scripts["hush--0.4.0--0.5.0.sql"]
    assert "-- ===== sql/incremental/001-schema.sql =====" in install
    # 0.4.0 ran 001 (releases/manifest.json): its update runs the files after it, and then
    # exactly what an install runs.
    assert "001-schema.sql =====" not in update
    tail = install[install.index("-- ===== sql/incremental/002"):]
    assert update.endswith(tail)
    # The sweep comes before the privileges, whose GRANTs move every pg_proc row they name.
    assert install.index("-- ===== sweep") < install.index("-- ===== sql/idempotent/90_privileges.sql")
    # A later part runs right after the idempotent file it names.
    assert install.index("005-limits.sql, after idempotent/20_limits.sql") > install.index(
        "-- ===== sql/idempotent/20_limits.sql")
    assert install.index("005-limits.sql, after idempotent/20_limits.sql") < install.index(
        "-- ===== sql/idempotent/40_internal.sql")


def test_an_edited_shipped_incremental_file_is_refused(tree: Path) -> None:
    path = tree / "sql" / "incremental" / "001-schema.sql"
    path.write_text(path.read_text() + "\nALTER TABLE hush.tenants ADD COLUMN x integer;\n")
    message = refused(tree)
    assert "sql/incremental/001-schema.sql" in message and "0.4.0" in message and "new incremental file" in message


def test_an_edited_frozen_release_file_is_refused(tree: Path) -> None:
    path = tree / "releases" / "hush--0.2.0--0.3.0.sql"
    path.write_text(path.read_text().replace("hush", "hash", 1))
    assert "releases/hush--0.2.0--0.3.0.sql" in refused(tree)


def test_an_unlisted_or_missing_release_file_is_refused(tree: Path) -> None:
    (tree / "releases" / "hush--0.4.0--0.4.1.sql").write_text("-- nothing\n")
    assert "releases/hush--0.4.0--0.4.1.sql: not in releases/manifest.json" in refused(tree)
    (tree / "releases" / "hush--0.4.0--0.4.1.sql").unlink()
    (tree / "releases" / "hush--0.1.0.sql").unlink()
    assert "releases/hush--0.1.0.sql" in refused(tree)


@pytest.mark.parametrize("create", ["CREATE TABLE hush.x (a int);", "CREATE UNIQUE INDEX x ON hush.tenants (a);",
                                    "CREATE TYPE hush.x AS (a int);", "CREATE DOMAIN hush.x AS int;",
                                    "create schema x;"])
def test_schema_ddl_in_an_idempotent_file_is_refused(tree: Path, create: str) -> None:
    (tree / "sql" / "idempotent" / "45_extra.sql").write_text("-- one line\n" + create + "\n")
    message = refused(tree)
    assert "sql/idempotent/45_extra.sql" in message and "incremental" in message


def test_a_commented_create_table_is_not_refused(tree: Path) -> None:
    (tree / "sql" / "idempotent" / "45_extra.sql").write_text("-- CREATE TABLE is not allowed here\nSELECT 1;\n")
    sql_layout.scripts(VERSION, build_sql.expand)


def test_a_block_comment_is_not_read_as_code(tree: Path) -> None:
    (tree / "sql" / "idempotent" / "45_extra.sql").write_text("/* no\nCREATE TABLE here */ SELECT 1;\n")
    sql_layout.scripts(VERSION, build_sql.expand)


@pytest.mark.parametrize("create", ["CREATE OR REPLACE FUNCTION hush.x() RETURNS int LANGUAGE sql AS 'SELECT 1';",
                                    "SELECT 1; CREATE FUNCTION hush.x() RETURNS int LANGUAGE sql AS 'SELECT 1';",
                                    "/* why */ CREATE FUNCTION hush.x() RETURNS int LANGUAGE sql AS 'SELECT 1';",
                                    "CREATE AGGREGATE hush.x (int) (SFUNC = int4pl, STYPE = int);",
                                    "CREATE CONSTRAINT TRIGGER x AFTER INSERT ON hush.secrets "
                                    "FOR EACH ROW EXECUTE FUNCTION hush.f();",
                                    "CREATE POLICY x ON hush.secrets USING (true);",
                                    "CREATE VIEW hush.x AS SELECT 1;",
                                    "create or replace view hush.x as select 1;"])
def test_functions_policies_views_in_an_incremental_file_are_refused(tree: Path, create: str) -> None:
    (tree / "sql" / "incremental" / "006-extra.sql").write_text(create + "\n")
    message = refused(tree)
    assert "sql/incremental/006-extra.sql" in message and "incremental file (it runs once)" in message


@pytest.mark.parametrize("marker", ["{{owner_steps}}", "{{py: privileged.run('hush_owner', ticket, caller)}}",
                                    "{{ callable_capabilities: r.oid }}"])
def test_a_marker_in_an_incremental_file_is_refused(tree: Path, marker: str) -> None:
    """Expanded from today's Python, it would change what a shipped migration does."""
    (tree / "sql" / "incremental" / "006-extra.sql").write_text(f"SELECT '{marker}';\n")
    message = refused(tree)
    assert "sql/incremental/006-extra.sql" in message and marker in message and "no marker" in message


def test_an_incremental_file_runs_as_written(tree: Path) -> None:
    """No marker is expanded there: a two-dimensional array literal is just that."""
    text = "SELECT '{{1,2},{3,4}}'::int[];\n"
    (tree / "sql" / "incremental" / "006-extra.sql").write_text(text)
    install = sql_layout.scripts(VERSION, build_sql.expand)["hush--0.5.0.sql"]
    assert "-- ===== sql/incremental/006-extra.sql =====\n" + text in install
    for path in sql_layout.incremental_files():
        first, later = sql_layout.parts(path, path.read_text())
        assert first in install and all(part in install for _, part in later)


def test_an_incremental_file_numbered_below_a_shipped_one_is_refused(tree: Path) -> None:
    """It would run before 001 on a fresh install, and after it on an updated database."""
    (tree / "sql" / "incremental" / "000-early.sql").write_text("SELECT 1;\n")
    message = refused(tree)
    assert "sql/incremental/000-early.sql" in message and "numbered below a shipped file" in message


@pytest.mark.parametrize("version", ["0.4.0", "0.3.9"])
def test_a_released_version_is_not_built_again(tree: Path, version: str) -> None:
    with pytest.raises(SystemExit) as e:
        sql_layout.scripts(version, build_sql.expand)
    assert "0.4.0 is released" in str(e.value) and "hush.control" in str(e.value)


# (file, text, what the refusal says): a routine the sweep would drop however it is named, a
# policy the prelude could not drop by name, a view outside the rule whatever its case.
IDEMPOTENT_REFUSALS = [
    ("95_late.sql", "CREATE OR REPLACE FUNCTION hush.late() RETURNS int LANGUAGE sql AS 'SELECT 1';", "would be swept"),
    ("95_late.sql", "CREATE FUNCTION late() RETURNS int LANGUAGE sql AS 'SELECT 1';", "would be swept"),
    ("95_late.sql", "CREATE FUNCTION \"hush\".late() RETURNS int LANGUAGE sql AS 'SELECT 1';", "would be swept"),
    ("95_late.sql", "SELECT 1; create procedure hush.late() LANGUAGE sql AS 'SELECT 1';", "would be swept"),
    ("15_extra.sql", 'CREATE POLICY "Quoted" ON hush.tenants USING (true);', "a CREATE POLICY the build cannot name"),
    ("15_extra.sql", "CREATE POLICY extra ON tenants USING (true);", "a CREATE POLICY the build cannot name"),
    ("15_extra.sql", "DO $$ BEGIN EXECUTE 'CREATE POLICY extra ON hush.tenants USING (true)'; END $$;",
     "a CREATE POLICY the build cannot name"),
    ("45_view.sql", "CREATE VIEW hush.v AS SELECT 1 AS one;", "CREATE OR REPLACE VIEW hush.name"),
    ("45_view.sql", "CREATE OR REPLACE VIEW v AS SELECT 1 AS one;", "CREATE OR REPLACE VIEW hush.name"),
    ("45_view.sql", "SELECT 1; CREATE OR REPLACE VIEW hush.v AS SELECT 1 AS one;", "CREATE OR REPLACE VIEW hush.name"),
]


@pytest.mark.parametrize("name, text, says", IDEMPOTENT_REFUSALS)
def test_what_an_idempotent_file_may_not_write_is_refused(tree: Path, name: str, text: str, says: str) -> None:
    (tree / "sql" / "idempotent" / name).write_text(text + "\n")
    message = refused(tree)
    assert f"sql/idempotent/{name}: " in message and says in message


def test_the_prelude_drops_hushs_policies_by_name_and_no_other(tree: Path) -> None:
    """A policy a DBA added to a table of hush's is no business of an update: the prelude
    drops, by name, exactly the policies the idempotent part creates (the tenant policy on
    every tenant table among them), before it creates them again."""
    (tree / "sql" / "idempotent" / "15_extra.sql").write_text(
        "-- CREATE POLICY commented ON hush.tenants USING (true);\n"
        "CREATE POLICY extra ON hush.tenants USING (true);\n")
    install = sql_layout.scripts(VERSION, build_sql.expand)["hush--0.5.0.sql"]
    prelude = install[install.index("-- ===== prelude"):install.index("-- ===== sql/idempotent/")]
    drops = re.findall(r"^DROP POLICY IF EXISTS (\w+) ON (hush\.\w+);$", prelude, re.M)
    common = install[install.index("-- ===== sql/idempotent/"):]
    assert sorted(drops) == sorted(sql_layout.CREATES_POLICY.findall(sql_layout._code(common)))
    access = build_sql._module("access")
    assert {("owner_steps", f"hush.{t}") for t in access.TENANT_TABLES} | {("extra", "hush.tenants")} <= set(drops)
    assert "commented" not in prelude and "pg_policy" not in prelude


def test_an_unknown_anchor_is_refused(tree: Path) -> None:
    (tree / "sql" / "incremental" / "006-extra.sql").write_text("SELECT 1;\n-- hush:after idempotent/99_none.sql\n")
    assert "no such point" in refused(tree)


@pytest.mark.parametrize("keywords", ["CREATE OR REPLACE VIEW", "create or replace view"])
def test_a_replaceable_view_follows_the_rule(tree: Path, keywords: str) -> None:
    view = tree / "sql" / "idempotent" / "45_view.sql"
    view.write_text(keywords + " hush.v AS\n    SELECT 1 AS one;\n")
    install = sql_layout.scripts(VERSION, build_sql.expand)["hush--0.5.0.sql"]
    rule = install[install.index("-- ===== sql/idempotent/45_view.sql"):]
    assert "EXECUTE $view_sql$CREATE OR REPLACE VIEW hush.v AS\n    SELECT 1 AS one$view_sql$;" in rule
    assert "EXCEPTION WHEN invalid_table_definition" in rule
    assert "DROP VIEW hush.v;" in rule and "CASCADE" not in rule.split("$view$;")[0].replace("without CASCADE", "")
    assert "EXECUTE $view_sql$CREATE VIEW hush.v AS\n    SELECT 1 AS one$view_sql$;" in rule


@pytest.mark.parametrize("call, ok", [
    ("{{py: privileged.run('hush_owner', ticket, caller)}}", True),
    ("{{py: privileged.run('hush_owner', ticket)}}", False),
    ("{{py: privileged.run('hush_owner', ticket, caller, extra)}}", False),
    ("{{py: privileged.nothing_like_it(ticket)}}", False),
    ("{{py: no_such_module.run(ticket)}}", False),
])
def test_an_inlined_call_must_fit_its_python_function(call: str, ok: bool) -> None:
    text = f"CREATE FUNCTION hush.f() RETURNS void LANGUAGE plpython3u AS $py${call}$py$;"
    if ok:
        assert "privileged.run(plpy, 'hush_owner', ticket, caller)" in build_sql.expand(text, VERSION, "x.sql")
    else:
        with pytest.raises(SystemExit) as e:
            build_sql.expand(text, VERSION, "sql/idempotent/x.sql")
        assert "sql/idempotent/x.sql" in str(e.value) and call.split(":")[1].split("(")[0].strip() in str(e.value)


def test_every_inlined_call_of_the_tree_fits() -> None:
    for path in sorted((ROOT / "sql").rglob("*.sql")):
        for m in build_sql.CALL.finditer(path.read_text()):
            build_sql.check_call(m[1], m[2], m[3], str(path))


def test_an_inlined_function_takes_plpy_first(monkeypatch: Any, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def f(conn, a):\n    pass\n\n\ndef g():\n    pass\n")
    monkeypatch.setattr(build_sql, "PKG", tmp_path)
    for fn in ("f", "g"):
        with pytest.raises(SystemExit) as e:
            build_sql.check_call("m", fn, "a", "w")
        assert "first parameter is not plpy" in str(e.value)


def test_keyword_arguments_are_checked_by_name(monkeypatch: Any, tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("def f(plpy, a, b=1, *, c=2):\n    pass\n")
    monkeypatch.setattr(build_sql, "PKG", tmp_path)
    build_sql.check_call("m", "f", "x, c=3", "w")
    build_sql.check_call("m", "f", "x, b=3", "w")
    with pytest.raises(SystemExit):
        build_sql.check_call("m", "f", "x, d=3", "w")
    with pytest.raises(SystemExit):
        build_sql.check_call("m", "f", "", "w")
