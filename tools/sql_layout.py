"""The scripts of one version, from sql/incremental/, sql/idempotent/ and releases/
(the layout and the order: tools/build_sql.py's docstring). Also checks what the
layout forbids, and that no shipped file changed."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
INCREMENTAL = ROOT / "sql" / "incremental"
IDEMPOTENT = ROOT / "sql" / "idempotent"
RELEASES = ROOT / "releases"
MANIFEST = RELEASES / "manifest.json"
# The sweep runs before this file: its GRANTs and REVOKEs rewrite the pg_proc rows they name.
SWEEP_BEFORE = "90_privileges.sql"
INCREMENTAL_NAME = re.compile(r"\d{3}-[a-z0-9_-]+\.sql")
AFTER = re.compile(r"^-- hush:after (\S+)[ \t]*$", re.M)
Expand = Callable[[str, str, str], str]

# What each half of the layout may not hold, checked outside comments where a statement
# starts: at a line's start or after a semicolon.
START = r"(?:^|;)\s*"
REFUSED_IDEMPOTENT = re.compile(
    START + r"CREATE\s+(?:UNLOGGED\s+|TEMP\s+|TEMPORARY\s+)?(TABLE|TYPE|DOMAIN|(?:UNIQUE\s+)?INDEX|SCHEMA|SEQUENCE)\b",
    re.M | re.I)
VIEW_KIND = r"(?:(?:TEMP|TEMPORARY|RECURSIVE)\s+)*VIEW"
REFUSED_INCREMENTAL = re.compile(
    START + r"CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|AGGREGATE|POLICY|" + VIEW_KIND
    + r"|(?:CONSTRAINT\s+)?TRIGGER|EVENT\s+TRIGGER)\b", re.M | re.I)
# In an incremental file: its text runs as it shipped, never as today's Python would expand it.
MARKER = re.compile(r"\{\{\s*\w+\s*(?::[^{}]*)?\}\}")
CREATES_ROUTINE = re.compile(START + r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE|AGGREGATE)\b", re.M | re.I)
PLAIN_VIEW = re.compile(START + r"CREATE\s+(?:MATERIALIZED\s+)?" + VIEW_KIND + r"\b", re.M | re.I)
ANY_REPLACE_VIEW = re.compile(START + r"CREATE\s+OR\s+REPLACE\s+" + VIEW_KIND + r"\b", re.M | re.I)
REPLACE_VIEW = re.compile(r"^CREATE\s+OR\s+REPLACE\s+VIEW\s+(hush\.\w+)\b(.*?;)[ \t]*$", re.M | re.S | re.I)
# The policies an update drops and makes again: only those the idempotent part creates, by
# name, so a policy a DBA added to a table of hush's stays in force.
ANY_POLICY = re.compile(r"\bCREATE\s+POLICY\b", re.I)
CREATES_POLICY = re.compile(START + r"CREATE\s+POLICY\s+(\w+)\s+ON\s+((?:hush|hush_private)\.\w+)\b", re.M | re.I)

PRELUDE = """-- Policies cannot be replaced in place: each one the idempotent part below creates goes
-- first, by name, and is made again there. Only those: a policy a DBA added to a table of
-- hush's stays, and so does what it restricts. (One that hush no longer creates is dropped
-- by name in the incremental file of the version that stopped.)
{drops}
-- And the routines in schema hush are noted, each with the place of its pg_proc row,
-- which any change moves: the sweep below drops those of the extension that nothing in
-- this script wrote again.
DO $prelude$
BEGIN
    PERFORM pg_catalog.set_config('hush.routines_before', COALESCE(pg_catalog.string_agg(
                r.oid::pg_catalog.text OPERATOR(pg_catalog.||) r.ctid::pg_catalog.text, ' '), ''), true)
       FROM pg_catalog.pg_proc r WHERE r.pronamespace OPERATOR(pg_catalog.=) 'hush'::pg_catalog.regnamespace;
END
$prelude$;
"""
SWEEP = """-- The routines of the extension in schema hush that this script did not write again: their
-- signatures left the surface, and a CREATE OR REPLACE with other arguments made a new
-- overload beside each. Told apart by the place of the pg_proc row, unmoved since the
-- prelude (before any GRANT below moves it; a transaction is no guide, for an update from
-- an older release runs every script of the chain in one). No CASCADE: an object of the
-- user's that depends on one stops the update. (set_config(..., true): the setting lasts
-- until the transaction ends.)
DO $sweep$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid::pg_catalog.regprocedure AS sig FROM pg_catalog.pg_proc p
               JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                    AND d.objid OPERATOR(pg_catalog.=) p.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'
                    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
               JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
                    AND e.extname OPERATOR(pg_catalog.=) 'hush'
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'hush'::pg_catalog.regnamespace
                AND p.oid::pg_catalog.text OPERATOR(pg_catalog.||) p.ctid::pg_catalog.text OPERATOR(pg_catalog.=) ANY (
                    pg_catalog.string_to_array(pg_catalog.current_setting('hush.routines_before'), ' '))
    LOOP
        EXECUTE pg_catalog.format('DROP ROUTINE %s', f.sig);
    END LOOP;
END
$sweep$;
"""
VIEW_RULE = """DO $view$
BEGIN
    EXECUTE {replace};
EXCEPTION WHEN invalid_table_definition THEN
    -- Its columns changed, which no view can do in place: dropped without CASCADE, so a
    -- view of the user's on it stops the update instead of going with it.
    DROP VIEW {name};
    EXECUTE {create};
END
$view$;"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def _code(text: str) -> str:
    """The text the checks read: without /* */ and -- comments (a line of the layout,
    `-- hush:after`, is one). Taken out everywhere, inside dollar-quoted bodies and string
    literals too, which can only hide text from a check. A block comment keeps its line
    breaks, so each line still starts where it did."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m[0].count("\n") or " ", text, flags=re.S)
    return re.sub(r"--[^\n]*", "", text)


def prelude(policies: list[tuple[str, str]]) -> str:
    return PRELUDE.format(drops="".join(f"DROP POLICY IF EXISTS {name} ON {table};\n" for name, table in policies))


def incremental_files() -> list[Path]:
    files = sorted(INCREMENTAL.glob("*"))
    for f in files:
        if not INCREMENTAL_NAME.fullmatch(f.name):
            raise SystemExit(f"sql/incremental/{f.name}: not named NNN-name.sql")
    numbers = [f.name[:3] for f in files]
    if len(set(numbers)) != len(numbers):
        raise SystemExit(f"sql/incremental/: two files share a number: {numbers}")
    return files


def idempotent_files() -> list[Path]:
    return sorted(IDEMPOTENT.rglob("*.sql"), key=lambda p: p.relative_to(IDEMPOTENT).as_posix())


def check_idempotent(path: Path, text: str, after_sweep: bool) -> None:
    code, where = _code(text), f"sql/idempotent/{path.relative_to(IDEMPOTENT).as_posix()}"
    m = REFUSED_IDEMPOTENT.search(code)
    if m:
        raise SystemExit(f"{where}: CREATE {m[1].upper()} in an idempotent file (it runs on every update): "
                         "put it in a new sql/incremental/ file")
    if PLAIN_VIEW.search(code) or len(ANY_REPLACE_VIEW.findall(code)) != len(REPLACE_VIEW.findall(code)):
        raise SystemExit(f"{where}: a view: write CREATE OR REPLACE VIEW hush.name AS ...; at a line's start, "
                         "the ; ending a line (an update replaces it, or drops it without CASCADE when its "
                         "columns change)")
    if after_sweep and CREATES_ROUTINE.search(code):
        raise SystemExit(f"{where}: a routine created at or after {SWEEP_BEFORE} would be swept: "
                         "create it in an earlier idempotent file")


def created_policies(text: str, where: str) -> list[tuple[str, str]]:
    """(name, table) of each policy an idempotent file creates (its text expanded)."""
    code = _code(text)
    found = [(m[1], m[2]) for m in CREATES_POLICY.finditer(code)]
    if len(found) != len(ANY_POLICY.findall(code)):
        raise SystemExit(f"{where}: a CREATE POLICY the build cannot name: write CREATE POLICY name ON "
                         "hush.table, unquoted, where a statement starts (an update drops it by that name)")
    return found


def check_incremental(path: Path, text: str) -> None:
    m = REFUSED_INCREMENTAL.search(_code(text))
    if m:
        raise SystemExit(f"sql/incremental/{path.name}: CREATE {' '.join(m[1].upper().split())} in an incremental "
                         "file (it runs once): functions, aggregates, policies, views and triggers are "
                         "sql/idempotent/'s")
    m = MARKER.search(text)
    if m:
        raise SystemExit(f"sql/incremental/{path.name}: {m[0]}: no marker in an incremental file, whose text "
                         "must do what it did when it shipped, whatever the Python it expands from says later: "
                         "write out the text it stands for")


def views(text: str) -> str:
    """Each CREATE OR REPLACE VIEW of an idempotent file, under the rule of the docstring."""
    def rule(m: re.Match[str]) -> str:
        body = m[1] + m[2][:-1]
        if "$view_sql$" in body:
            raise SystemExit(f"view {m[1]}: its text may not hold $view_sql$")
        quoted = "$view_sql$CREATE OR REPLACE VIEW %s$view_sql$" % body
        return VIEW_RULE.format(name=m[1], replace=quoted,
                                create=quoted.replace("CREATE OR REPLACE VIEW", "CREATE VIEW", 1))
    return REPLACE_VIEW.sub(rule, text)


def parts(path: Path, text: str) -> tuple[str, list[tuple[str, str]]]:
    """An incremental file's first part, and its later parts with the point each runs after."""
    pieces = AFTER.split(text)
    later = [(pieces[i], pieces[i + 1]) for i in range(1, len(pieces), 2)]
    known = {"idempotent"} | {"idempotent/" + p.relative_to(IDEMPOTENT).as_posix() for p in idempotent_files()}
    for target, _ in later:
        if target not in known:
            raise SystemExit(f"sql/incremental/{path.name}: -- hush:after {target}: no such point "
                             "(idempotent, or idempotent/<file>)")
    return pieces[0], later


def manifest() -> dict[str, dict[str, dict[str, str]]]:
    """releases/manifest.json, checked: every frozen script is there, unchanged, and listed;
    every incremental file a release shipped is unchanged."""
    data: dict[str, dict[str, dict[str, str]]] = json.loads(MANIFEST.read_text())
    listed: dict[str, str] = {}
    for release, entry in data.items():
        for name, digest in entry["scripts"].items():
            path = RELEASES / name
            if not path.exists():
                raise SystemExit(f"releases/{name}: shipped in {release} (releases/manifest.json) but missing")
            if sha256(path) != digest:
                raise SystemExit(f"releases/{name}: shipped in {release} and frozen, but its sha256 is now "
                                 f"{sha256(path)}, not {digest}: restore it")
            listed[name] = release
        for name, digest in entry["incremental"].items():
            path = INCREMENTAL / name
            if not path.exists():
                raise SystemExit(f"sql/incremental/{name}: shipped in {release} but missing")
            if sha256(path) != digest:
                raise SystemExit(f"sql/incremental/{name}: shipped in {release} and frozen, but changed "
                                 f"(sha256 {sha256(path)}, shipped {digest}): restore it and put the change "
                                 "in a new incremental file")
    for path in RELEASES.glob("*.sql"):
        if path.name not in listed:
            raise SystemExit(f"releases/{path.name}: not in releases/manifest.json")
    return data


def update_sources(version: str, data: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    """The releases an update script to version is generated from."""
    return sorted((r for r, e in data.items() if e["incremental"] and version_key(r) < version_key(version)),
                  key=version_key)


def script_names(version: str) -> list[str]:
    data = json.loads(MANIFEST.read_text())
    return [f"hush--{version}.sql"] + [f"hush--{r}--{version}.sql" for r in update_sources(version, data)]


def _section(title: str, text: str) -> str:
    return f"\n-- ===== {title} =====\n{text}"


def body(version: str, run: list[Path], expand: Expand) -> str:
    """What follows the header: the incremental files in run, then the common part (the
    prelude, the idempotent files with the later parts anchored to them, the sweep)."""
    out: list[str] = []
    anchored: dict[str, list[str]] = {}
    for path in run:
        text = path.read_text()
        check_incremental(path, text)
        first, later = parts(path, text)
        out.append(_section(f"sql/incremental/{path.name}", first))
        for target, part in later:
            anchored.setdefault(target, []).append(_section(f"sql/incremental/{path.name}, after {target}", part))
    common: list[str] = []
    policies: list[tuple[str, str]] = []
    swept = False
    for path in idempotent_files():
        rel = path.relative_to(IDEMPOTENT).as_posix()
        if not swept and rel >= SWEEP_BEFORE:
            common.append(_section("sweep (tools/sql_layout.py)", SWEEP))
            swept = True
        text = path.read_text()
        check_idempotent(path, text, swept)
        expanded = expand(views(text), version, f"sql/idempotent/{rel}")
        policies += created_policies(expanded, f"sql/idempotent/{rel}")
        common.append(_section(f"sql/idempotent/{rel}", expanded))
        common.extend(anchored.pop("idempotent/" + rel, []))
    if not swept:
        common.append(_section("sweep (tools/sql_layout.py)", SWEEP))
    common.extend(anchored.pop("idempotent", []))
    return "".join(out + [_section("prelude (tools/sql_layout.py)", prelude(policies))] + common)


def scripts(version: str, expand: Expand) -> dict[str, str]:
    """{file name: text} of the install script and every update script of version."""
    data = manifest()
    newest = max(data, key=version_key)
    if version_key(version) <= version_key(newest):
        raise SystemExit(f"{version}: {newest} is released (releases/manifest.json): raise default_version in "
                         "hush.control above it")
    files = incremental_files()
    last = max((name for entry in data.values() for name in entry["incremental"]), default="")
    early = [f.name for f in files
             if f.name[:3] < last[:3] and not any(f.name in e["incremental"] for e in data.values())]
    if early:
        raise SystemExit(f"sql/incremental/{early[0]}: numbered below a shipped file ({last}): it would run "
                         "before it on a fresh install, after it on an updated database; number it above")
    out = {f"hush--{version}.sql": (
        f"-- hush {version}: generated by tools/build_sql.py from sql/ and plpython/; do not edit.\n"
        "\\echo Use \"CREATE EXTENSION hush CASCADE\" to load this file. \\quit\n" + body(version, files, expand))}
    for release in update_sources(version, data):
        shipped = data[release]["incremental"]
        out[f"hush--{release}--{version}.sql"] = (
            f"-- hush {release} -> {version}: generated by tools/build_sql.py; do not edit. A {release} database "
            f"has run {', '.join(sorted(shipped))}.\n"
            "\\echo Use \"ALTER EXTENSION hush UPDATE\" to load this file. \\quit\n"
            + body(version, [f for f in files if f.name not in shipped], expand))
    return out
