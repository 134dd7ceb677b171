"""Examples of the docs that change a server (its pg_hba.conf and pg_ident.conf, ALTER
SYSTEM, its keyring), run as they are written on a cluster of each test's own: the
least-privilege recorder of docs/audit.md and the key rotation of docs/keys.md.

What differs from a real server is only where things go: the keyring's path is this
cluster's, and the key ids the commands name (NEW_ID, OLD_ID) are the ones it has.
"""
from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from docs_text import blocks, section
from hush import devcluster as pgcluster

HUSH = Path(sys.executable).parent / "hush"  # the console script of the virtualenv the tests run in
APP = "app"  # a writer of tenant acme


@pytest.fixture
def own_cluster() -> Iterator[pgcluster.Cluster]:
    c = pgcluster.Cluster().start()
    try:
        with psycopg.connect(c.dsn(), autocommit=True) as su:
            su.execute("CREATE EXTENSION hush CASCADE")
            su.execute(f"CREATE ROLE {APP} LOGIN IN ROLE hush_writer")
            su.execute("SELECT hush.grant_tenant(%s, 'acme')", [APP])
        yield c
    finally:
        c.stop()


def side_by_side(block: str) -> dict[str, list[str]]:
    """The lines of a block that shows files side by side, each column headed `# FILE`."""
    head, *rows = block.splitlines()
    columns = [(m.start(), m[1]) for m in re.finditer(r"# (\S+)", head)]
    bounds = [start for start, _ in columns[1:]] + [None]
    return {name: [row[start:end].strip() for row in rows if row[start:end].strip()]
            for (start, name), end in zip(columns, bounds)}


def statements(sql: str) -> list[str]:
    """The statements of a block, as psql would send them one by one (ALTER SYSTEM refuses
    to share a transaction)."""
    return [s.strip() for s in re.sub(r"--[^\n]*", "", sql).split(";") if s.strip()]


def test_least_privilege_recorder_runs_as_written(own_cluster: pgcluster.Cluster) -> None:
    title = "When a read is recorded"
    [files] = blocks(section(title), "")
    [sql] = blocks(section(title), "sql")
    lines = side_by_side(files)
    assert sorted(lines) == ["pg_hba.conf", "pg_ident.conf"]
    hba, ident = own_cluster.data / "pg_hba.conf", own_cluster.data / "pg_ident.conf"
    hba.write_text("\n".join(lines["pg_hba.conf"]) + "\n" + hba.read_text())  # before broader lines
    ident.write_text(ident.read_text() + "\n".join(lines["pg_ident.conf"]) + "\n")
    first, _, body = sql.partition("\n")
    assert first.strip() == "-- as postgres"
    with psycopg.connect(own_cluster.dsn(), autocommit=True) as su:
        for stmt in statements(body):  # its pg_reload_conf() reads the two files again too
            su.execute(stmt)
        with psycopg.connect(own_cluster.dsn(user=APP), autocommit=True) as app:
            app.execute("SELECT hush.save_secret('acme', 'k', %s)", ["v"])  # the first key registered apart
            assert app.execute("SELECT value FROM hush.get_secret('acme', 'k')").fetchone() == ("v",)
            recorders = su.execute("SELECT usename FROM pg_stat_activity WHERE application_name = %s",
                                   [f"hush recorder for {app.info.backend_pid}"]).fetchall()
        assert recorders == [("hush_rec",)]
        assert su.execute("SELECT action, db_role::text FROM hush.audit_log ORDER BY id").fetchall() == [
            ("grant_tenant", "postgres"), ("create", APP), ("read", APP)]
    with pytest.raises(psycopg.OperationalError, match="[Pp]eer"):  # only the server's OS user is mapped
        psycopg.connect(own_cluster.dsn(user="hush_rec")).close()


def test_key_rotation_runs_as_written(own_cluster: pgcluster.Cluster) -> None:
    [block] = blocks(section("Key rotation"), "sh")
    with psycopg.connect(own_cluster.dsn(), autocommit=True) as su:
        su.execute("CREATE ROLE keeper LOGIN IN ROLE hush_admin")
    with psycopg.connect(own_cluster.dsn(user=APP), autocommit=True) as app:
        for name in ("a", "b", "c"):
            app.execute("SELECT hush.save_secret('acme', %s, %s)", [name, "value-" + name])
    with psycopg.connect(own_cluster.dsn(user="keeper"), autocommit=True) as keeper:
        [(old,)] = keeper.execute("SELECT key_id FROM hush.root_key_status() WHERE state = 'active'").fetchall()
    env = {"PATH": f"{HUSH.parent}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "LANG": os.environ.get("LANG", "C.UTF-8"), "HUSH_DSN": own_cluster.dsn(user="keeper")}
    new = ""
    for line in filter(str.strip, block.splitlines()):
        text = line.replace("/etc/postgresql/hush/root.keys", str(own_cluster.keyfile))
        argv = shlex.split(text.replace("NEW_ID", new).replace("OLD_ID", old), comments=True)
        assert argv[0] == "hush", line
        r = subprocess.run([str(HUSH), *argv[1:]], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (line, r.stderr)
        if argv[1] == "keygen":
            new = r.stdout.strip()
        elif argv[1:3] == ["keys", "status"]:
            assert re.search(rf"^{new}\s+unregistered\s+yes\b", r.stdout, re.M), r.stdout
    st = own_cluster.keyfile.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    with psycopg.connect(own_cluster.dsn(user="keeper"), autocommit=True) as keeper:
        states = dict(keeper.execute("SELECT key_id, state FROM hush.root_key_status()").fetchall())
    assert states == {old: "retired", new: "active"}
    with psycopg.connect(own_cluster.dsn(user=APP), autocommit=True) as app:
        for name in ("a", "b", "c"):
            assert app.execute("SELECT value FROM hush.get_secret('acme', %s)", [name]).fetchone() == ("value-" + name,)
