"""hush through a real pgbouncer 1.18 in transaction mode, with concurrency: the pooled
client, hush.Secrets over your own connection, asyncio, SQLAlchemy, the CLI and the OAuth
worker. Each transaction may land on another server connection, so nothing may rely on
prepared statements, LISTEN or session settings surviving between transactions."""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import psycopg
import pytest

import hush
import hush.aio
from test_cli import hush as hush_cli, ok

THREADS = 8
CALLS = 50


def hammer(work: Callable[[int, int], None]) -> list[BaseException]:
    """work(thread, i) CALLS times in each of THREADS threads; the exceptions raised."""
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        for i in range(CALLS):
            try:
                work(t, i)
            except Exception as e:  # noqa: BLE001 - counted, then asserted on
                with lock:
                    errors.append(e)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    return errors


def secret_calls(s: Any, t: int, i: int) -> None:
    """One of each kind of call, on a name of this thread's: write, read, list, exists."""
    name = f"t{t}/k{i % 5}"
    saved = s.save(name, f"value-{t}-{i}")
    assert s.get(name).version == saved.version
    assert s.exists(name)
    assert len(s.list(prefix=f"t{t}/").data) >= 1


def test_the_fixture_really_moves_transactions_between_server_connections(db: Any, pgbouncer: Any) -> None:
    """What the tests below guard against: psycopg's prepared statements, made on one
    server connection, are missing on the next (pgbouncer reuses the most recent idle one,
    so another client's open transaction pushes this one to a second server connection)."""
    with psycopg.connect(pgbouncer.dsn(db.name, "alice"), autocommit=True, prepare_threshold=0) as c1, \
            psycopg.connect(pgbouncer.dsn(db.name, "alice"), autocommit=True) as c2:
        c1.execute("SELECT 1")
        with c2.transaction():
            c2.execute("SELECT 1")
            with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                c1.execute("SELECT 1")


def test_the_pooled_client_through_pgbouncer(db: Any, pgbouncer: Any) -> None:
    with hush.connect(pgbouncer.dsn(db.name, "alice"), max_size=THREADS) as client:
        acme = client.tenant("acme")
        assert hammer(lambda t, i: secret_calls(acme, t, i)) == []
        assert acme.get("t0/k0").value.startswith("value-0-")
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE tenant_id = 'acme'")[0][0] == THREADS * 5


def test_secrets_over_your_own_connections_through_pgbouncer(db: Any, pgbouncer: Any) -> None:
    """Your connections keep psycopg's defaults (statements prepared after 5 runs): hush's
    own statements are never prepared, so they survive the pooler; yours are yours."""
    conns = [psycopg.connect(pgbouncer.dsn(db.name, "alice"), autocommit=True) for _ in range(THREADS)]
    try:
        assert hammer(lambda t, i: secret_calls(hush.Secrets(conns[t], "acme"), t, i)) == []
    finally:
        for c in conns:
            c.close()


def test_the_async_client_through_pgbouncer(db: Any, pgbouncer: Any) -> None:
    async def main() -> None:
        async with await hush.aio.connect(pgbouncer.dsn(db.name, "alice"), max_size=THREADS) as client:
            acme = client.tenant("acme")

            async def task(t: int) -> None:
                for i in range(CALLS):
                    saved = await acme.save(f"a{t}", f"v{i}")
                    assert (await acme.get(f"a{t}")).version == saved.version
                    assert await acme.exists(f"a{t}")
            await asyncio.gather(*(task(t) for t in range(THREADS)))
            assert (await acme.get("a3")).value == f"v{CALLS - 1}"
    asyncio.run(main())


def test_sqlalchemy_sessions_through_pgbouncer(db: Any, pgbouncer: Any) -> None:
    """An engine for pgbouncer turns psycopg's preparation off (prepare_threshold=None, as the
    docs say); hush.Secrets(session) joins the session's transaction."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(f"postgresql+psycopg://alice@127.0.0.1:{pgbouncer.port}/{db.name}",
                           connect_args={"prepare_threshold": None}, pool_size=THREADS)
    try:
        def work(t: int, i: int) -> None:
            with Session(engine) as session:
                s = hush.Secrets(session, "acme")
                s.save(f"sa{t}", f"v{i}")
                assert s.get(f"sa{t}").value == f"v{i}"
                if i % 2:
                    session.rollback()  # the save goes with it
                else:
                    session.commit()
        assert hammer(work) == []
        with Session(engine) as session:
            assert hush.Secrets(session, "acme").get("sa0").value == f"v{CALLS - 2}"  # the last committed
    finally:
        engine.dispose()


def test_the_cli_through_pgbouncer(db: Any, pgbouncer: Any, tmp_path: Any) -> None:
    env = {"HUSH_DSN": pgbouncer.dsn(db.name, "alice")}
    lines = "".join(f"K{i}=v{i}\n" for i in range(30))
    ok(hush_cli(db, "import", "acme", "-", input=lines, env=env))
    for _ in range(8):  # more than psycopg's 5 runs before it would prepare
        out = ok(hush_cli(db, "export", "acme", env=env)).stdout
        assert "K29=v29" in out
        assert ok(hush_cli(db, "get", "acme", "K7", env=env)).stdout.strip() == "v7"


def test_the_oauth_worker_knows_wakeups_do_not_pass_pgbouncer(db: Any, pgbouncer: Any,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """Behind the pooler the worker's own probe notification never comes back: it says so
    and keeps to due times; a direct listen DSN brings the wake-ups back."""
    from hush._oauth_worker import OAuthWorker

    behind = OAuthWorker(pgbouncer.dsn(db.name, "wendy"))
    with caplog.at_level(logging.WARNING, logger="hush.oauth_worker"):
        assert behind.listen() is None
    assert "do not arrive" in caplog.text
    behind.close()

    direct = OAuthWorker(pgbouncer.dsn(db.name, "wendy"), listen_conninfo=db.dsn("wendy"))
    listener = direct.listen()
    assert listener is not None
    with db.connect("wendy") as other:
        other.execute("NOTIFY hush_oauth_wakeup")
    assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == ["hush_oauth_wakeup"]
    listener.close()
    direct.close()


def test_set_local_role_through_pgbouncer_stays_in_its_transaction(db: Any, pgbouncer: Any) -> None:
    """The docs' rule behind a transaction pooler: SET LOCAL ROLE, never SET ROLE. The
    role acts (and is audited) inside the transaction only; the next transaction, on
    whatever server connection, is the login role again."""
    db.sql("SELECT hush.save_secret('acme', 'k', 'v')", user="alice")
    with psycopg.connect(pgbouncer.dsn(db.name, "gateway"), autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SET LOCAL ROLE acme_app")
            assert hush.Secrets(conn, "acme").get("k").value == "v"
        assert conn.execute("SELECT current_user").fetchone() == ("gateway",)
        with pytest.raises(hush.PermissionDenied):  # gateway itself holds no hush role
            hush.Secrets(conn, "acme").get("k")
    assert db.sql("SELECT db_role FROM hush.audit_log WHERE action = 'read' ORDER BY id DESC LIMIT 1") == [
        ("acme_app",)]
