"""Every SQL example in docs/reference.md runs, in order, against a real server,
as the role its first line names; so a documented example can never stop
working. Header: `-- as ROLE[, $1 = '...', ...][; error SHxxx]`. README.md's
examples run in tests/test_install_path.py, through psql, on the server its
install path sets up."""
from __future__ import annotations

import re
from pathlib import Path

import psycopg

from helpers import raises_sqlstate

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```sql\n(.*?)```", re.S)
HEADER = re.compile(r"--\s*as\s+(\w+)(.*)")
PARAM = re.compile(r"\$(\d+)\s*=\s*'((?:[^']|'')*)'")
ERROR = re.compile(r"error\s+(\w{5})")


def examples(doc: str) -> list[tuple[str, list[str], str | None, str]]:
    out = []
    for body in BLOCK.findall((ROOT / doc).read_text()):
        first, _, sql = body.partition("\n")
        m = HEADER.match(first.strip())
        if not m:
            continue
        params = {int(n): v.replace("''", "'") for n, v in PARAM.findall(m[2])}
        err = ERROR.search(m[2])
        out.append((m[1], [params[i] for i in sorted(params)], err[1] if err else None, sql.strip()))
    return out


def run_example(conn: psycopg.Connection, params: list[str], error: str | None, sql: str) -> None:
    statements = [s for s in re.split(r";\s*\n", sql.rstrip().rstrip(";") + "\n") if s.strip()]
    for stmt in statements:
        if params:
            # $n placeholders as written in the docs -> psycopg's %s, in order of appearance.
            order = [int(n) for n in re.findall(r"\$(\d+)", stmt)]
            q = re.sub(r"\$\d+", "%s", stmt.replace("%", "%%"))
            args = [params[n - 1] for n in order]
        else:
            q, args = stmt, None
        if error:
            with raises_sqlstate(error):
                conn.execute(q, args)
        else:
            conn.execute(q, args)


def test_reference_examples_run(db):
    found = examples("docs/reference.md")
    assert len(found) >= 20
    for role, params, error, sql in found:
        with db.connect(role) as conn:
            run_example(conn, params, error, sql)


def test_examples_never_inline_a_value():
    """Values travel as bind parameters in every documented write."""
    calls = [c for _, _, _, sql in examples("docs/reference.md")
             for c in re.findall(r"hush\.(?:save|update)_secret(?:_by_id)?\((.*?)\)", sql, re.S)]
    assert calls
    for call in calls:
        args = [a.strip() for a in call.split(",")]
        if len(args) > 2 and "=>" not in args[2]:
            assert re.fullmatch(r"\$\d+(::[\w\[\]]+)?", args[2]), call
        assert not re.search(r"value\s*=>\s*'", call), call
