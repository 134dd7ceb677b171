"""`--only oauth`: hush.oauth_access_token beside get_secret, and the refreshes per
second one hush oauth-worker sustains against the tests' loopback OAuth server."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from common import SCRIPTS, pgbench
from hush import devcluster as pgcluster


def _oauth_server_process(conn: Any, tests: str) -> None:
    """The body of OAuthServerProcess's child: the tests' loopback server, driven over a pipe."""
    import logging
    sys.path.insert(0, tests)
    from oauth_server import OAuthServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = OAuthServer().start()
    conn.send(srv.issuer)
    while True:
        what, arg = conn.recv()
        if what == "add_client":
            srv.add_client(*arg)
            conn.send(None)
        elif what == "mint":
            client, users, lifetime = arg
            conn.send([srv.mint(client, user, lifetime) for user in users])
        else:
            srv.stop()
            conn.send(None)
            return


class OAuthServerProcess:
    """tests/oauth_server.py in a process of its own, as a provider is: in a thread of the
    benchmark's process it shares the worker's interpreter lock, and any requests sent at
    once then wait for each other's Python there (four threads sending bare requests to it
    get ~0.75 of what one thread sending them one at a time does, measured on this machine)."""

    def __init__(self) -> None:
        import multiprocessing
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_oauth_server_process, daemon=True,
                                 args=(child, str(Path(__file__).resolve().parent.parent / "tests")))
        self._proc.start()
        self.issuer = str(self._conn.recv())

    def _call(self, what: str, arg: Any) -> Any:
        self._conn.send((what, arg))
        return self._conn.recv()

    def url(self, path: str) -> str:
        return self.issuer + path

    def add_client(self, client_id: str, secret: str) -> None:
        self._call("add_client", (client_id, secret))

    def mint_many(self, client: str, users: list[str], lifetime: int) -> list[dict[str, Any]]:
        minted: list[dict[str, Any]] = self._call("mint", (client, users, lifetime))
        return minted

    def stop(self) -> None:
        self._call("stop", None)
        self._proc.join(10)


def oauth_rows(c: pgcluster.Cluster, n: int, seconds: int) -> list[tuple[int, str, float, float, float, str]]:
    """hush.oauth_access_token beside get_secret and a plain SELECT (pgbench, read audit off), and
    the refreshes per second one worker sustains against the loopback OAuth server of the tests,
    beside the same refreshes sent straight to its token endpoint."""
    import json
    import logging

    import httpx2

    import hush
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from oauth_server import OAuthServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    out: list[tuple[int, str, float, float, float, str]] = []
    srv = OAuthServer().start()
    srv.add_client("bench", "bench-secret")
    try:
        with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
            su.execute("CREATE ROLE bench_worker LOGIN IN ROLE hush_oauth_worker")
            su.execute("SELECT hush.grant_tenant('bench_worker', 'bench')")
        with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as adm:
            adm.execute("SELECT hush.configure_tenant('bench', audit_reads => false)")
            # The loopback server answers over plain http, which hush refuses unless an admin allows it.
            adm.execute("SELECT hush.oauth_allow_egress('127.0.0.1', allow_http => true, allow_private => true)")
        with psycopg.connect(c.dsn("bench", user="bench_app"), autocommit=True) as app:
            app.execute("SELECT hush.oauth_save_provider('bench', 'crm', %s, 'bench-secret')",
                        [json.dumps({"client_id": "bench", "token_endpoint": srv.url("/token")})])
            print(f"  {n:,} OAuth connections ...", file=sys.stderr, flush=True)
            with app.transaction(), app.cursor() as cur:
                cur.executemany("SELECT hush.oauth_store_tokens('bench', 'crm', %s, 'authorization_code', %s)",
                                [(f"u{i}", json.dumps(srv.mint("bench", f"user{i}", 3600))) for i in range(1, n + 1)])
        got: dict[str, float] = {}
        for name, script, base in (
                ("plain SELECT by name (baseline 1)", SCRIPTS["plain SELECT by name (baseline 1)"], None),
                ("hush.get_secret, read audit off", SCRIPTS["hush.get_secret, read audit off"],
                 "plain SELECT by name (baseline 1)"),
                ("hush.oauth_access_token, read audit off",
                 "\\set i random(1, :n)\nSELECT hush.oauth_access_token('bench', 'crm', 'u' || :i);\n",
                 "hush.get_secret, read audit off")):
            print(f"  {n:,} connections: {name} ...", file=sys.stderr, flush=True)
            tps, p50, p99 = pgbench(c, script, seconds, n)
            got[name] = tps
            out.append((n, name, tps, p50, p99, f"{tps / got[base]:.2f}" if base else ""))
        def refresh_rows(count: int, delay: float, base: str, apart: OAuthServerProcess | None = None) -> None:
            """One worker refreshing `count` connections due at once (one round), then as many bare
            refresh requests sent straight to the token endpoint one at a time (the baseline); the
            server taking `delay` seconds to answer each (0: as fast as the loopback goes). The
            worker sends per_host requests at once: the loopback server is one host. `apart`: the
            server in a process of its own (provider crm-apart), else the one in this process (crm)."""
            provider = "crm" if apart is None else "crm-apart"
            with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
                su.execute("UPDATE hush.oauth_connections SET expires_at = now() + interval '1 minute', "
                           "refreshed_at = now() - interval '59 minutes' "  # an hour-long token, a minute left
                           "WHERE provider = %s AND substr(account, 2)::int <= %s", [provider, count])
            latency = f" (the endpoint answering in {delay * 1000:.0f} ms)" if delay else ""
            latency += " (the server in a process of its own)" if apart is not None else ""
            print(f"  {count:,} connections: one worker refreshing them all{latency} ...", file=sys.stderr, flush=True)
            srv.control.token_delay = delay
            worker = hush.OAuthWorker(c.dsn("bench", user="bench_worker"), batch_size=200)  # otherwise its defaults
            t0 = time.perf_counter()
            done = worker.run_once()
            took = time.perf_counter() - t0
            worker.close()
            if apart is None:
                fresh = [srv.mint("bench", f"user{i}", 3600)["refresh_token"] for i in range(count)]
            else:
                fresh = [t["refresh_token"] for t in apart.mint_many("bench", [f"user{i}" for i in range(count)], 3600)]
            url = (srv if apart is None else apart).url("/token")
            t0 = time.perf_counter()
            with httpx2.Client(auth=("bench", "bench-secret")) as http:
                for rt in fresh:
                    body = {"grant_type": "refresh_token", "refresh_token": rt}
                    http.post(url, data=body).raise_for_status()
            raw = count / (time.perf_counter() - t0)
            srv.control.token_delay = 0.0
            out.append((count, f"loopback token endpoint alone{latency}, refresh requests one at a time ({base})",
                        raw, 0.0, 0.0, ""))
            out.append((count, f"hush oauth-worker{latency}, {worker.per_host} at once to the one host: refreshes/s "
                               f"({done['refreshed']:,} refreshed)", done["refreshed"] / took,
                        0.0, 0.0, f"{done['refreshed'] / took / raw:.2f}"))

        refresh_rows(n, 0.0, "baseline 7")
        # A provider's token endpoint is a network round trip away: tens of milliseconds.
        refresh_rows(min(n, 400), 0.02, "baseline 7b")
        # A provider is not in the worker's process: the same, the server in a process of its own.
        apart = OAuthServerProcess()
        try:
            apart.add_client("bench", "bench-secret")
            with psycopg.connect(c.dsn("bench", user="bench_app"), autocommit=True) as app:
                app.execute("SELECT hush.oauth_save_provider('bench', 'crm-apart', %s, 'bench-secret')",
                            [json.dumps({"client_id": "bench", "token_endpoint": apart.url("/token")})])
                minted = apart.mint_many("bench", [f"user{i}" for i in range(1, n + 1)], 3600)
                with app.transaction(), app.cursor() as cur:
                    cur.executemany("SELECT hush.oauth_store_tokens('bench', 'crm-apart', %s, 'authorization_code', %s)",
                                    [(f"u{i}", json.dumps(t)) for i, t in enumerate(minted, 1)])
            refresh_rows(n, 0.0, "baseline 7c", apart)
        finally:
            apart.stop()
    finally:
        srv.stop()
    return out
