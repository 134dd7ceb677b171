"""Every SQL example of the docs (README.md and docs/*.md) runs against a real
server, as the role its first line names; so a documented example can never
stop working. Header: `-- as ROLE[, $1 = '...', ...][; error SHxxx]`. A page's
examples run in order, in a database of their own, as the fixture's roles
(tests/conftest.py). Examples that need more than that (the install's own
role and cluster, roles an example creates, pg_cron, psql) are run by the test
of their section, as that section's page writes them."""
from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from conftest import ROLES
from docs_text import blocks, pages, section
from helpers import raises_sqlstate

ROOT = Path(__file__).resolve().parent.parent
HEADER = re.compile(r"--\s*as\s+(\w+)(.*)")
PARAM = re.compile(r"\$(\d+)\s*=\s*'((?:[^']|'')*)'")
ERROR = re.compile(r"error\s+(\w{5})")
RUNS_HERE = {"postgres", *ROLES}
# Sections whose SQL examples another test runs as written, and the role of the
# install path's application, whose examples tests/test_install_path.py runs in psql.
ELSEWHERE = {"Access control": "test_client_access.py", "Scheduling maintenance": "test_cron.py",
             "Django": "test_django_app.py"}
INSTALL_ROLE = ("billing_app", "test_install_path.py")


def headed(text: str) -> list[tuple[str, list[str], str | None, str]]:
    """The SQL blocks of a text that name their role: (role, bound values, SQLSTATE, SQL)."""
    out = []
    for body in blocks(text, "sql"):
        first, _, sql = body.partition("\n")
        m = HEADER.match(first.strip())
        if not m:
            continue
        params = {int(n): v.replace("''", "'") for n, v in PARAM.findall(m[2])}
        err = ERROR.search(m[2])
        out.append((m[1], [params[i] for i in sorted(params)], err[1] if err else None, sql.strip()))
    return out


def run_elsewhere() -> set[str]:
    """The SQL of the examples in the sections another test runs."""
    return {sql for title in ELSEWHERE for _, _, _, sql in headed(section(title))}


def examples(page: str) -> list[tuple[str, list[str], str | None, str]]:
    """The examples this test runs from one page, in order: those of the fixture's roles,
    outside the sections another test runs."""
    elsewhere = run_elsewhere()
    return [e for e in headed(pages()[page]) if e[0] in RUNS_HERE and e[3] not in elsewhere]


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


@pytest.mark.parametrize("page", [p for p in pages() if examples(p)])
def test_examples_run(db, page):
    found = examples(page)
    if page == "docs/reference.md":
        assert len(found) >= 20
    for role, params, error, sql in found:
        with db.connect(role) as conn:
            run_example(conn, params, error, sql)


def test_every_example_runs_somewhere():
    """An example this test leaves out is run by the test its section names, which reads
    that section; the rest name a role of the fixture."""
    for title, test in ELSEWHERE.items():
        assert headed(section(title)), title
        assert f'"{title}"' in (ROOT / "tests" / test).read_text(), (title, test)
    install_examples = 0
    elsewhere = run_elsewhere()
    for page, text in pages().items():
        run = {sql for _, _, _, sql in examples(page)}
        for role, _, _, sql in headed(text):
            if role == INSTALL_ROLE[0]:
                install_examples += 1
            else:
                assert sql in run or sql in elsewhere, f"{page}: no test runs the example as {role}:\n{sql}"
    assert install_examples >= 2 and "app_sql_blocks" in (ROOT / "tests" / INSTALL_ROLE[1]).read_text()


def test_examples_never_inline_a_value():
    """Values travel as bind parameters in every documented write."""
    calls = [c for page in pages() for _, _, _, sql in headed(pages()[page])
             for c in re.findall(r"hush\.(?:save|update)_secret(?:_by_id)?\((.*?)\)", sql, re.S)]
    assert calls
    for call in calls:
        args = [a.strip() for a in call.split(",")]
        if len(args) > 2 and "=>" not in args[2]:
            assert re.fullmatch(r"\$\d+(::[\w\[\]]+)?", args[2]), call
        assert not re.search(r"value\s*=>\s*'", call), call
