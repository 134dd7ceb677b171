"""What a fresh machine gets from the project's own set-up: every Debian package
of tools/debian-packages.txt is installed (by tools/install-deps.sh, which
`make test` runs), every program and library the fixtures start resolves, the
server's Python imports nacl, and CI cannot pass by skipping."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hush import devcluster as pgcluster

ROOT = Path(__file__).resolve().parent.parent
INSTALL_DEPS = ROOT / "tools" / "install-deps.sh"
# Where a root login shell looks for programs; the fixtures call them by these names.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def packages() -> list[str]:
    """The list as the install script reads it."""
    out = subprocess.run([str(INSTALL_DEPS), "--print"], capture_output=True, text=True, check=True).stdout
    return out.split()


def pg_config(flag: str) -> Path:
    out = subprocess.run([str(pgcluster.PG_BIN / "pg_config"), flag], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_the_list_is_read_as_written() -> None:
    listed = [line.split("#")[0].strip() for line in (ROOT / "tools" / "debian-packages.txt").read_text().splitlines()]
    assert packages() == [p for p in listed if p]
    assert {"postgresql-15", "postgresql-plpython3-15", "python3-nacl", "postgresql-15-cron"} <= set(packages())


@pytest.mark.parametrize("package", packages())
def test_every_listed_package_is_installed(package: str) -> None:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    assert r.stdout == "install ok installed", f"{package}: {r.stdout or r.stderr}"


def test_install_deps_finds_nothing_missing() -> None:
    """What `make test` ran before the tests left nothing for it to install."""
    r = subprocess.run([str(INSTALL_DEPS), "--missing"], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


@pytest.mark.parametrize("program", ["initdb", "pg_ctl", "postgres", "pg_config", "pg_basebackup", "pg_dump",
                                     "pg_restore", "psql", "createdb"])
def test_every_server_program_resolves(program: str) -> None:
    path = pgcluster.PG_BIN / program
    assert path.is_file() and os.access(path, os.X_OK), path
    assert "PostgreSQL) 15." in subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout \
        .replace("PostgreSQL 15.", "PostgreSQL) 15.")  # pg_config alone prints no parentheses


@pytest.mark.parametrize("program", ["runuser", "pg_createcluster", "pg_ctlcluster", "pg_dropcluster",
                                     "pg_lsclusters", "ps", "dpkg-query"])
def test_every_system_program_resolves(program: str) -> None:
    assert shutil.which(program, path=SYSTEM_PATH), f"{program} is not on {SYSTEM_PATH}"


@pytest.mark.parametrize("library", ["plpython3.so", "pg_cron.so"])
def test_every_server_library_is_in_pkglibdir(library: str) -> None:
    assert (pg_config("--pkglibdir") / library).is_file()


@pytest.mark.parametrize("extension", ["hush", "plpython3u", "pg_cron"])
def test_every_extension_is_installed(extension: str) -> None:
    assert (pg_config("--sharedir") / "extension" / f"{extension}.control").is_file()


PYTHON_FACTS = """CREATE FUNCTION pg_temp.python_facts() RETURNS text LANGUAGE plpython3u AS $py$
import json, os, sys
import nacl.secret
return json.dumps({'prefix': sys.prefix, 'nacl': nacl.secret.__file__, 'env': dict(os.environ)})
$py$"""


def server_python(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What the server's PL/Python sees: sys.prefix, where nacl comes from, the environment
    (postgres overwrites /proc/PID/environ with its process titles, so it is asked here)."""
    conn.execute(PYTHON_FACTS)
    facts: dict[str, Any] = json.loads(conn.execute("SELECT pg_temp.python_facts()").fetchone()[0])  # type: ignore
    return facts


def test_the_server_python_imports_nacl_in_a_minimal_environment(db: Any) -> None:
    """The fixtures' server got PATH=/usr/bin:/bin and the locale only, and its
    PL/Python finds Debian's python3-nacl."""
    with db.connect() as conn:
        facts = server_python(conn)
    assert facts["nacl"].startswith("/usr/lib/python3/dist-packages/nacl/")
    assert facts["prefix"] == "/usr"
    assert facts["env"]["PATH"] == pgcluster.SERVER_PATH
    extra = set(facts["env"]) - {"PATH", "LANG", "LANGUAGE"} - {k for k in facts["env"] if k.startswith("LC_")}
    set_by_runuser_pg_ctl_and_the_server = {"HOME", "USER", "LOGNAME", "PWD", "PG_GRANDPARENT_PID", "PGDATA",
                                            "PGLOCALEDIR", "PGSYSCONFDIR"}
    assert extra <= set_by_runuser_pg_ctl_and_the_server, extra


SKIPPING = """
import pytest

def test_passes():
    pass

def test_needs_a_missing_package():
    pytest.skip("no such package")
"""

NOTHING_PASSES = """
import pytest

@pytest.mark.xfail(strict=True)
def test_known_bug():
    assert False
"""


def test_ci_turns_a_skip_into_a_failure(tmp_path: Path) -> None:
    """What .ci/run sets (HUSH_FAIL_ON_SKIP=1) makes a skip fail the run, through the hooks in conftest.py."""
    (tmp_path / "test_skipping.py").write_text(SKIPPING)

    def pytest_run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "conftest", "-q",
                               str(tmp_path)], env={**os.environ, "PYTHONPATH": str(ROOT / "tests"), **env},
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    ci = pytest_run(HUSH_FAIL_ON_SKIP="1")
    assert ci.returncode == 1 and "1 failed, 1 passed" in ci.stdout, ci.stdout
    assert "HUSH_FAIL_ON_SKIP=1 counts as a failure: Skipped: no such package" in ci.stdout
    plain = pytest_run(HUSH_FAIL_ON_SKIP="")
    assert plain.returncode == 0 and "1 passed, 1 skipped" in plain.stdout, plain.stdout
    (tmp_path / "test_skipping.py").write_text(NOTHING_PASSES)
    nothing_passed = pytest_run(HUSH_FAIL_ON_SKIP="1")
    assert nothing_passed.returncode == 1 and "1 xfailed" in nothing_passed.stdout, nothing_passed.stdout


def test_ci_runs_make_test_with_the_skip_guard() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "HUSH_FAIL_ON_SKIP=1 make test" in ci
