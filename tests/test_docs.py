"""Every fenced block of the docs (README.md and docs/*.md), of every language, is run
as it is written, or says why not: so a documented example can never stop working.

Each block is one of three:
- run here: a ```sql block whose first line names a role of the fixture's
  (tests/conftest.py) or postgres, `-- as ROLE[, $1 = '...', ...][; error SHxxx]`.
  A page's examples run in order, in a database of their own; one that drops hush
  runs after the page's others. The roles EXAMPLE_ROLES names exist while they run.
- run by another test, named in RUN_BY, which reads the block through docs_text
  (examples that need more than this test has: the install's own cluster and role,
  roles an example creates and uses, pg_cron, a web framework, an OAuth provider);
- not run, in NOT_RUN with the reason (a signature, a configuration file, output).
RUN_BY and NOT_RUN pick blocks by (page, selector): the selector is a line of the
block (exact, stripped), a pattern its first line matches, or the title of a section
the block is in; a line or a pattern wins over a section, an inner section over an
outer one."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator, Union

import psycopg
import pytest

from conftest import ROLES
from docs_text import Block, FENCE_LINE, blocks, fenced, pages
from helpers import raises_sqlstate

ROOT = Path(__file__).resolve().parent.parent
HEADER = re.compile(r"--\s*as\s+(\w+)(.*)")
PARAM = re.compile(r"\$(\d+)\s*=\s*'((?:[^']|'')*)'")
ERROR = re.compile(r"error\s+(\w{5})")
RUNS_HERE = {"postgres", *ROLES}
# Roles the examples name that the fixture lacks: made before a page's examples (those with
# a spec) and dropped after them (all), since roles outlive the page's database.
EXAMPLE_ROLES = {"app": "LOGIN IN ROLE hush_writer", "token_refresher": None}
# What a page's examples find in their database before the first runs.
PAGE_SETUP = {"docs/security.md": [("alice", "SELECT hush.save_secret('acme', %s, %s)", [name, "value-" + name])
                                   for name in ("a", "b")]}
SIGNATURE = re.compile(r"(CALL )?hush\.\w+\(")
SIGNED = re.compile(r"^(?:CALL )?hush\.(\w+)\((.*?)\)\s*(?:RETURNS\b|$)", re.S | re.M)
Selector = Union[str, "re.Pattern[str]"]  # a line, a pattern of the first line, a section title
INSTALL = "tests/test_install_path.py::test_install_then_quick_start_as_written"
EXAMPLES = "tests/test_docs_examples.py::"
CLUSTER = "tests/test_docs_cluster.py::"
RUN_BY: dict[tuple[str, Selector], str] = {
    ("README.md", "From the command line"): INSTALL,
    ("README.md", "From SQL"): INSTALL,
    ("README.md", "import psycopg"): INSTALL,
    ("README.md", "import hush"): "tests/test_client_api.py::test_readme_quick_start_runs",
    ("docs/install.md", "Install on your own server"): INSTALL,
    ("docs/python-guide.md", "DBOS"): INSTALL,
    ("docs/oauth.md", "-- as billing_app; error SH070"): INSTALL,
    ("docs/access.md", "Access control"):
        "tests/test_client_access.py::test_readme_access_control_example_runs_as_written",
    ("docs/lifecycle.md", "From Python"): "tests/test_readme_lifecycle.py::test_readme_lifecycle_example_runs",
    ("docs/lifecycle.md", "The lifecycle from the command line"): EXAMPLES + "test_lifecycle_command_line_runs",
    ("docs/python-guide.md", "The client"): EXAMPLES + "test_own_transaction_example_runs",
    ("docs/python-guide.md", "asyncio (FastAPI, Starlette)"):
        "tests/test_client_api.py::test_readme_fastapi_example_runs",
    ("docs/python-guide.md", "from dbos import DBOS, SQLAlchemyDatasource"):
        EXAMPLES + "test_dbos_transaction_example_runs",
    ("docs/python-guide.md", "DATABASES = {"): "tests/test_django_app.py::test_readme_settings_are_the_example_s",
    ("docs/python-guide.md", "CREATE DATABASE hush_template IS_TEMPLATE true;   -- any CREATEDB role may clone it"):
        "tests/test_django_app.py::test_django_test_runner_clones_the_template",
    ("docs/oauth.md", "client = hush.connect()"): EXAMPLES + "test_oauth_quick_start_runs",
    ("docs/oauth.md", "Provider configurations"): EXAMPLES + "test_provider_configurations_register",
    ("docs/oauth.md", "The SaaS pattern: one provider, many end-user accounts"):
        "tests/test_oauth_docs.py::test_the_saas_pattern_runs_as_written",
    ("docs/operations.md", "Scheduling maintenance"): "tests/test_cron.py::test_jobs_are_registered_and_each_runs",
    ("docs/audit.md", "When a read is recorded"): CLUSTER + "test_least_privilege_recorder_runs_as_written",
    ("docs/keys.md", "Key rotation"): CLUSTER + "test_key_rotation_runs_as_written",
}
NOT_RUN: dict[tuple[str, Selector], str] = {
    ("README.md", "make test    # the same set-up, then the whole test suite against a real PostgreSQL 15 server"):
        "the set-up of a machine: .ci/run runs `make test` on a fresh clone; tests/test_demo.py runs demo/demo.py",
    ("docs/cli.md", "hush dev stop"):
        "a tour that needs a terminal (a prompt without echo), a .env file and a ./server to run; "
        "tests/test_cli*.py run each command, tests/test_dev_cluster.py `hush dev`",
    ("docs/keys.md", "# postgresql.conf: used instead of hush.root_key_file when set"):
        "a line of postgresql.conf naming a KMS; tests/test_key_command.py runs hush.root_key_command "
        "with tools/keys/keyring-from-file.sh",
    ("docs/oauth.md", "hush oauth-worker --once                                                     # one round, for cron"):
        "a process that runs until SIGTERM against real providers; tests/test_oauth_worker*.py run it",
    ("docs/oauth.md", "# /etc/systemd/system/hush-oauth-worker.service"): "a systemd unit",
    ("docs/operations.md", "ALTER EXTENSION hush UPDATE;      -- e.g. 0.4.0 -> 0.5.0"):
        "needs a database at an older version; tests/test_upgrade.py runs it on every update path",
    ("docs/operations.md", "17 0 * * * HUSH_DSN=... hush audit maintain"):
        "crontab lines; tests/test_cli_audit.py runs `hush audit seal` and `hush audit maintain`",
    ("docs/operations.md", re.compile(r"\d{4}-\d\d-\d\d [\d:.]+ UTC \[\d+\] LOG:  hush-failure \{")):
        "a line of the server log, output rather than input; tests/test_failure_log.py checks its form",
    ("docs/python-guide.md", "def connect_partner(request, tenant, partner):"):
        "views over the example app's PartnerAccount model, with `...` for the rest: the complete views are "
        "examples/django_app/partners/views.py and hush_db.py, which tests/test_django_app.py serves with runserver",
    ("docs/reference.md", SIGNATURE): "a function's signature, not a statement (test_signatures_name_real_arguments)",
}


def selects(selector: Selector, block: Block) -> int:
    """How closely the selector picks the block: 0 not at all, more for a closer pick."""
    lines = [line.strip() for line in block.body.splitlines()]
    if isinstance(selector, re.Pattern):
        return 100 if lines and selector.match(lines[0]) else 0
    if selector in lines:
        return 100
    return block.sections.index(selector) + 1 if selector in block.sections else 0


def chosen(block: Block) -> tuple[str, str] | None:
    """("test", "tests/x.py::name") or ("not run", reason) for a block another test runs or
    none does; None for one this test runs."""
    picks = sorted(((selects(sel, block), kind, what) for table, kind in ((RUN_BY, "test"), (NOT_RUN, "not run"))
                    for (page, sel), what in table.items() if page == block.page), reverse=True)
    if not picks or picks[0][0] == 0:
        return None
    assert len(picks) == 1 or picks[1][0] < picks[0][0], f"{block}: picked twice: {picks[:2]}"
    return picks[0][1], picks[0][2]


def header(body: str) -> tuple[str, list[str], str | None, str] | None:
    """(role, bound values, SQLSTATE, SQL) of a block whose first line names its role."""
    first, _, sql = body.partition("\n")
    m = HEADER.match(first.strip())
    if not m:
        return None
    params = {int(n): v.replace("''", "'") for n, v in PARAM.findall(m[2])}
    err = ERROR.search(m[2])
    return m[1], [params[i] for i in sorted(params)], err[1] if err else None, sql.strip()


def examples(page: str) -> list[tuple[str, list[str], str | None, str]]:
    """The examples this test runs from one page, in order, one that drops hush last."""
    found = [h for b in fenced() if b.page == page and b.lang == "sql" and chosen(b) is None
             and (h := header(b.body)) and h[0] in RUNS_HERE]
    return sorted(found, key=lambda e: bool(re.search(r"^DROP EXTENSION hush\b", e[3], re.M)))


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


@pytest.fixture
def example_roles(cluster) -> Iterator[None]:
    """Set up before the page's database and dropped after it, so a role that holds grants
    there goes with it."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for role, spec in EXAMPLE_ROLES.items():
            if spec:
                su.execute(f"DO $$ BEGIN CREATE ROLE {role} {spec}; "
                           "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    yield
    with psycopg.connect(cluster.dsn(), autocommit=True) as su:
        for role in EXAMPLE_ROLES:
            su.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.parametrize("page", [p for p in pages() if examples(p)])
def test_examples_run(example_roles, db, page):
    found = examples(page)
    if page == "docs/reference.md":
        assert len(found) >= 20
    for role, query, params in PAGE_SETUP.get(page, []):
        db.sql(query, params, user=role)
    for role, params, error, sql in found:
        with db.connect(role) as conn:
            run_example(conn, params, error, sql)


def test_every_example_runs_somewhere():
    """Every fenced block is run here, run by the test RUN_BY names, or in NOT_RUN with its
    reason; every entry of both picks a block, and each test named exists and reads the
    block's page through docs_text."""
    unaccounted, named = [], {}
    for name, text in pages().items():
        found = [b for b in fenced() if b.page == name]
        assert len([line for line in text.splitlines() if FENCE_LINE.match(line)]) == 2 * len(found), \
            f"{name}: a fence docs_text does not read"
    for block in fenced():
        pick = chosen(block)
        if pick is None:
            h = header(block.body) if block.lang == "sql" else None
            if not h or h[0] not in RUNS_HERE:
                unaccounted.append(str(block))
        elif pick[0] == "test":
            named.setdefault(pick[1], []).append(block)
    assert unaccounted == [], "blocks no test runs and NOT_RUN does not explain"
    for (page, selector), reason in NOT_RUN.items():
        assert reason and any(b.page == page and selects(selector, b) for b in fenced()), (page, selector)
    for (page, selector), test in RUN_BY.items():
        assert any(b.page == page and selects(selector, b) and chosen(b) == ("test", test) for b in fenced()), \
            (page, selector)
    for test, picked in named.items():
        path, _, function = test.partition("::")
        tree = ast.parse((ROOT / path).read_text())
        assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, test
        assert any(isinstance(n, ast.ImportFrom) and n.module == "docs_text" or isinstance(n, ast.Import)
                   and "docs_text" in [a.name for a in n.names] for n in tree.body), f"{path} reads no docs_text"
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        reads_every_page = any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None))
                               == "pages" for n in ast.walk(tree))
        for block in picked:
            assert reads_every_page or strings & set(block.sections), f"{test} names no section of {block}"


def test_signatures_name_real_arguments(db):
    """The signature blocks of the reference (NOT_RUN) name a function of hush and its
    arguments, in order, as the server has them."""
    sigs = [m.groups() for b in fenced() if b.page == "docs/reference.md" and b.lang == ""
            and SIGNATURE.match(b.body) for m in re.finditer(SIGNED, b.body)]
    assert len(sigs) >= 45
    for name, args in sigs:
        documented = [a.split()[0].strip('"') for a in args.split(",") if a.strip() and not a.strip().startswith("...")]
        known = db.sql("""SELECT array(SELECT a.n FROM unnest(p.proargnames, coalesce(p.proargmodes,
                                  array_fill('i'::"char", ARRAY[coalesce(cardinality(p.proargnames), 0)]))) AS a(n, m)
                                  WHERE a.m IN ('i', 'b', 'v'))
                            FROM pg_proc p WHERE p.pronamespace = 'hush'::regnamespace AND p.proname = %s""", [name])
        assert any(list(k)[:len(documented)] == documented for (k,) in known), (name, documented, known)


def test_examples_never_inline_a_value():
    """Values travel as bind parameters in every documented write."""
    calls = [c for page in pages() for body in blocks(pages()[page], "sql") if (h := header(body))
             for c in re.findall(r"hush\.(?:save|update)_secret(?:_by_id)?\((.*?)\)", h[3], re.S)]
    assert calls
    for call in calls:
        args = [a.strip() for a in call.split(",")]
        if len(args) > 2 and "=>" not in args[2]:
            assert re.fullmatch(r"\$\d+(::[\w\[\]]+)?", args[2]), call
        assert not re.search(r"value\s*=>\s*'", call), call
