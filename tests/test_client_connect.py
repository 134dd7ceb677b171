"""hush.connect() when the server is not there, restarts, or drops a connection mid-call:
a HushError that says why, within connect_timeout; reads retried once on another
connection; writes never re-sent (their commit may have happened)."""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Iterator

import psycopg
import pytest

import hush
import hush.aio
from hush import _exec, devcluster


@pytest.fixture(scope="module")
def own() -> Iterator[devcluster.Cluster]:
    """A cluster of this module's own, to restart: hush installed, alice a writer of acme."""
    c = devcluster.Cluster().start()
    try:
        with psycopg.connect(c.dsn(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION hush CASCADE")
            conn.execute("CREATE ROLE alice LOGIN IN ROLE hush_writer")
            conn.execute("SELECT hush.grant_tenant('alice', 'acme')")
        yield c
    finally:
        c.stop()


def test_nothing_listening_fails_at_once_with_the_reason() -> None:
    port = devcluster.free_port()
    with pytest.raises(hush.DatabaseUnavailable, match="refused") as e:
        hush.connect(f"host=127.0.0.1 port={port} dbname=x user=alice")
    assert e.value.hint and "HUSH_DSN" in e.value.hint


def test_a_server_that_never_answers_fails_within_connect_timeout() -> None:
    """A socket that accepts and says nothing (a hung server, a firewall that swallows):
    without a bound, the pool would wait its 30-second timeout and raise PoolTimeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        dsn = f"host=127.0.0.1 port={silent.getsockname()[1]} dbname=x user=alice"
        started = time.monotonic()
        with pytest.raises(hush.DatabaseUnavailable):
            hush.connect(dsn, connect_timeout=2)
        assert time.monotonic() - started < 8

        async def main() -> None:
            with pytest.raises(hush.DatabaseUnavailable):
                await hush.aio.connect(dsn, connect_timeout=2)
        asyncio.run(main())


def test_a_dsn_libpq_cannot_parse_is_invalid_input() -> None:
    with pytest.raises(hush.InvalidArgument, match="not valid"):
        hush.connect("hostt=localhost")


def test_calls_after_a_restart_succeed(own: devcluster.Cluster) -> None:
    with hush.connect(own.dsn(user="alice"), min_size=3) as client:
        acme = client.tenant("acme")
        acme.save("k", "v1")
        own.pg_ctl_stop()
        own.pg_ctl_start()
        assert acme.get("k").value == "v1"  # the pool's connections to the old server are replaced
        assert acme.save("k", "v2").version == 2


def test_async_calls_after_a_restart_succeed(own: devcluster.Cluster) -> None:
    async def main() -> None:
        async with await hush.aio.connect(own.dsn(user="alice"), min_size=3) as client:
            acme = client.tenant("acme")
            await acme.save("ak", "v1")
            own.pg_ctl_stop()
            own.pg_ctl_start()
            assert (await acme.get("ak")).value == "v1"
            assert (await acme.save("ak", "v2")).version == 2
    asyncio.run(main())


def kill_unnoticed(own: devcluster.Cluster, client: hush.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool's one connection is terminated in the instant after hush checked it: the
    call's statement then meets a dead connection."""
    with client.connection() as conn:
        pid = conn.info.backend_pid
    with psycopg.connect(own.dsn(), autocommit=True) as su:
        su.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    monkeypatch.setattr(_exec, "said_goodbye", lambda conn: False)


def test_a_read_whose_connection_dies_is_retried_once(own: devcluster.Cluster,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with hush.connect(own.dsn(user="alice"), min_size=1, max_size=1) as client:
        client.tenant("acme").save("r", "v")
        kill_unnoticed(own, client, monkeypatch)
        assert client.tenant("acme").get("r").value == "v"


def test_a_write_whose_connection_dies_is_not_resent(own: devcluster.Cluster,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with hush.connect(own.dsn(user="alice"), min_size=1, max_size=1) as client:
        acme = client.tenant("acme")
        acme.save("w", "v1")
        kill_unnoticed(own, client, monkeypatch)
        with pytest.raises(psycopg.OperationalError):
            acme.save("w", "v2")
        monkeypatch.undo()
        assert acme.get("w").version == 1  # not sent twice, and here not at all


@pytest.mark.parametrize("dsn", [
    "host=127.0.0.1 user=alice password=Zq9 Zq9Secretxx",               # an unquoted space: a parse error
    "postgresql://alice:Zq9Secret%zz@127.0.0.1/x",                       # a bad percent-escape
    "postgresql://alice:ab@Zq9Secret@127.0.0.1/x",                       # an unencoded '@'
    "postgresql://alice:Zq9Secret@no-such-host.invalid/x",               # a host that does not resolve
], ids=["kv-space", "url-escape", "url-at", "url-host"])
def test_a_failing_dsn_never_shows_its_password(dsn: str) -> None:
    for connect in (hush.connect, lambda d: asyncio.run(hush.aio.connect(d))):
        with pytest.raises((hush.DatabaseUnavailable, hush.InvalidArgument)) as e:
            connect(dsn)
        shown = f"{e.value} {e.value!r} {e.value.hint}"
        assert "Zq9Secret" not in shown, shown


def test_the_cli_never_shows_a_dsn_password() -> None:
    from test_cli import invoke
    for dsn in ("host=127.0.0.1 user=alice password=Zq9 Zq9Secretxx", "postgresql://alice:ab@Zq9Secret@127.0.0.1/x"):
        r = invoke("ls", "acme", env={"HUSH_DSN": dsn})
        assert r.returncode == 9 and "Zq9Secret" not in r.stderr + r.stdout, r.stderr
