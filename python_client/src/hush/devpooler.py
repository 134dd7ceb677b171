"""A throwaway pgbouncer (Debian's 1.18) in transaction mode in front of a devcluster,
for the tests and `make bench`.

Few server connections (pool_size 3 by default), so consecutive transactions of one
client land on different server connections, as in production: what a client assumes
about its session (prepared statements, LISTEN, SET) breaks here exactly as it would there."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import devcluster

PGBOUNCER = shutil.which("pgbouncer", path="/usr/sbin:/usr/bin:/sbin:/bin")


class PgBouncer:
    """pgbouncer for `cluster`, trusting `users` (the cluster's own authentication decides)."""

    def __init__(self, cluster: devcluster.Cluster, users: list[str], pool_size: int = 3) -> None:
        if PGBOUNCER is None:
            raise RuntimeError("pgbouncer is not installed (tools/debian-packages.txt lists it: make deps)")
        self.program = PGBOUNCER
        self.cluster = cluster
        self.port = devcluster.free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hush-pgbouncer-", dir=devcluster.scratch_dir()))
        (self.dir / "users.txt").write_text("".join(f'"{u}" ""\n' for u in users))
        # `*`: every database name, passed through to the cluster (the tests create one each).
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
* = host=127.0.0.1 port={cluster.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir = {self.dir}
auth_type = trust
auth_file = {self.dir}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 400
ignore_startup_parameters = extra_float_digits
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
""")
        if os.geteuid() == 0:
            shutil.chown(self.dir, devcluster.SERVER_USER, devcluster.SERVER_USER)
            for f in self.dir.iterdir():
                shutil.chown(f, devcluster.SERVER_USER, devcluster.SERVER_USER)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "PgBouncer":
        # pgbouncer refuses to run as root: as the server's OS user, like the cluster.
        self.proc = subprocess.Popen(devcluster._as_server_user([self.program, str(self.dir / "pgbouncer.ini")]),
                                     env=devcluster.server_env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not start: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def dsn(self, dbname: str, user: str) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
