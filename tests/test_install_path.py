"""docs/install.md's "Install on your own server" and the README's "Quick start",
command by command as the docs write them, as root, on a Debian cluster of this
test's own (`pg_createcluster 15 NAME -p PORT`; Debian's `main` is never touched);
then every SQL block of the docs that runs as the app's role, through psql,
and the DBOS section's grant.

The commands are read from the docs, so the docs and this test cannot
drift. What differs from a real install is only where things go, replaced in
the text before it runs: the cluster `15 main` becomes `15 NAME`, and the
keyring's directory, the virtualenv and the `hush` link go under a temporary
directory instead of /etc/postgresql/hush, /opt/hush and /usr/local/bin. The
port comes in PGPORT, as 5432 would for `main`. `apt-get` lines are not run (a
test installs no system package): what they name must be in
tools/debian-packages.txt, which `make test` installs, and installed. The
client's `pip install` reaches the package index, as `make test`'s own
virtualenv does.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest
import sqlalchemy.exc
import sqlalchemy.pool

from docs_text import blocks, pages, section
from hush import devcluster as pgcluster

ROOT = Path(__file__).resolve().parent.parent
APP_ROLE = "billing_app"
PASSWORD = "correct horse battery staple"
STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"


def psql_blocks() -> list[str]:
    """The SQL blocks meant for psql: every page's but the reference's, whose examples
    name bound values and run in tests/test_docs.py."""
    return [b for name, text in pages().items() if name != "docs/reference.md" for b in blocks(text, "sql")]


def app_sql_blocks() -> list[tuple[str | None, str]]:
    """Every SQL block of the docs that runs as the app's role: (expected SQLSTATE, SQL)."""
    out = []
    for body in psql_blocks():
        first, _, sql = body.partition("\n")
        m = re.fullmatch(rf"--\s*as {APP_ROLE}(?:; error (\w{{5}}))?", first.strip())
        if m:
            out.append((m[1], sql))
    return out


class Machine:
    """The test's stand-ins for the machine-wide places the install names."""

    def __init__(self, base: Path, cluster: str, port: int) -> None:
        self.base, self.cluster, self.port = base, cluster, port
        self.keys = base / "keys"
        self.venv = base / "venv"
        self.bin = base / "bin"
        self.conf = Path(f"/etc/postgresql/15/{cluster}")

    def literal(self, text: str) -> str:
        for old, new in (("/etc/postgresql/15/main/", f"{self.conf}/"), ("15 main", f"15 {self.cluster}"),
                         ("/etc/postgresql/hush", str(self.keys)), ("/opt/hush", str(self.venv)),
                         ("/usr/local/bin/", f"{self.bin}/")):
            text = text.replace(old, new)
        return text

    def env(self, **extra: str) -> dict[str, str]:
        """A root shell's environment, nothing of this test process's (no virtualenv, no PG*),
        plus what pip needs to reach the package index the way this machine is set up to."""
        env = {"PATH": f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root"),
               "PGPORT": str(self.port), "LANG": os.environ.get("LANG", "C.UTF-8")}
        env.update((k, v) for k, v in os.environ.items() if k.startswith("PIP_") or k.lower().endswith("_proxy"))
        return {**env, **extra}

    def sh(self, script: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        """One block of the docs through bash, in the clone, as root; in a session of its own so that
        psql's password prompt reads stdin rather than a terminal."""
        return subprocess.run(["bash", "-euo", "pipefail", "-c", self.literal(script)], cwd=ROOT, env=self.env(**env),
                              input=stdin or "", capture_output=True, text=True, timeout=300, start_new_session=True)

    def psql_as_postgres(self, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                               "-v", "VERBOSITY=verbose", "-d", "app", "-c", sql], env=self.env(),
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    if os.geteuid() != 0:
        pytest.skip("the install path runs as root (Debian's cluster tools, runuser)")
    name = f"hush-test-{uuid.uuid4().hex[:8]}"
    base = Path(pgcluster.scratch_dir()) / name
    base.mkdir(mode=0o755)
    os.chmod(base, 0o755)  # the postgres user reads the keyring's directory and runs `hush` from the venv
    m = Machine(base, name, pgcluster.free_port())
    m.bin.mkdir()
    try:
        subprocess.run(["pg_createcluster", "15", name, "-p", str(m.port)], check=True, capture_output=True)
        subprocess.run(["pg_ctlcluster", "15", name, "start"], check=True, capture_output=True)
        yield m
    finally:
        subprocess.run(["pg_dropcluster", "--stop", "15", name], capture_output=True)
        shutil.rmtree(m.conf, ignore_errors=True)  # pg_dropcluster leaves the conf.d file it did not make
        shutil.rmtree(base, ignore_errors=True)


def test_readme_sql_never_needs_a_bind_parameter() -> None:
    """psql 15 cannot bind parameters, so no SQL block meant for psql asks for one."""
    sql = psql_blocks()
    assert len(sql) >= 4
    assert not [b for b in sql if re.search(r"\$\d", b)]


def test_alter_system_needs_a_set_first_on_postgresql_15(machine: Machine) -> None:
    """What step 4 says: on a server whose configuration names no hush.* setting,
    ALTER SYSTEM alone does not know hush.root_key_file (42704)."""
    r = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-X", "-v", "VERBOSITY=verbose", "-c",
                        "ALTER SYSTEM SET hush.root_key_file = '/nonexistent'"], env=machine.env(),
                       capture_output=True, text=True)
    assert r.returncode == 1 and "42704" in r.stderr, r.stderr


def test_install_then_quick_start_as_written(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    install = blocks(section("Install on your own server"), "sh")
    assert len(install) == 6, "the install steps changed: update this test's checks"
    listed = set((ROOT / "tools" / "debian-packages.txt").read_text().split())
    for block in install:
        apt = [line for line in block.splitlines() if line.startswith("apt-get ")]
        for line in apt:
            if " install " in line:
                named = [w for w in line.split()[2:] if not w.startswith("-")]
                assert set(named) <= listed, set(named) - listed
                for package in named:
                    assert subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True,
                                          text=True).stdout == "install ok installed", package
        script = "\n".join(line for line in block.splitlines() if line not in apt)
        r = machine.sh(script, stdin=f"{PASSWORD}\n{PASSWORD}\n" if "\\password" in script else None)
        assert r.returncode == 0, f"{script}\n--- stdout:\n{r.stdout}\n--- stderr:\n{r.stderr}"
        if "hush keygen" in script:
            key_id = r.stdout.strip()

    # The keyring: 0600, the server's OS user's, one key, the one keygen named.
    keyring = machine.keys / "root.keys"
    st = keyring.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o600, pgcluster.pwd.getpwnam("postgres").pw_uid)
    assert re.fullmatch(r"[0-9a-f]{32}", key_id)
    # Both ways of configuring the server took: the conf.d file and ALTER SYSTEM.
    settings = machine.psql_as_postgres(
        "SELECT name, setting, regexp_replace(sourcefile, '.*/', '') FROM pg_file_settings "
        "WHERE name IN ('hush.root_key_file', 'log_parameter_max_length', 'log_parameter_max_length_on_error') "
        "AND error IS NULL")
    assert sorted(settings.stdout.split()) == sorted(
        f"{name}|{value}|{file}" for file in ("hush.conf", "postgresql.auto.conf")
        for name, value in (("hush.root_key_file", keyring), ("log_parameter_max_length", 0),
                            ("log_parameter_max_length_on_error", 0))), settings.stderr
    assert machine.psql_as_postgres("SHOW log_parameter_max_length").stdout.strip() == "0"

    # The app's role logs in over TCP with its password under Debian's own pg_hba.conf,
    # is no superuser, and holds no privilege on hush's tables.
    app_dsn = f"host=localhost port={machine.port} dbname=app user={APP_ROLE} password='{PASSWORD}'"
    with psycopg.connect(app_dsn, autocommit=True) as app:
        assert app.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT * FROM hush.secrets")
    with pytest.raises(psycopg.OperationalError, match="Peer authentication failed"):
        psycopg.connect(f"host=/var/run/postgresql port={machine.port} dbname=app user={APP_ROLE}").close()

    # `hush init`, as step 5 offers it: the extension is there, the keygen's key becomes the active one.
    init_cmd = re.search(r"`(runuser -u postgres -- env PGDATABASE=app hush init)`",
                         section("Install on your own server"))[1]  # type: ignore[index]
    r = machine.sh(init_cmd)
    assert r.returncode == 0 and f"active root key {key_id}" in r.stdout, r.stdout + r.stderr

    # The Quick start: the CLI as the app, then every SQL block of the docs that runs as the app, in psql.
    [cli] = blocks(section("Quick start"), "sh")
    hush_dsn = re.search(r'export HUSH_DSN="([^"]+)"', cli)[1]  # type: ignore[index]
    r = machine.sh(cli, STRIPE_KEY=STRIPE_KEY, PGPASSWORD=PASSWORD)
    assert (r.returncode, r.stdout) == (0, STRIPE_KEY + "\n"), r.stderr
    for error, sql in app_sql_blocks():
        r = machine.sh('psql -X -v ON_ERROR_STOP=1 -v VERBOSITY=verbose "$HUSH_DSN"', stdin=sql,
                       HUSH_DSN=hush_dsn, PGPASSWORD=PASSWORD)
        if error:
            assert r.returncode == 3 and f"ERROR:  {error}:" in r.stderr, (sql, r.stderr)
        else:
            assert r.returncode == 0, (sql, r.stderr)
    assert STRIPE_KEY in machine.sh('psql -X -At -c "SELECT value FROM hush.get_secret(\'acme\', \'stripe_api_key\')" '
                                    '"$HUSH_DSN"', HUSH_DSN=hush_dsn, PGPASSWORD=PASSWORD).stdout

    # The Quick start's Python, with the same environment.
    [py] = [b for b in blocks(section("Quick start"), "python") if "psycopg.connect" in b]
    for k, v in {"HUSH_DSN": hush_dsn, "PGPASSWORD": PASSWORD, "PGPORT": str(machine.port),
                 "STRIPE_KEY": "sk_live_rotated"}.items():
        monkeypatch.setenv(k, v)
    scope: dict[str, Any] = {}
    exec(compile(py, "README.md", "exec"), scope)
    assert scope["key"] == "sk_live_rotated"

    # DBOS creates its schema in the app's database: refused until the DBOS section's grant.
    from dbos import SQLAlchemyDatasource
    url = f"postgresql+psycopg://{APP_ROLE}@localhost:{machine.port}/app"
    unpooled = {"poolclass": sqlalchemy.pool.NullPool}  # no connection left open for the teardown's stop
    with pytest.raises(sqlalchemy.exc.ProgrammingError, match="permission denied for database app"):
        SQLAlchemyDatasource.create(url, engine_kwargs=unpooled)
    [grant] = blocks(section("DBOS"), "sh")
    assert machine.sh(grant).returncode == 0
    SQLAlchemyDatasource.create(url, engine_kwargs=unpooled)
