"""Every SQL example in README.md and docs/reference.md runs, in order, against
a real server, as the role its first line names; so a documented example can
never stop working. Header: `-- as ROLE[, $1 = '...', ...][; error SHxxx]`."""
from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

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


def test_readme_examples_run(cluster):
    """The README's quick start runs in a new database without hush, as written."""
    found = examples("README.md")
    assert len(found) >= 3
    name = "readme_quickstart"
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        su.execute(f"CREATE DATABASE {name}")
    try:
        for role, params, error, sql in found:
            with psycopg.connect(cluster.dsn(name, user=role), autocommit=True) as conn:
                run_example(conn, params, error, sql)
    finally:
        with psycopg.connect(cluster.dsn(), autocommit=True) as su:
            su.execute(f"DROP DATABASE {name} WITH (FORCE)")
            roles = [r for (r,) in su.execute("SELECT rolname FROM pg_roles WHERE rolname IN ('billing_app')")]
            for r in roles:
                su.execute(f"DROP ROLE {r}")


@pytest.mark.parametrize("doc", ["README.md", "docs/reference.md"])
def test_examples_never_inline_a_value(doc):
    """Values travel as bind parameters in every documented write."""
    calls = [c for _, _, _, sql in examples(doc)
             for c in re.findall(r"hush\.(?:save|update)_secret(?:_by_id)?\((.*?)\)", sql, re.S)]
    assert calls
    for call in calls:
        args = [a.strip() for a in call.split(",")]
        if len(args) > 2 and "=>" not in args[2]:
            assert re.fullmatch(r"\$\d+(::[\w\[\]]+)?", args[2]), call
        assert not re.search(r"value\s*=>\s*'", call), call
