"""hush.devcluster and `hush dev`: a start that fails leaves no server and no
directory behind; `hush dev start|status|stop` works from inside an activated
virtualenv and from outside one, and hands the app a DSN that is not a
superuser's, so grants are exercised."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest
from click.testing import CliRunner

from hush import devcluster as pgcluster
from hush.cli import _dev
from test_fresh_machine import server_python

ROOT = Path(__file__).resolve().parent.parent
HUSH = str(Path(sys.executable).parent / "hush")


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def processes_under(base: Path) -> list[str]:
    """Command lines of the processes that name base (a postmaster shows its -D)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(base) in cmdline:
            found.append(cmdline)
    return found


def assert_nothing_left(base: Path, port: int) -> None:
    assert not base.exists()
    assert port_is_free(port)
    assert processes_under(base) == []


def test_a_start_that_fails_leaves_no_server_and_no_directory(cluster: Any) -> None:
    c = pgcluster.Cluster(settings={"hush_no_such_setting": "on"})
    with pytest.raises(pgcluster.StartFailed, match="hush_no_such_setting"):  # the log's reason, not just "failed"
        c.start()
    assert_nothing_left(c.base, c.port)


def test_dev_start_that_fails_after_the_server_started_stops_it(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server runs, then the set-up fails (here: a keyring whose line is no key):
    the server is stopped and the directory removed, so no postgres is left that
    `hush dev stop` could not find."""
    monkeypatch.setattr(pgcluster, "new_root_key", lambda: "bm90IGEga2V5")
    base = Path(pgcluster.scratch_dir()) / f"hush-dev-test-{uuid.uuid4().hex[:8]}"
    r = CliRunner().invoke(_dev.dev, ["start", "--dir", str(base)])
    assert r.exit_code == 8, r.output  # the root key's exit code
    assert "no root key can be made active" in r.output and "is stopped and removed" in r.output
    port = int(re.search(r"on port (\d+)", r.output)[1])  # type: ignore[index]
    assert_nothing_left(base, port)
    assert CliRunner().invoke(_dev.dev, ["status", "--dir", str(base)]).exit_code == 1


@pytest.fixture(scope="module")
def debian_venv() -> Iterator[Path]:
    """A virtualenv of Debian's own Python, where the server's user can read it: the
    one whose bin/ on PATH used to move PL/Python's sys.prefix (a .venv made from
    another Python, or under /root, would not show the trap)."""
    base = Path(pgcluster.scratch_dir()) / f"hush-venv-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(base)], check=True)
    os.chmod(base, 0o755)
    # The trap is real: a Python whose prefix is this virtualenv cannot import nacl.
    assert subprocess.run([str(base / "bin" / "python3"), "-c", "import nacl"], capture_output=True).returncode == 1
    yield base
    subprocess.run(["rm", "-rf", str(base)], check=True)


def shell_env(inside_venv: Path | None) -> dict[str, str]:
    """The environment of a shell, with a virtualenv activated (as bin/activate does) or none."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    if inside_venv is None:
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    else:
        env["VIRTUAL_ENV"] = str(inside_venv)
        env["PATH"] = f"{inside_venv}/bin:{ROOT}/.venv/bin:{os.environ['PATH']}"
    return env


@pytest.mark.parametrize("where", ["inside_venv", "outside_venv"])
def test_dev_start_status_stop(cluster: Any, debian_venv: Path, where: str) -> None:
    """`hush dev start` runs as the console script in the shell's environment (the
    server is started from it); status and stop, which start nothing, run in-process."""
    env = shell_env(debian_venv if where == "inside_venv" else None)
    base = Path(pgcluster.scratch_dir()) / f"hush-dev-test-{uuid.uuid4().hex[:8]}"

    def dev(*args: str) -> Any:
        return CliRunner().invoke(_dev.dev, [*args, "--dir", str(base)])
    try:
        r = subprocess.run([HUSH, "dev", "start", "--dir", str(base)], env=env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        dsn = r.stdout.strip()
        admin = re.search(r"superuser \(admin work\): (.*)", r.stderr)[1]  # type: ignore[index]
        with psycopg.connect(dsn, autocommit=True) as app:
            assert app.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
                               ).fetchone() == ("app", False)
            # A write seals the value with nacl in the server's PL/Python.
            app.execute("SELECT hush.save_secret('acme', 'k', %s)", ["v1"])
            assert app.execute("SELECT value FROM hush.get_secret('acme', 'k')").fetchone() == ("v1",)
            with pytest.raises(psycopg.Error) as denied:
                app.execute("SELECT value FROM hush.get_secret('globex', 'k')")
            assert denied.value.sqlstate == "SH020"
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("SELECT * FROM hush.secrets")
        with psycopg.connect(admin, autocommit=True) as su:
            assert su.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
            assert su.execute("SELECT count(*) FROM hush.root_keys WHERE state = 'active'").fetchone() == (1,)
            # The server got PATH and the locale, none of the shell's virtualenv.
            facts = server_python(su)
            assert facts["env"]["PATH"] == pgcluster.SERVER_PATH and "VIRTUAL_ENV" not in facts["env"]
            assert facts["prefix"] == "/usr"

        assert dev("start").stdout.strip() == dsn  # already running: the same cluster
        status = dev("status", "--json")
        assert status.exit_code == 0 and json.loads(status.stdout)["running"] is True
        assert json.loads(status.stdout)["dsn"] == dsn
        port = json.loads(status.stdout)["port"]
        assert dev("stop").exit_code == 0
        assert_nothing_left(base, port)
        assert dev("status").exit_code == 1
    finally:
        dev("stop")
