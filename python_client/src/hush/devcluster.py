"""A throwaway PostgreSQL 15 cluster: `hush dev`, the demo, the tests and the benchmarks.

PostgreSQL refuses to run as root, so when we are root the server runs as the
`postgres` OS user; the directory lives under /tmp (pytest's tmp_path is 0700
under root and the postgres user could not enter it). The root key file sits
outside the data directory and the key setting goes into postgresql.conf,
because hush honours `hush.root_key_file` only from the server configuration.
"""
from __future__ import annotations

import base64
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

PG_BIN = Path(os.environ.get("HUSH_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *argv]
    return argv


def extension_installed() -> bool:
    """Whether `make install` has put hush's files into this PostgreSQL's share directory."""
    share = subprocess.run([str(PG_BIN / "pg_config"), "--sharedir"], capture_output=True, text=True)
    return share.returncode == 0 and (Path(share.stdout.strip()) / "extension" / "hush.control").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_root_key() -> str:
    """One keyring line: a base64-encoded 32-byte key (the seed's ROOT_KEY_BASE64)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


class Cluster:
    """initdb + pg_ctl start/stop in a private directory (a new temporary one by default)."""

    def __init__(self, settings: dict[str, str] | None = None, keys: int = 1, base: Path | None = None,
                 port: int | None = None) -> None:
        if base is None:
            base = Path(tempfile.mkdtemp(prefix="hush-pg-"))
        else:
            base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.data = self.base / "data"
        self.keyfile = self.base / "keys" / "root.keys"
        self.log = self.base / "server.log"
        self.port = port or free_port()
        self.settings = settings or {}
        self.key_lines = [new_root_key() for _ in range(keys)]
        self._owner = pwd.getpwnam(SERVER_USER) if os.geteuid() == 0 else None

    # -- set-up -------------------------------------------------------------
    def _chown(self, path: Path) -> None:
        if self._owner:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def write_keyfile(self, lines: list[str] | None = None, mode: int = 0o600, path: Path | None = None) -> Path:
        """Write a keyring owned by the server's OS user (default: this cluster's keys)."""
        path = path or self.keyfile
        path.parent.mkdir(mode=0o700, exist_ok=True)
        self._chown(path.parent)
        body = "# hush root keyring: one base64 key per line\n"
        body += "".join(line + "\n" for line in (lines if lines is not None else self.key_lines))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.chmod(path, mode)
        self._chown(path)
        return path

    def start(self) -> "Cluster":
        os.chmod(self.base, 0o755)
        self._chown(self.base)
        self.write_keyfile()
        subprocess.run(
            _as_server_user([str(PG_BIN / "initdb"), "-D", str(self.data), "-E", "UTF8",
                             "--locale=C.UTF-8", "--auth=trust", "-U", "postgres"]),
            check=True, stdout=subprocess.DEVNULL,
        )
        conf = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'",
            "hush.root_key_file": f"'{self.keyfile}'",
            "fsync": "off",
            "max_connections": "60",
            # Values stay out of the log even with log_statement = 'all' (see README).
            "log_parameter_max_length": "0",
            "log_parameter_max_length_on_error": "0",
        }
        conf.update(self.settings)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write("\n# added by hush.devcluster\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        subprocess.run(
            _as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                             "-w", "-t", "60", "start"]),
            check=True, stdout=subprocess.DEVNULL,
        )
        return self

    def start_standby(self) -> "Cluster":
        """A streaming replica of this cluster (pg_basebackup -R), sharing its keyring."""
        sb = Cluster(settings=dict(self.settings))
        sb.keyfile, sb.key_lines = self.keyfile, self.key_lines
        os.chmod(sb.base, 0o755)
        sb._chown(sb.base)
        subprocess.run(
            _as_server_user([str(PG_BIN / "pg_basebackup"), "-D", str(sb.data), "-R", "-X", "stream",
                             "--checkpoint=fast", "-h", str(self.base), "-p", str(self.port), "-U", "postgres"]),
            check=True, stdout=subprocess.DEVNULL,
        )
        with open(sb.data / "postgresql.conf", "a") as f:  # later lines win over the primary's
            f.write(f"\nport = {sb.port}\nunix_socket_directories = '{sb.base}'\n")
        subprocess.run(
            _as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(sb.data), "-l", str(sb.log), "-w", "-t", "60",
                             "start"]),
            check=True, stdout=subprocess.DEVNULL,
        )
        return sb

    def running(self) -> bool:
        if not self.data.exists():
            return False
        return subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def stop(self, remove: bool = True) -> None:
        if self.data.exists():
            subprocess.run(
                _as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                                 "-w", "stop"]),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, dbname: str = "postgres", user: str = "postgres", **extra: str) -> str:
        parts = {"host": str(self.base), "port": str(self.port), "dbname": dbname, "user": user}
        parts.update(extra)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def run_bin(self, name: str, *args: str, **kw: object) -> subprocess.CompletedProcess[Any]:
        """Run a client program (pg_dump, psql…) against this cluster as the current user."""
        argv = [str(PG_BIN / name), "-h", str(self.base), "-p", str(self.port), "-U", "postgres", *args]
        return subprocess.run(argv, **kw)  # type: ignore[call-overload, no-any-return]
