"""A tarpit: a loopback TCP server that accepts every connection, reads what it
is sent, and never answers, the way a hostile (or broken) OAuth provider holds a
refresh request open until the client's read timeout. Tests assert by its
counts, not by elapsed time: how many connections are open now (accepted and
not yet closed by the client), the most ever open at once, how many came."""
from __future__ import annotations

import selectors
import socket
import threading
import time


class Tarpit:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0), backlog=1024)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.accepted = 0
        self.most_open = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="tarpit", daemon=True)

    def start(self) -> Tarpit:
        self._thread.start()
        return self

    def url(self, path: str = "/token", host: str = "127.0.0.1") -> str:
        """Its address under `host`: by default 127.0.0.1, the loopback OAuth server's host
        name, another port: the worker's slots are a tenant's own and by origin (scheme, host
        and port), so a tarpit on a healthy provider's host name must stall nobody else."""
        return f"http://{host}:{self.port}{path}"

    @property
    def open(self) -> int:
        with self._lock:
            return len(self._open)

    def wait_open(self, n: int, timeout: float = 30.0) -> bool:
        """Until at least n connections are held open (False if that never happens in time)."""
        deadline = time.monotonic() + timeout
        while self.open < n:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _serve(self) -> None:
        while not self._stopped:
            for key, _ in self._sel.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    try:
                        conn, _addr = self._listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    self._sel.register(conn, selectors.EVENT_READ)
                    with self._lock:
                        self._open.add(conn)
                        self.accepted += 1
                        self.most_open = max(self.most_open, len(self._open))
                    continue
                try:
                    data = sock.recv(65536)  # the request: read and ignored, never answered
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:  # the client gave up (its read timeout) and closed
                    self._sel.unregister(sock)
                    sock.close()
                    with self._lock:
                        self._open.discard(sock)

    def stop(self) -> None:
        self._stopped = True
        self._thread.join(timeout=5)
        with self._lock:
            for conn in self._open:
                conn.close()
            self._open.clear()
        self._listener.close()
