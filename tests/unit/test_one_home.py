"""Each fact of the server's SQL is written in one place, and SQL is composed, never cut.

A fact written twice drifts: one copy gets the fix and the other keeps the hole. Each fact
below has a home (a Python constant or function that SQL files reach through a build
marker); a test fails when the text that defines it turns up anywhere else among the
PL/Python modules and the hand-written SQL (the frozen releases aside), and names every
place it found. The tree is read as it is when the test runs.

Not every fact can be told from its text: the acting role (CURRENT_USER) is written in
many statements that mean different things. The ones here can.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "plpython" / "hush_plpy"
SQL = ROOT / "sql"


def _sources() -> dict[str, str]:
    """Text of every PL/Python module and hand-written SQL file, by path from the root."""
    paths = sorted(MODULES.glob("*.py"))
    paths += sorted(p for p in SQL.rglob("*") if p.is_file() and p.name.endswith((".sql", ".sql.in"))
                    and "releases" not in p.relative_to(SQL).parts)
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in paths}


def _found(pattern: re.Pattern[str], sources: dict[str, str]) -> list[str]:
    return ["%s:%d" % (path, text.count("\n", 0, m.start()) + 1)
            for path, text in sources.items() for m in pattern.finditer(text)]


# (fact, the text that defines it, its one home)
FACTS = [
    ("the caller's session role (errors.CALLER)",
     r"""session_role['"]?\s*,\s*['"]?SESSION_USER|SESSION_USER\S*\s+AS\s+session_role""",
     "plpython/hush_plpy/errors.py"),
    ("the caller's application name (errors.CALLER)",
     r"""application_name['"]?\s*,\s*['"]?(?:pg_catalog\.)?current_setting\('application_name'\)"""
     r"""|current_setting\('application_name'\)\s+AS\s+application_name""",
     "plpython/hush_plpy/errors.py"),
    ("the grants that apply to a tenant: its own and '*' (access._tenant_grants)",
     r"""tenant_id\s+(?:OPERATOR\(pg_catalog\.=\)|=|\{EQ\})\s+ANY\s*\(\s*ARRAY\s*\[[^\]]*'\*'""",
     "plpython/hush_plpy/access.py"),
    ("a grant's role, held by the caller (access._grants)", r"\bto_regrole\s*\(", "plpython/hush_plpy/access.py"),
    ("whether a role is a superuser (access.superuser)", r"SELECT\s+r\.rolsuper\s+FROM\s+pg_catalog\.pg_roles",
     "plpython/hush_plpy/access.py"),
    ("the setting that names a step's tenant (privileged.TENANT_SETTING)", r"'hush\.tenant'",
     "plpython/hush_plpy/privileged.py"),
    ("the owner_steps row policy (access.OWNER_STEPS)",
     r"CURRENT_USER\s+OPERATOR\(pg_catalog\.=\)\s+ANY\s*\(\s*ARRAY\s*\[\s*'hush_owner'\s*,\s*'hush_retention'",
     "plpython/hush_plpy/access.py"),
    ("an audit partition's index by tenant and time (maintenance.SETUP_SQL)",
     r"CREATE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\S*_tenant_at\s+ON", "plpython/hush_plpy/maintenance.py"),
    ("an audit partition's index in seal order (maintenance.SETUP_SQL)",
     r"CREATE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\S*_position\s+ON", "plpython/hush_plpy/maintenance.py"),
    ("an audit partition's index of changes (changes.INDEX_SQL)",
     r"CREATE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\S*_changes\s+ON", "plpython/hush_plpy/changes.py"),
    ("an audit partition's TRUNCATE guard (maintenance.SETUP_SQL)",
     r"audit_log_no_truncate\s+BEFORE\s+TRUNCATE\s+ON\s+hush\.(?!audit_log\b)", "plpython/hush_plpy/maintenance.py"),
]


@pytest.mark.parametrize("fact,pattern,home", FACTS, ids=[f[0] for f in FACTS])
def test_a_fact_is_written_once_in_its_home(fact: str, pattern: str, home: str) -> None:
    places = _found(re.compile(pattern), _sources())
    assert [p.rsplit(":", 1)[0] for p in places] == [home], "%s, written at: %s" % (fact, ", ".join(places))


def test_one_statement_creates_the_owner_steps_policy() -> None:
    """Every tenant table gets the same policy from one statement (a loop over the tables)."""
    sql = {path: text for path, text in _sources().items() if path.startswith("sql/")}
    places = _found(re.compile(r"CREATE\s+POLICY\s+owner_steps\b"), sql)
    assert len(places) <= 1, "CREATE POLICY owner_steps, written at: " + ", ".join(places)


# SQL text rewritten or cut apart instead of composed from named pieces (a function of its
# parameters, a template's named slots): a placeholder renumbered by replace() or a
# statement split at a keyword breaks silently when the text it searches changes.
SURGERY = [
    ("a placeholder renumbered", r"""\.replace\(\s*['"]\$"""),
    # SQL text is held in upper-case constants and in variables named for it.
    ("a statement rewritten or cut by a str method",
     r"\b(?:[A-Z][A-Z0-9_]{2,}|\w*[Ss][Qq][Ll]\w*)\s*\.\s*(?:replace|split|rsplit|partition|rpartition|removeprefix"
     r"|removesuffix|strip|lstrip|rstrip|splitlines|find|index)\("),
    ("a slice of a statement", r"\b\w*SQL\w*\s*\[[^\]]*:"),
    ("a statement rewritten by a regular expression", r"\bre\.sub\([^)]*SQL"),
]


@pytest.mark.parametrize("what,pattern", SURGERY, ids=[s[0] for s in SURGERY])
def test_no_sql_is_assembled_by_string_surgery(what: str, pattern: str) -> None:
    modules = {path: text for path, text in _sources().items() if path.endswith(".py")}
    places = _found(re.compile(pattern), modules)
    assert not places, "%s at: %s" % (what, ", ".join(places))


def test_the_scans_see_the_tree() -> None:
    """A scan that reads nothing passes everything: the homes and the SQL parts are there."""
    sources = _sources()
    assert {home for _, _, home in FACTS} <= set(sources)
    assert any(path.startswith("sql/") for path in sources)
