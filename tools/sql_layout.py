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

# What each half of the layout may not hold (checked outside comments, at a line's start).
REFUSED_IDEMPOTENT = re.compile(
    r"^\s*CREATE\s+(?:UNLOGGED\s+|TEMP\s+|TEMPORARY\s+)?(TABLE|TYPE|DOMAIN|(?:UNIQUE\s+)?INDEX|SCHEMA|SEQUENCE)\b",
    re.M | re.I)
REFUSED_INCREMENTAL = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|POLICY|(?:OR\s+REPLACE\s+)?VIEW|TRIGGER|EVENT\s+TRIGGER)\b",
    re.M | re.I)
CREATES_ROUTINE = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s+hush\.", re.M | re.I)
PLAIN_VIEW = re.compile(r"^\s*CREATE\s+(?:TEMP\s+|TEMPORARY\s+|MATERIALIZED\s+|RECURSIVE\s+)*VIEW\b", re.M | re.I)
REPLACE_VIEW = re.compile(r"^CREATE OR REPLACE VIEW\s+(hush\.\w+)\b(.*?;)[ \t]*$", re.M | re.S)

PRELUDE = """-- Policies cannot be replaced in place: every one on hush's tables goes, and the
-- idempotent part below makes them again. And the routines in schema hush are noted, each
-- with the place of its pg_proc row, which any change moves: the sweep below drops those
-- of the extension that nothing in this script wrote again.
DO $prelude$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT pol.polname, c.oid::pg_catalog.regclass AS tab FROM pg_catalog.pg_policy pol
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pol.polrelid
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
              WHERE n.nspname OPERATOR(pg_catalog.=) ANY (ARRAY['hush', 'hush_private'])
    LOOP
        EXECUTE pg_catalog.format('DROP POLICY %I ON %s', p.polname, p.tab);
    END LOOP;
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
-- user's that depends on one stops the update. (The setting goes when the script ends.)
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
    """The text without -- comments (a marker of the layout is one; dollar-quoted bodies keep theirs)."""
    return re.sub(r"--[^\n]*", "", text)


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
    if PLAIN_VIEW.search(code):
        raise SystemExit(f"{where}: CREATE VIEW: write CREATE OR REPLACE VIEW hush.name AS ...; "
                         "(an update replaces it, or drops it without CASCADE when its columns change)")
    if after_sweep and CREATES_ROUTINE.search(code):
        raise SystemExit(f"{where}: a routine created at or after {SWEEP_BEFORE} would be swept: "
                         "create it in an earlier idempotent file")


def check_incremental(path: Path, text: str) -> None:
    m = REFUSED_INCREMENTAL.search(_code(text))
    if m:
        raise SystemExit(f"sql/incremental/{path.name}: CREATE {m[1].upper()} in an incremental file (it runs "
                         "once): functions, policies, views and triggers are sql/idempotent/'s")


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
    """What follows the header: the incremental files in run, then the common part."""
    out: list[str] = []
    anchored: dict[str, list[str]] = {}
    for path in run:
        text = path.read_text()
        check_incremental(path, text)
        first, later = parts(path, text)
        out.append(_section(f"sql/incremental/{path.name}", expand(first, version, f"sql/incremental/{path.name}")))
        for target, part in later:
            anchored.setdefault(target, []).append(
                _section(f"sql/incremental/{path.name}, after {target}",
                         expand(part, version, f"sql/incremental/{path.name}")))
    out.append(_section("prelude (tools/sql_layout.py)", PRELUDE))
    swept = False
    for path in idempotent_files():
        rel = path.relative_to(IDEMPOTENT).as_posix()
        if not swept and rel >= SWEEP_BEFORE:
            out.append(_section("sweep (tools/sql_layout.py)", SWEEP))
            swept = True
        text = path.read_text()
        check_idempotent(path, text, swept)
        out.append(_section(f"sql/idempotent/{rel}", expand(views(text), version, f"sql/idempotent/{rel}")))
        out.extend(anchored.pop("idempotent/" + rel, []))
    if not swept:
        out.append(_section("sweep (tools/sql_layout.py)", SWEEP))
    out.extend(anchored.pop("idempotent", []))
    return "".join(out)


def scripts(version: str, expand: Expand) -> dict[str, str]:
    """{file name: text} of the install script and every update script of version."""
    data = manifest()
    files = incremental_files()
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
