"""A throwaway PostgreSQL 15 cluster: `hush dev`, the demo, the tests and the benchmarks.

PostgreSQL refuses to run as root, so when we are root the server runs as the
`postgres` OS user; the directory lives under $HUSH_CLUSTER_DIR, else the
system temp dir (pytest's tmp_path is 0700 under root and the postgres user
could not enter it). The root key file sits
outside the data directory and the key setting goes into postgresql.conf,
because hush honours `hush.root_key_file` only from the server configuration.

The server's programs get a minimal environment (`server_env`): the server's
PL/Python finds its standard library and Debian's dist-packages (python3-nacl)
from PATH, so an activated virtualenv's bin/ first on PATH would move its
sys.prefix into the virtualenv and hush could not import nacl.
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

PG_BIN = Path(os.environ.get("HUSH_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"
SERVER_PATH = "/usr/bin:/bin"


class StartFailed(RuntimeError):
    """The server did not start; the message ends with the tail of its log."""


def server_env() -> dict[str, str]:
    """PATH and the locale variables, nothing else: no VIRTUAL_ENV, PYTHON*, PG*."""
    env = {"PATH": SERVER_PATH}
    env.update((k, v) for k, v in os.environ.items() if k in ("LANG", "LANGUAGE") or k.startswith("LC_"))
    return env


def scratch_dir() -> str:
    """Where a new cluster's directory goes: $HUSH_CLUSTER_DIR, else the system temp dir."""
    return os.environ.get("HUSH_CLUSTER_DIR") or tempfile.gettempdir()


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        # By absolute path: the minimal PATH the server gets has no sbin.
        runuser = shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin") or "runuser"
        return [runuser, "-u", SERVER_USER, "--", *argv]
    return argv


def run_as_server(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
    """Run a server-side program (initdb, pg_ctl, pg_basebackup) as the server's OS user,
    in the server's environment."""
    return subprocess.run(_as_server_user(argv), env=server_env(), **kw)


def extension_installed() -> bool:
    """Whether `make install` has put hush's files into this PostgreSQL's share directory."""
    share = subprocess.run([str(PG_BIN / "pg_config"), "--sharedir"], capture_output=True, text=True)
    return share.returncode == 0 and (Path(share.stdout.strip()) / "extension" / "hush.control").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_root_key() -> str:
    """One keyring line: a base64-encoded 32-byte key (the form of the TypeScript SDK's ROOT_KEY_BASE64)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


class Cluster:
    """initdb + pg_ctl start/stop in a private directory (a new temporary one by default)."""

    def __init__(self, settings: dict[str, str] | None = None, keys: int = 1, base: Path | None = None,
                 port: int | None = None) -> None:
        if base is None:
            base = Path(tempfile.mkdtemp(prefix="hush-pg-", dir=scratch_dir()))
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

    def _prepare_base(self) -> None:
        os.chmod(self.base, 0o755)
        self._chown(self.base)

    @contextmanager
    def _removed_on_failure(self) -> Iterator[None]:
        """On any failure inside, stop the server if it got started and remove the directory,
        then let the error through: a failed start leaves nothing behind."""
        try:
            yield
        except BaseException:
            self.stop(remove=True)
            raise

    def start(self) -> "Cluster":
        """initdb, configure and start (StartFailed: the server would not start)."""
        with self._removed_on_failure():
            self._prepare_base()
            self.write_keyfile()
            run_as_server([str(PG_BIN / "initdb"), "-D", str(self.data), "-E", "UTF8", "--locale=C.UTF-8",
                           "--auth=trust", "-U", "postgres"], check=True, stdout=subprocess.DEVNULL)
            conf = {
                "port": str(self.port),
                "listen_addresses": "'127.0.0.1'",
                "unix_socket_directories": f"'{self.base}'",
                "hush.root_key_file": f"'{self.keyfile}'",
                "fsync": "off",
                "max_connections": "60",
                # Values stay out of the log even with log_statement = 'all' (docs/security.md,
                # "Keeping values out of logs").
                "log_parameter_max_length": "0",
                "log_parameter_max_length_on_error": "0",
            }
            conf.update(self.settings)
            with open(self.data / "postgresql.conf", "a") as f:
                f.write("\n# added by hush.devcluster\n")
                f.writelines(f"{k} = {v}\n" for k, v in conf.items())
            self.pg_ctl_start()
        return self

    def pg_ctl_start(self) -> None:
        """Start the server of an existing data directory (StartFailed with its log's tail if it does not)."""
        r = run_as_server([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                           "start"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            try:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            except OSError:
                tail = []
            raise StartFailed(f"PostgreSQL did not start in {self.data}: {r.stderr.strip()}\n" + "\n".join(tail))

    def pg_ctl_stop(self, mode: str = "fast") -> bool:
        """Stop the server; False if pg_ctl found none running."""
        return run_as_server([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def start_standby(self) -> "Cluster":
        """A streaming replica of this cluster (pg_basebackup -R), sharing its keyring."""
        sb = Cluster(settings=dict(self.settings))
        sb.keyfile, sb.key_lines = self.keyfile, self.key_lines
        with sb._removed_on_failure():
            sb._prepare_base()
            run_as_server([str(PG_BIN / "pg_basebackup"), "-D", str(sb.data), "-R", "-X", "stream",
                           "--checkpoint=fast", "-h", str(self.base), "-p", str(self.port), "-U", "postgres"],
                          check=True, stdout=subprocess.DEVNULL)
            with open(sb.data / "postgresql.conf", "a") as f:  # later lines win over the primary's
                f.write(f"\nport = {sb.port}\nunix_socket_directories = '{sb.base}'\n")
            sb.pg_ctl_start()
        return sb

    def running(self) -> bool:
        if not self.data.exists():
            return False
        return run_as_server([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def stop(self, remove: bool = True) -> None:
        if self.data.exists():
            self.pg_ctl_stop()
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
