"""Assemble the extension's scripts from sql/ and plpython/.

Layout, by lifecycle:
  sql/incremental/NNN-name.sql  DDL that runs exactly once per database, in number order:
                       001-schema.sql is the schema of 0.4.0 (squashed), each later file a
                       change of schema or data, with a comment saying what and why. A file
                       that shipped in a release is frozen (the build refuses an edit): a
                       change is a new file, numbered above every shipped one (the build
                       refuses one below: a fresh install would run it before them, an
                       updated database after). Composite types change only by ALTER TYPE.
                       No markers (below): the text is what runs.
                       A line `-- hush:after idempotent` (or `-- hush:after
                       idempotent/<file>`) ends the file's first part: what follows runs
                       after the idempotent part (or right after that file), on the
                       databases this file runs on; for a step that needs this version's
                       functions or privileges, or a domain whose check calls a function.
                       No CREATE FUNCTION, PROCEDURE, AGGREGATE, POLICY, VIEW or TRIGGER
                       here. A policy hush stops creating is dropped here, by name.
  sql/idempotent/**.sql  what every install and every update re-creates, in path order:
                       roles, policies, functions, the DROP guard, triggers, the audit
                       partition set-up, privileges. Each file must be safe to run on a
                       database that has the current schema; no CREATE TABLE, TYPE, DOMAIN,
                       INDEX, SCHEMA or SEQUENCE here; no routine from 90_privileges.sql
                       on (the sweep runs before it). A view is CREATE OR REPLACE VIEW,
                       replaced in place, or dropped without CASCADE and made again when
                       its columns change (a view of the user's on it stops the update).
  releases/            the frozen scripts of released versions and manifest.json: what each
                       release shipped (scripts and incremental files, with sha256), checked
                       on every build. `tools/release.py VERSION` freezes a version there;
                       the build refuses to build a version not above the newest release.

The scripts written (sql_layout.py):
  install  build/hush--V.sql: every incremental file (first parts), then the prelude, the
           idempotent files with the later parts anchored to them, the sweep, the rest;
  update   build/hush--R--V.sql for each release R whose manifest entry records its
           incremental files (0.4.0 onward): the incremental files R did not ship, then the
           same as an install. Which files a database has run is derived from its version
           (ALTER EXTENSION names it) through the manifest; no table records it. Earlier
           releases reach 0.4.0 through their frozen update scripts (PostgreSQL chains them).
  prelude  drops, by name, each policy the idempotent part creates (it makes them again;
           a policy a DBA added stays), and notes where each routine's pg_proc row is;
  sweep    drops every routine of the extension in schema hush whose row has not moved
           since, i.e. that this script did not (re)create: a signature that left the
           surface goes (CREATE OR REPLACE with changed arguments would leave an ambiguous
           overload, 42725). Not told by the writing transaction: an update from 0.1.0 runs
           every script of the chain in one. It runs before 90_privileges.sql, since GRANT
           and REVOKE rewrite every row they name. A function whose result type changes
           needs a DROP FUNCTION IF EXISTS in an incremental file.

Markers, expanded wherever they appear in sql/idempotent/ (the build refuses one in
sql/incremental/: a shipped migration must keep doing what it did, whatever the Python
a marker expands from becomes; write the text out there):
  {{python_modules}}   the body of hush._load_python(): every module of
                       plpython/hush_plpy/ embedded as a string literal, so the
                       database's extension version and its Python code cannot drift;
  {{py: mod.fn(args)}} the body of an API function: fetch the loaded package
                       from GD (loading it once per backend) and call mod.fn(plpy, args);
                       the argument count is checked against mod.fn's parameters;
  {{owner_steps}}      the row policy of hush's privileged steps, access.OWNER_STEPS;
  {{tenant_policies}}  row-level security and the policy owner_steps on each table of
                       access.TENANT_TABLES;
  {{audit_partition_setup}}  maintenance.SETUP_SQL applied to every partition of hush.audit_log;
  {{caller_json}}      who acts, as json_build_object arguments: errors.CALLER_JSON (the
                       keys and expressions of the failure log line's caller);
  {{superuser: role}}  whether the role (an SQL expression) is a superuser: access.superuser.
"""
from __future__ import annotations

import argparse
import ast
import base64
import functools
import importlib
import marshal
import re
import sys
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "plpython" / "hush_plpy"
# Every module of the package (checked against the directory).
MODULES = ["errors", "validate", "privileged", "keyring", "crypto", "access", "wire", "recorder", "recheck", "audit",
           "secrets", "secret_writes", "secret_removal", "secret_listing", "scope", "bulk", "admin", "grants", "keys",
           "seal", "maintenance", "oauth", "oauth_base", "oauth_providers", "oauth_authorize", "oauth_tokens",
           "oauth_refresh", "oauth_worker", "oauth_connections", "oauth_lease",
           "oauth_response", "egress", "oauth_batch", "oauth_grants", "retention", "changes", "lifecycle", "upkeep"]

CALL = re.compile(r"\{\{py:\s*(\w+)\.(\w+)\((.*?)\)\s*\}\}", re.S)
SUPERUSER = re.compile(r"\{\{superuser:\s*(\w+)\s*\}\}")
PLAIN = ("{{python_modules}}", "{{owner_steps}}", "{{tenant_policies}}", "{{audit_partition_setup}}",
         "{{caller_json}}")
TENANT_POLICY = """ALTER TABLE hush.{table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE hush.{table} FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_steps ON hush.{table} USING ({owner_steps}) WITH CHECK ({owner_steps});
"""
# The partitions the set-up applies to: hush names them (audit_log_default, audit_log_YYYY_MM).
PARTITIONS = ("SELECT c.relname FROM pg_catalog.pg_inherits i"
              " JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid"
              " WHERE i.inhparent OPERATOR(pg_catalog.=) 'hush.audit_log'::pg_catalog.regclass"
              " AND c.relnamespace OPERATOR(pg_catalog.=) 'hush'::pg_catalog.regnamespace ORDER BY c.relname")


def gd_key(version: str) -> str:
    return f"hush_plpy {version}"


def _packed(data: bytes) -> str:
    """zlib + base64: the loader's own text stays small, and Python parses it on every new connection."""
    return base64.b64encode(zlib.compress(data, 9)).decode()


# Once per version: the install script and every update script embed the same text.
@functools.lru_cache(maxsize=None)
def loader_body(version: str) -> str:
    """The package, registered so that each module is imported on first use: a new
    connection's first call pays only for the modules it needs. Each module comes
    compiled by the build's Python (marshal), used when the server's Python has the
    same bytecode tag, else compiled from its source."""
    found = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")
    if sorted(MODULES) != found:
        raise SystemExit(f"tools/build_sql.py MODULES {MODULES} does not match plpython/hush_plpy: {found}")
    sources, compiled = [], []
    for m in MODULES:
        src = (PKG / (m + ".py")).read_text()
        code = compile(src, f"plpython/hush_plpy/{m}.py", "exec", dont_inherit=True)
        sources.append(f"    {m!r}: {_packed(src.encode())!r},")
        compiled.append(f"    {m!r}: {_packed(marshal.dumps(code))!r},")
    pkg = f"hush_plpy_{version.replace('.', '_')}"
    nl = "\n"
    return f'''
import binascii, importlib, marshal, sys, types, zlib
from importlib.machinery import ModuleSpec
PKG = {pkg!r}
SOURCES = {{
{nl.join(sources)}
}}
CODE_TAG = {sys.implementation.cache_tag!r}
CODE = {{
{nl.join(compiled)}
}}


class Finder:
    """Imports {pkg}.<module> from SOURCES, on first use."""
    package = PKG

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname.startswith(PKG + ".") and fullname[len(PKG) + 1:] in SOURCES:
            return ModuleSpec(fullname, Finder)
        return None

    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module):
        name = module.__name__[len(PKG) + 1:]
        if sys.implementation.cache_tag == CODE_TAG:
            code = marshal.loads(zlib.decompress(binascii.a2b_base64(CODE[name])))
        else:
            source = zlib.decompress(binascii.a2b_base64(SOURCES[name])).decode()
            code = compile(source, "plpython/hush_plpy/" + name + ".py", "exec")
        exec(code, module.__dict__)


def submodule(name):
    if name in SOURCES:
        return importlib.import_module(PKG + "." + name)
    raise AttributeError(name)


# A fresh package each time this runs (an update, or a second call): the old modules and finder go.
for old in [m for m in sys.modules if m == PKG or m.startswith(PKG + ".")]:
    del sys.modules[old]
sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "package", None) != PKG]
sys.meta_path.insert(0, Finder)
pkg = types.ModuleType(PKG)
pkg.__path__ = []
pkg.__package__ = PKG
pkg.__getattr__ = submodule
sys.modules[PKG] = pkg
GD[{gd_key(version)!r}] = pkg
'''


def _package(version: str) -> str:
    key = gd_key(version)
    return f'''
pkg = GD.get({key!r})
if pkg is None:
    plpy.execute("SELECT hush._load_python()")
    pkg = GD[{key!r}]'''


def call_body(version: str, mod: str, fn: str, args: str) -> str:
    return f"{_package(version)}\nreturn pkg.{mod}.{fn}(plpy, {args})\n"


def partition_setup(version: str) -> str:
    """maintenance.SETUP_SQL, the very list create_audit_partitions() applies, run on every partition."""
    return (f"DO LANGUAGE plpython3u $setup${_package(version)}\n"
            f"for p in plpy.execute({PARTITIONS!r}):\n"
            "    for sql in pkg.maintenance.SETUP_SQL:\n"
            "        plpy.execute(sql.format(name=p['relname']))\n$setup$;")


def imported(path: Path, module: str) -> Any:
    """`module` imported from the folder `path` as a plain module (tools read hush_plpy's
    constants, and the client's error classes, with no server and no virtualenv)."""
    sys.path.insert(0, str(path))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.pop(0)


def _module(name: str) -> Any:
    """A module of plpython/hush_plpy imported here: those read for SQL text need no server."""
    return imported(PKG.parent, "hush_plpy." + name)


def _split_args(args: str) -> list[str]:
    """The top-level arguments of a call's text (commas inside brackets or strings do not split)."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in args:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _definition(mod: str, fn: str, where: str) -> ast.FunctionDef:
    """def fn in plpython/hush_plpy/mod.py, or in the module it imports fn from (from .x import fn)."""
    path = PKG / f"{mod}.py"
    if not path.exists():
        raise SystemExit(f"{where}: {{{{py: {mod}.{fn}(...)}}}}: no module plpython/hush_plpy/{mod}.py")
    for node in reversed(ast.parse(path.read_text()).body):
        if isinstance(node, ast.FunctionDef) and node.name == fn:
            return node
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == fn:
                    return _definition(node.module, alias.name, where)
    raise SystemExit(f"{where}: {{{{py: {mod}.{fn}(...)}}}}: plpython/hush_plpy/{mod}.py has no def {fn}")


def check_call(mod: str, fn: str, args: str, where: str) -> None:
    """Refuse {{py: mod.fn(args)}} unless mod.fn takes plpy and then these arguments."""
    a = _definition(mod, fn, where).args
    params = [p.arg for p in a.posonlyargs + a.args]
    if params[:1] != ["plpy"]:
        raise SystemExit(f"{where}: {{{{py: {mod}.{fn}(...)}}}}: plpython/hush_plpy/{mod}.py defines "
                         f"{fn}({', '.join(params)}), whose first parameter is not plpy")
    given = _split_args(args)
    positional = [g for g in given if not re.match(r"^\w+\s*=[^=]", g)]
    keywords = [g.split("=", 1)[0].strip() for g in given if g not in positional]
    required = len(params) - len(a.defaults)
    n = 1 + len(positional)  # plpy first
    kw_names = set(params[n:]) | {k.arg for k in a.kwonlyargs}
    unknown = [k for k in keywords if k not in kw_names and a.kwarg is None]
    missing = [p for p in params[n:required] if p not in keywords]
    missing += [k.arg for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is None and k.arg not in keywords]
    if (n > len(params) and a.vararg is None) or missing or unknown:
        raise SystemExit(f"{where}: {{{{py: {mod}.{fn}({args.strip()})}}}} passes plpy and {len(given)} "
                         f"argument(s), but plpython/hush_plpy/{mod}.py defines {fn}({', '.join(params)})")


def expand(text: str, version: str, where: str) -> str:
    """Expand the markers of one SQL part for the given extension version."""
    leftover = CALL.sub("", SUPERUSER.sub("", text))
    for marker in PLAIN:
        leftover = leftover.replace(marker, "")
    if "{{" in leftover:
        raise SystemExit(f"{where}: unknown marker")
    for m in CALL.finditer(text):
        check_call(m[1], m[2], m[3], where)
    if "{{tenant_policies}}" in text:
        access = _module("access")
        text = text.replace("{{tenant_policies}}", "".join(
            TENANT_POLICY.format(table=t, owner_steps="{{owner_steps}}") for t in access.TENANT_TABLES))
    if "{{owner_steps}}" in text:
        text = text.replace("{{owner_steps}}", _module("access").OWNER_STEPS)
    if "{{caller_json}}" in text:
        text = text.replace("{{caller_json}}", _module("errors").CALLER_JSON)
    text = SUPERUSER.sub(lambda m: _module("access").superuser(m[1]), text)
    text = text.replace("{{audit_partition_setup}}", partition_setup(version))
    text = text.replace("{{python_modules}}", loader_body(version))
    return CALL.sub(lambda m: call_body(version, m[1], m[2], m[3]), text)


def main() -> None:
    import sql_layout
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", required=True, help="the version to build (hush.control's default_version)")
    ap.add_argument("--outdir", type=Path, help="write the install script and every update script here")
    ap.add_argument("--list", action="store_true", help="print the names of the scripts --outdir writes")
    args = ap.parse_args()
    if args.list:
        print(" ".join(sql_layout.script_names(args.version)))
    if args.outdir:
        scripts = sql_layout.scripts(args.version, expand)
        args.outdir.mkdir(parents=True, exist_ok=True)
        for name, text in scripts.items():
            (args.outdir / name).write_text(text)


if __name__ == "__main__":
    main()
