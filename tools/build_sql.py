"""Assemble the versioned extension script from sql/ and plpython/.

The SQL parts are concatenated in file-name order (sql/00_*.sql, sql/10_*.sql,
sql/50_functions/*.sql, sql/90_*.sql); sql/releases/ holds the frozen install
scripts of earlier versions and sql/updates/ the update scripts' sources
(hush--A--B.sql.in, built with --update). These markers are expanded:
  {{include: path}}    the text of sql/path, its markers expanded (update scripts);

  {{python_modules}}   the body of hush._load_python(): every module of
                       plpython/hush_plpy/ embedded as a string literal, so the
                       database's extension version and its Python code cannot drift;
  {{py: mod.fn(args)}} the body of an API function: fetch the loaded package
                       from GD (loading it once per backend) and call mod.fn;
  {{owner_steps}}      the row policy of hush's privileged steps, written once
                       in plpython/hush_plpy/access.py;
  {{capabilities}}     the capabilities a grant can hold, as an array literal's
                       body ({read,list,...}), from access.CAPABILITIES;
  {{callable_capabilities: role}}  the text[] of the capabilities whose functions
                       the role (an SQL expression: name or oid) may call now,
                       from grants.FUNCTIONS (grants.callable_array);
  {{is_change}}        the predicate of the audit partitions' change index,
                       changes.IS_CHANGE (the condition hush.changes() reads with).
"""
from __future__ import annotations

import argparse
import base64
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
           "seal", "maintenance", "oauth", "oauth_lease",
           "oauth_response", "egress", "oauth_batch", "oauth_grants", "retention", "changes", "lifecycle", "upkeep"]

CALL = re.compile(r"\{\{py:\s*(\w+)\.(\w+)\((.*?)\)\s*\}\}", re.S)


def gd_key(version: str) -> str:
    return f"hush_plpy {version}"


def _packed(data: bytes) -> str:
    """zlib + base64: the loader's own text stays small, and Python parses it on every new connection."""
    return base64.b64encode(zlib.compress(data, 9)).decode()


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


def call_body(version: str, mod: str, fn: str, args: str) -> str:
    key = gd_key(version)
    return f'''
pkg = GD.get({key!r})
if pkg is None:
    plpy.execute("SELECT hush._load_python()")
    pkg = GD[{key!r}]
return pkg.{mod}.{fn}(plpy, {args})
'''


INCLUDE = re.compile(r"\{\{include:\s*([\w./-]+)\s*\}\}")
CALLABLE = re.compile(r"\{\{callable_capabilities:\s*([\w.$]+)\s*\}\}")


def _access() -> Any:
    sys.path.insert(0, str(PKG.parent))
    try:
        from hush_plpy import access  # pure Python: no server needed
    finally:
        sys.path.pop(0)
    return access


def _changes() -> Any:
    sys.path.insert(0, str(PKG.parent))
    try:
        from hush_plpy import changes  # SQL text only: no server needed
    finally:
        sys.path.pop(0)
    return changes


def _grants() -> Any:
    sys.path.insert(0, str(PKG.parent))
    try:
        from hush_plpy import grants  # builds SQL text only: no server needed
    finally:
        sys.path.pop(0)
    return grants


def expand(text: str, version: str, where: str) -> str:
    """Expand the markers of one SQL part for the given extension version."""
    leftover = INCLUDE.sub("", CALL.sub("", CALLABLE.sub("", text)))
    known = ("{{python_modules}}", "{{owner_steps}}", "{{capabilities}}", "{{is_change}}")
    for marker in known:
        leftover = leftover.replace(marker, "")
    if "{{" in leftover:
        raise SystemExit(f"{where}: unknown marker")
    text = text.replace("{{owner_steps}}", _access().OWNER_STEPS)
    text = text.replace("{{capabilities}}", "{%s}" % ",".join(_access().CAPABILITIES))
    if "{{is_change}}" in text:
        text = text.replace("{{is_change}}", _changes().IS_CHANGE)
    text = CALLABLE.sub(lambda m: _grants().callable_array(m[1]), text)
    text = text.replace("{{python_modules}}", loader_body(version))
    text = CALL.sub(lambda m: call_body(version, m[1], m[2], m[3]), text)
    text = text.replace("@EXTVERSION@", version)
    # Last, so the Python inlined above is never read for markers.
    return INCLUDE.sub(lambda m: expand((ROOT / "sql" / m[1]).read_text(), version, m[1]), text)


def build(version: str) -> str:
    parts = sorted(p for p in (ROOT / "sql").rglob("*.sql") if not {"updates", "releases"} & set(p.parts))
    out = [f"-- hush {version}: generated by tools/build_sql.py from sql/ and plpython/; do not edit.\n",
           "\\echo Use \"CREATE EXTENSION hush CASCADE\" to load this file. \\quit\n"]
    for p in parts:
        out.append(f"\n-- ===== {p.relative_to(ROOT)} =====\n{expand(p.read_text(), version, str(p))}")
    return "".join(out)


def build_update(source: Path) -> str:
    """An update script, sql/updates/hush--A--B.sql.in, expanded for version B. Every
    PL/Python function names its version's Python in GD, so an update re-creates them
    all ({{include: 50_functions/...}}) along with hush._load_python()."""
    source = source.resolve()
    m = re.fullmatch(r"hush--([\w.]+)--([\w.]+)\.sql\.in", source.name)
    if not m:
        raise SystemExit(f"{source}: not named hush--FROM--TO.sql.in")
    header = (f"-- hush {m[1]} -> {m[2]}: generated by tools/build_sql.py from {source.relative_to(ROOT)}; "
              "do not edit.\n\\echo Use \"ALTER EXTENSION hush UPDATE\" to load this file. \\quit\n")
    return header + expand(source.read_text(), m[2], str(source))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", help="build the install script of this version")
    ap.add_argument("--update", type=Path, help="build this update script (sql/updates/hush--A--B.sql.in)")
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    if args.update:
        Path(args.output).write_text(build_update(args.update))
    elif args.version:
        Path(args.output).write_text(build(args.version))
    else:
        raise SystemExit("give --version or --update")


if __name__ == "__main__":
    main()
