"""`make bench`: hush's read and write paths against plain-SQL baselines, on a
throwaway cluster, measured in the same run with pgbench (2 clients,
prepared statements). Prints one table: ops/s, p50/p99 latency, and each hush
row's ratio to its baseline. Not part of the test suite: speed is measured
here, never asserted in tests.

    python bench/run.py [--sizes 1000,100000,1000000] [--seconds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from hush import devcluster as pgcluster  # noqa: E402

TENANT = "bench"
BATCH = 5000
VALUE = "v" * 40  # a 40-byte secret, e.g. an API key

SETUP = """
CREATE EXTENSION hush CASCADE;
CREATE ROLE bench_app LOGIN IN ROLE hush_writer;
CREATE ROLE bench_admin LOGIN IN ROLE hush_admin;
SELECT hush.grant_tenant('bench_app', 'bench');
-- The monthly partitions the maintenance schedule keeps ahead (the DEFAULT one is a safety net).
SELECT count(*) FROM hush.create_audit_partitions(1);
CREATE SCHEMA plain;
-- The baselines: the same shape as hush's rows, no encryption, tenants or audit.
CREATE TABLE plain.secrets (tenant_id text, name text, value bytea, PRIMARY KEY (tenant_id, name));
CREATE TABLE plain.audit (id bigserial PRIMARY KEY, tenant_id text, name text, at timestamptz DEFAULT clock_timestamp(),
                          db_role name DEFAULT session_user, txid bigint DEFAULT txid_current());
CREATE TABLE plain.inserts (id bigserial PRIMARY KEY, tenant_id text, name text, value bytea);
GRANT USAGE ON SCHEMA plain TO bench_app;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA plain TO bench_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA plain TO bench_app;
"""

# name -> (pgbench script, baseline row name or None, how the ratio is taken)
SCRIPTS = {
    "plain SELECT by name (baseline 1)":
        "\\set i random(1, :n)\nSELECT value FROM plain.secrets WHERE tenant_id = 'bench' AND name = 's' || :i;\n",
    "hush.get_secret, read audit off":
        "\\set i random(1, :n)\nSELECT value FROM hush.get_secret('bench', 's' || :i);\n",
    "plain SELECT + audit INSERT, one transaction (baseline 2)":
        "\\set i random(1, :n)\nBEGIN;\nSELECT value FROM plain.secrets WHERE tenant_id = 'bench' AND name = 's' || :i;\n"
        "INSERT INTO plain.audit (tenant_id, name) VALUES ('bench', 's' || :i);\nEND;\n",
    # What a read record committed apart from the reader's transaction is like: the INSERT commits on its own.
    "plain SELECT, then audit INSERT committed on its own (baseline 2b)":
        "\\set i random(1, :n)\nSELECT value FROM plain.secrets WHERE tenant_id = 'bench' AND name = 's' || :i;\n"
        "INSERT INTO plain.audit (tenant_id, name) VALUES ('bench', 's' || :i);\n",
    "hush.get_secret, read audit on":
        "\\set i random(1, :n)\nSELECT value FROM hush.get_secret('bench', 's' || :i);\n",
    "hush.get_secrets, 20 names, read audit on (per secret)":
        "\\set i random(1, :n - 20)\nSELECT count(*) FROM hush.get_secrets('bench', "
        "ARRAY(SELECT 's' || (:i + g) FROM generate_series(0, 19) g));\n",
    "hush.get_secrets, 20 names (per secret)":
        "\\set i random(1, :n - 20)\nSELECT count(*) FROM hush.get_secrets('bench', "
        "ARRAY(SELECT 's' || (:i + g) FROM generate_series(0, 19) g));\n",
    "plain INSERT (baseline 3)":
        "\\set i random(1, :n)\nINSERT INTO plain.inserts (tenant_id, name, value) "
        "VALUES ('bench', 's' || :i, convert_to(:v, 'UTF8'));\n",
    "hush.save_secret, new version":
        "\\set i random(1, :n)\nSELECT version FROM hush.save_secret('bench', 's' || :i, :v);\n",
}
RATIOS = {  # row -> the row it is divided by
    "hush.get_secret, read audit off": "plain SELECT by name (baseline 1)",
    "hush.get_secret, read audit on": "plain SELECT, then audit INSERT committed on its own (baseline 2b)",
    "hush.get_secrets, 20 names, read audit on (per secret)": "hush.get_secret, read audit on",
    "hush.get_secrets, 20 names (per secret)": "hush.get_secret, read audit off",
    "hush.save_secret, new version": "plain INSERT (baseline 3)",
}
LIST_SCRIPTS = {
    "hush.list_secrets, first page of 50":
        "SELECT count(*) FROM hush.list_secrets('bench', 1, 50);\n",
    "hush.list_secrets, deep page (keyset, after s90000)":
        "SELECT count(*) FROM hush.list_secrets('bench', per_page => 50, after => 's90000');\n",
    "hush.list_secrets, deep page (page 1800 by offset)":
        "SELECT count(*) FROM hush.list_secrets('bench', 1800, 50);\n",
}


def load(c: pgcluster.Cluster, have: int, want: int) -> None:
    """Top the tenant up from `have` to `want` secrets through the bulk path."""
    t0 = time.monotonic()
    with psycopg.connect(c.dsn("bench", user="bench_app"), autocommit=True) as conn:
        for start in range(have + 1, want + 1, BATCH):
            stop = min(start + BATCH, want + 1)
            names = [f"s{i}" for i in range(start, stop)]
            conn.execute("SELECT count(*) FROM hush.save_secrets(%s, %s, %s)", [TENANT, names, [VALUE] * len(names)])
            conn.execute("INSERT INTO plain.secrets SELECT 'bench', 's' || i, convert_to(%s, 'UTF8')"
                         " FROM generate_series(%s::int, %s::int) i", [VALUE, start, stop - 1])
            done = stop - 1
            rate = (done - have) / max(time.monotonic() - t0, 1e-9)
            print(f"\r  loading: {done:,}/{want:,} secrets ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
    with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
        su.execute("VACUUM ANALYZE")
    print(file=sys.stderr)


def pgbench(c: pgcluster.Cluster, script: str, seconds: int, n: int, role: str = "bench_app") -> tuple[float, float, float]:
    """pgbench of `script` as `role`, 2 clients: (tps, p50 ms, p99 ms)."""
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "script.sql"
        f.write_text(script)
        r = c.run_bin("pgbench", "-n", "-M", "prepared", "-c", "2", "-j", "2", "-T", str(seconds),
                      "-D", f"n={n}", "-D", f"v={VALUE}", "-l", "--log-prefix", f"{d}/log", "-f", str(f),
                      "-U", role, "bench", capture_output=True, text=True)
        # run_bin passes -U postgres first; pgbench takes the last -U.
        if r.returncode != 0:
            raise SystemExit(f"pgbench failed:\n{r.stdout}\n{r.stderr}")
        tps = next(float(line.split("=")[1].split()[0]) for line in r.stdout.splitlines()
                   if line.startswith("tps =") and "without" in line)
        lat = sorted(int(line.split()[2]) for p in Path(d).glob("log.*") for line in p.read_text().splitlines())
    q = statistics.quantiles(lat, n=100)
    return tps, q[49] / 1000, q[98] / 1000


def rewrap_rows(c: pgcluster.Cluster, n: int, seconds: int, idle: float) -> list[tuple[str, float, float, float, str]]:
    """Rotate to the other root key and CALL hush.rewrap over all n data keys: alone,
    then beside pgbench reading (audit off), then beside it with a pause between batches."""
    import threading

    def rotate(adm: psycopg.Connection) -> None:
        keys = adm.execute("SELECT key_id, state FROM hush.root_key_status()").fetchall()
        target = next(k for k, state in keys if state != "active")
        adm.execute("SELECT hush.add_root_key(%s)", [target])
        adm.execute("SELECT hush.activate_root_key(%s)", [target])

    def rewrap(pause: int, took: list[float]) -> None:
        with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as conn:
            t0 = time.monotonic()
            conn.execute("CALL hush.rewrap(1000, %s)", [pause])
            took.append(time.monotonic() - t0)

    out: list[tuple[str, float, float, float, str]] = []
    with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as adm:
        adm.execute("SELECT hush.configure_tenant('bench', audit_reads => false)")
        print(f"  {n:,} secrets: rewrap alone ...", file=sys.stderr, flush=True)
        rotate(adm)
        took: list[float] = []
        rewrap(0, took)
        out.append(("hush.rewrap alone, batches of 1,000 (data keys/s)", n / took[0], 0.0, 0.0, ""))
        for pause in (0, 100):
            rotate(adm)
            took = []
            print(f"  {n:,} secrets: rewrap (pause {pause} ms) beside get_secret ...", file=sys.stderr, flush=True)
            th = threading.Thread(target=rewrap, args=(pause, took))
            th.start()
            tps, p50, p99 = pgbench(c, SCRIPTS["hush.get_secret, read audit off"], seconds, n)
            th.join()
            out.append((f"hush.rewrap beside get_secret, pause {pause} ms (data keys/s)", n / took[0], 0.0, 0.0, ""))
            out.append((f"hush.get_secret during that rewrap, audit off ({took[0]:.0f} s of rewrap, {seconds} s read)",
                        tps, p50, p99, f"{tps / idle:.2f}"))
    return out


def python_rounds(c: pgcluster.Cluster, n: int, seconds: int) -> list[tuple[str, float, float, float, str]]:
    """One Python thread calling get_secret many ways, interleaved call by call: raw
    psycopg (the baselines), the pooled client, and hush.Secrets over the caller's
    connection; with psycopg's prepared statements and without (hush's default), direct
    and through pgbouncer in transaction mode. Each hush row's ratio is to raw psycopg on
    the same kind of connection. Read auditing is off, so the commit flush does not hide
    the wrapper's own cost."""
    import random
    from contextlib import ExitStack

    import hush
    from hush._exec import PsycopgExecutor
    from hush.devpooler import PgBouncer

    rnd = random.Random(7)
    raw_sql = "SELECT * FROM hush.get_secret(%s, %s, %s)"
    bouncer = PgBouncer(c, ["bench_app"], pool_size=4).start()
    dsn, via = c.dsn("bench", user="bench_app"), bouncer.dsn("bench", "bench_app")
    with ExitStack() as stack:
        # Each way has its own connection (its own backend): interleaved calls then all
        # pay the same wake-up of a backend that sat idle while the others ran.
        def conn(d: str, prepare: bool) -> psycopg.Connection:
            return stack.enter_context(psycopg.connect(d, autocommit=True,
                                                       **({} if prepare else {"prepare_threshold": None})))

        def raw(d: str, prepare: bool):  # type: ignore[no-untyped-def]
            cx = conn(d, prepare)
            return lambda name: cx.execute(raw_sql, [TENANT, name, None]).fetchone()

        def pooled(d: str, prepare: bool):  # type: ignore[no-untyped-def]
            return stack.enter_context(hush.connect(d, min_size=1, max_size=1, prepare=prepare)).tenant(TENANT).get

        def own(d: str, prepare: bool):  # type: ignore[no-untyped-def]
            return hush.Secrets(PsycopgExecutor(conn(d, prepare), prepare), TENANT).get

        b4, b4u, b4b = ("python: psycopg, prepared (baseline 4)", "python: psycopg, not prepared (baseline 4u)",
                        "python: psycopg through pgbouncer, not prepared (baseline 4b)")
        ways = {  # label -> (call, baseline)
            b4: (raw(dsn, True), None),
            b4u: (raw(dsn, False), None),
            b4b: (raw(via, False), None),
            "python: client.tenant(t).get, pooled (default: not prepared)": (pooled(dsn, False), b4u),
            "python: hush.Secrets(conn, t).get (default: not prepared)": (own(dsn, False), b4u),
            "python: client.tenant(t).get, pooled, prepare=True": (pooled(dsn, True), b4),
            "python: hush.Secrets(conn, t).get, HUSH_PREPARE=1": (own(dsn, True), b4),
            "python: client.tenant(t).get, pooled, through pgbouncer": (pooled(via, False), b4b),
            "python: hush.Secrets(conn, t).get, through pgbouncer": (own(via, False), b4b),
        }
        lat: dict[str, list[float]] = {k: [] for k in ways}
        for fn, _ in ways.values():  # warm-up: psycopg prepares a statement after its 5th run
            for _ in range(200):
                fn(f"s{rnd.randint(1, n)}")
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            name = f"s{rnd.randint(1, n)}"
            order = list(ways.items())
            rnd.shuffle(order)  # call by call, in a random order, so drift and noise hit all alike
            for label, (fn, _) in order:
                t0 = time.perf_counter()
                fn(name)
                lat[label].append(time.perf_counter() - t0)
    bouncer.stop()
    ops = {label: len(xs) / sum(xs) for label, xs in lat.items()}
    out = []
    for label, xs in lat.items():
        q = statistics.quantiles(xs, n=100)
        base = ways[label][1]
        out.append((label, ops[label], q[49] * 1000, q[98] * 1000, f"{ops[label] / ops[base]:.2f}" if base else ""))
    return out


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


def first_call_ms(c: pgcluster.Cluster, connections: int = 20) -> tuple[float, float]:
    """Backend CPU (ms) of the first plain SELECT and of the first hush.get_secret on a new
    connection, medians over `connections` connections: the start-up a pooled connection pays
    once. Read from the backend's /proc/<pid>/schedstat (this machine's server)."""
    def cpu(pid: int) -> float:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6
    plain, first = [], []
    for _ in range(connections):
        with psycopg.connect(c.dsn("bench", user="bench_app"), autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            t0 = cpu(pid)
            conn.execute("SELECT value FROM plain.secrets WHERE tenant_id = 'bench' AND name = 's1'").fetchall()
            t1 = cpu(pid)
            conn.execute("SELECT value FROM hush.get_secret('bench', 's1')").fetchall()
            plain.append(t1 - t0)
            first.append(cpu(pid) - t1)
    return statistics.median(plain), statistics.median(first)


def authority_rows(c: pgcluster.Cluster, n: int, seconds: int) -> list[tuple[int, str, float, float, float, str]]:
    """What the invoker model costs where it could: a tenant holding 200 versions per secret
    beside one with one each (reads stay index lookups, plans stay put), a transaction pooler
    switching roles with SET LOCAL ROLE (row security re-plans when the role changes), and a
    new connection's first call. Read auditing off."""
    out: list[tuple[int, str, float, float, float, str]] = []
    many = 100
    with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
        su.execute("CREATE ROLE bench_app2 LOGIN IN ROLE hush_writer")
        su.execute("GRANT bench_app2 TO bench_app")
        for role in ("bench_app", "bench_app2"):
            su.execute("SELECT hush.grant_tenant(%s, 'versions')", [role])
        su.execute("SELECT hush.grant_tenant('bench_app2', 'bench')")
    with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as adm:
        for t in ("bench", "versions"):
            adm.execute("SELECT hush.configure_tenant(%s, audit_reads => false)", [t])
    print(f"  {many} secrets x 200 versions in tenant 'versions' ...", file=sys.stderr, flush=True)
    with psycopg.connect(c.dsn("bench", user="bench_app"), autocommit=True) as app:
        names = [f"v{i}" for i in range(1, many + 1)]
        for _ in range(200):
            app.execute("SELECT count(*) FROM hush.save_secrets('versions', %s, %s)", [names, [VALUE] * many])
    with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
        su.execute("VACUUM ANALYZE")
    rows = {
        "hush.get_secret, 1 version (another tenant: 200 per secret)":
            ("\\set i random(1, :n)\nSELECT value FROM hush.get_secret('bench', 's' || :i);\n", None),
        "hush.get_secret, latest of 200 versions":
            (f"\\set i random(1, {many})\nSELECT value FROM hush.get_secret('versions', 'v' || :i);\n",
             "hush.get_secret, 1 version (another tenant: 200 per secret)"),
        "get_secret in BEGIN; SET LOCAL ROLE r; ... (one role)":
            ("\\set i random(1, :n)\nBEGIN;\nSET LOCAL ROLE bench_app2;\n"
             "SELECT value FROM hush.get_secret('bench', 's' || :i);\nEND;\n", None),
        "get_secret in BEGIN; SET LOCAL ROLE r; ... (two roles, alternating)":
            ("\\set i random(1, :n)\n\\set r random(0, 1)\nBEGIN;\n\\if :r\nSET LOCAL ROLE bench_app2;\n\\else\n"
             "SET LOCAL ROLE bench_app;\n\\endif\nSELECT value FROM hush.get_secret('bench', 's' || :i);\nEND;\n",
             "get_secret in BEGIN; SET LOCAL ROLE r; ... (one role)"),
    }
    got: dict[str, float] = {}
    for name, (script, base) in rows.items():
        print(f"  {n:,} secrets: {name} ...", file=sys.stderr, flush=True)
        tps, p50, p99 = pgbench(c, script, seconds, n)
        got[name] = tps
        out.append((n, name, tps, p50, p99, f"{tps / got[base]:.2f}" if base else ""))
    plain, first = first_call_ms(c)
    out.append((n, "first plain SELECT on a new connection, backend CPU (ms)", plain, 0.0, 0.0, ""))
    out.append((n, "first hush.get_secret on a new connection, backend CPU (ms)", first, 0.0, 0.0,
                f"+{first - plain:.1f} ms"))
    return out


def standby_rows(c: pgcluster.Cluster, n: int, seconds: int) -> list[tuple[int, str, float, float, float, str]]:
    """Reads on a streaming standby (pg_basebackup -R, nothing else configured) beside the same
    reads on the primary: audited (the record committed on the primary over the standby's
    recorder connection) and not; then what a new connection's first audited read costs
    (the recorder's connection opened on it)."""
    out: list[tuple[int, str, float, float, float, str]] = []
    sb = c.start_standby()
    try:
        with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
            lsn = su.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        for _ in range(600):
            with psycopg.connect(sb.dsn("bench"), autocommit=True) as s:
                if s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0]:
                    break
            time.sleep(0.1)
        script = SCRIPTS["hush.get_secret, read audit on"]
        for audit in (True, False):
            with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as adm:
                adm.execute("SELECT hush.configure_tenant('bench', audit_reads => %s)", [audit])
            time.sleep(0.5)  # replayed on the standby
            label = "read audit on" if audit else "read audit off"
            print(f"  {n:,} secrets: get_secret, {label}, primary and standby ...", file=sys.stderr, flush=True)
            p_tps, p50, p99 = pgbench(c, script, seconds, n)
            out.append((n, f"hush.get_secret on the primary, {label}", p_tps, p50, p99, ""))
            s_tps, p50, p99 = pgbench(sb, script, seconds, n)
            out.append((n, f"hush.get_secret on a standby, {label}", s_tps, p50, p99, f"{s_tps / p_tps:.2f}"))
        # The recorder's connection, opened by a backend's first audited read: first calls of new
        # connections with read auditing off, then on (wall time, PL/Python's start-up in both).
        first: dict[tuple[str, bool], float] = {}
        for audit in (False, True):
            with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as adm:
                adm.execute("SELECT hush.configure_tenant('bench', audit_reads => %s)", [audit])
            time.sleep(0.5)
            for node, where in ((c, "primary"), (sb, "standby")):
                took = []
                for _ in range(20):
                    with psycopg.connect(node.dsn("bench", user="bench_app"), autocommit=True) as conn:
                        t0 = time.perf_counter()
                        conn.execute("SELECT value FROM hush.get_secret('bench', 's1')")
                        took.append((time.perf_counter() - t0) * 1000)
                first[where, audit] = statistics.median(took)
        for where in ("primary", "standby"):
            off, on = first[where, False], first[where, True]
            out.append((n, f"first get_secret of a new connection on the {where}, audit off, wall (ms)", off,
                        0.0, 0.0, ""))
            out.append((n, f"first get_secret of a new connection on the {where}, audit on, wall (ms)", on,
                        0.0, 0.0, f"+{on - off:.1f} ms"))
    finally:
        sb.stop()
    return out


# One secret per pgbench client, saved again and again: without retention, and with
# max_versions => 5 set on the secret beforehand (from the sixth save on, each save destroys
# the version that fell out). The same statement in both: the difference is retention's.
RETENTION_SCRIPTS = {  # row -> (pgbench script, the row it is divided by)
    "hush.save_secret, one secret again and again":
        ("SELECT version FROM hush.save_secret('bench', 'again' || :client_id, :v);\n", None),
    "hush.save_secret, one secret again and again, max_versions => 5 set on it":
        ("SELECT version FROM hush.save_secret('bench', 'kept' || :client_id, :v);\n",
         "hush.save_secret, one secret again and again"),
}


def retention_rows(c: pgcluster.Cluster, n: int, seconds: int) -> list[tuple[int, str, float, float, float, str]]:
    """What version retention costs a save: RETENTION_SCRIPTS in 1 s runs taking turns (2 x
    `seconds` each), medians, as bench/access.py measures (drift and the machine's other load
    hit both alike); the ratio is the median of each round's."""
    labels = list(RETENTION_SCRIPTS)
    runs = []
    print(f"  {n:,} secrets: save_secret with and without max_versions, in turn ...", file=sys.stderr, flush=True)
    with psycopg.connect(c.dsn("bench", user="bench_app"), autocommit=True) as conn:
        for client in (0, 1):  # pgbench's two clients' :client_id
            conn.execute("SELECT hush.save_secret('bench', %s, %s, max_versions => 5)", [f"kept{client}", VALUE])
    for i in range(2 * seconds):
        runs.append({label: pgbench(c, RETENTION_SCRIPTS[label][0], 1, n)
                     for label in labels[i % 2:] + labels[:i % 2]})
    out = []
    for label, (_, base) in RETENTION_SCRIPTS.items():
        tps, p50, p99 = (statistics.median(run[label][k] for run in runs) for k in range(3))
        ratio = f"{statistics.median(run[label][0] / run[base][0] for run in runs):.2f}" if base else ""
        out.append((n, label, tps, p50, p99, ratio))
    return out


AUDIT_ROW = ("INSERT INTO {table} (tenant_id, action, secret_name, version, at) "
             "SELECT 'bench', 'read', 's' || g, 1, {at} FROM generate_series(1, {n}) g")


def timed(conn: psycopg.Connection, sql: str) -> tuple[float, list[tuple]]:
    t0 = time.monotonic()
    cur = conn.execute(sql)
    got = cur.fetchall() if cur.description else []
    return time.monotonic() - t0, got


def audit_rows(c: pgcluster.Cluster, seal_n: int, year_n: int) -> list[tuple[int, str, float, float, float, str]]:
    """Sealing and verifying `seal_n` audit rows beside a plain SELECT of the same rows; then
    cleanup_audit_logs over a year of `year_n` rows in 12 monthly partitions beside a DELETE of
    the same rows from an unpartitioned copy. Own database, as the superuser (rows written directly)."""
    out = []
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        su.execute("CREATE DATABASE bench_audit")
    with psycopg.connect(c.dsn("bench_audit"), autocommit=True) as su:
        su.execute("CREATE EXTENSION hush CASCADE")
        # A year of rows, ending two months before the 7-year cutoff: 12 monthly partitions, then the rows.
        start = "date_trunc('month', now() - interval '2555 days') - interval '14 months'"
        su.execute(f"INSERT INTO hush.audit_log (tenant_id, action, at) SELECT 'bench', 'seed', "
                   f"{start} + make_interval(months => m) FROM generate_series(0, 11) m")
        su.execute("SELECT hush.create_audit_partitions(0)")
        print(f"  audit: {year_n:,} rows over a year ...", file=sys.stderr, flush=True)
        at = f"{start} + (g::float8 / {year_n}) * interval '365 days'"
        su.execute(AUDIT_ROW.format(table="hush.audit_log", n=year_n, at=at))
        su.execute("CREATE TABLE plain_audit AS SELECT * FROM hush.audit_log")
        su.execute("CREATE INDEX ON plain_audit (tenant_id, at)")
        su.execute("SELECT hush.seal_audit()")  # retention anchors a sealed trail
        su.execute(AUDIT_ROW.format(table="hush.audit_log", n=seal_n, at="clock_timestamp()"))
        su.execute("VACUUM ANALYZE")
        print(f"  audit: seal and verify {seal_n:,} rows ...", file=sys.stderr, flush=True)
        recent = "SELECT * FROM hush.audit_log WHERE at > now() - interval '1 day'"
        base, got = timed(su, recent)
        assert len(got) == seal_n
        out.append((seal_n, "plain SELECT of the same audit rows (baseline 5, s)", base, 0.0, 0.0, ""))
        (mark,) = su.execute("SELECT clock_timestamp()").fetchone()
        took, (row,) = timed(su, "SELECT rows_sealed FROM hush.seal_audit()")
        assert row[0] == seal_n
        out.append((seal_n, "hush.seal_audit (s)", took, 0.0, 0.0, f"{took / base:.1f}"))
        t0 = time.monotonic()
        ok, checked = su.execute("SELECT ok, rows_checked FROM hush.verify_audit(%s)", [mark]).fetchone()
        took = time.monotonic() - t0
        assert ok and checked == seal_n, (ok, checked)
        out.append((seal_n, "hush.verify_audit of those seals (s)", took, 0.0, 0.0, f"{took / base:.1f}"))
        print(f"  audit: cleanup of {year_n:,} rows ...", file=sys.stderr, flush=True)
        base, _ = timed(su, "DELETE FROM plain_audit WHERE at < now() - interval '2555 days'")
        out.append((year_n, "DELETE of a year from an unpartitioned copy (baseline 6, s)", base, 0.0, 0.0, ""))
        took, (row,) = timed(su, "SELECT partitions_dropped, rows_removed FROM hush.cleanup_audit_logs()")
        assert row[1] == year_n + 12, row
        out.append((year_n, f"hush.cleanup_audit_logs, {row[0]} partitions dropped (s)", took, 0.0, 0.0,
                    f"{took / base:.3f}"))
        out.append((year_n, "  per partition (ms)", took / row[0] * 1000, 0.0, 0.0, ""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--only", choices=["sql", "python", "authority", "access", "retention", "standby", "rewrap",
                                       "audit", "oauth"],
                    help="Run only the pgbench rows, the Python client rows, the authority rows (versions, "
                         "SET LOCAL ROLE, first call), the access rows (whole-tenant vs prefix grants), the "
                         "retention rows (save_secret with and without max_versions), the standby "
                         "rows, the rewrap rows, the audit rows or the OAuth rows.")
    ap.add_argument("--oauth-connections", type=int, default=2000,
                    help="OAuth connections read by oauth_access_token and refreshed by one worker.")
    ap.add_argument("--audit-rows", default="100000,1000000",
                    help="Rows sealed, and rows in the year cleanup_audit_logs removes.")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    c = pgcluster.Cluster(settings={"fsync": "on", "synchronous_commit": "on", "shared_buffers": "'512MB'",
                                    "max_wal_size": "'4GB'"}, keys=2).start()
    results: list[tuple[int, str, float, float, float, str]] = []
    try:
        with psycopg.connect(c.dsn(), autocommit=True) as su:
            su.execute("CREATE DATABASE bench")
            settings = {k: su.execute(f"SHOW {k}").fetchone()[0]
                        for k in ("server_version", "synchronous_commit", "fsync", "shared_buffers")}
        with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
            su.execute(SETUP)
        have = 0
        for n in (sizes if args.only not in ("audit", "oauth", "authority", "access", "retention", "standby")
                  else []):
            load(c, have, n)
            have = n
            got: dict[str, float] = {}
            if args.only in (None, "python") and n == sizes[0]:
                with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as adm:
                    adm.execute("SELECT hush.configure_tenant('bench', audit_reads => false)")
                print(f"  {n:,} secrets: Python client rows ...", file=sys.stderr, flush=True)
                for label, ops, p50, p99, ratio in python_rounds(c, n, args.seconds * 3):
                    results.append((n, label, ops, p50, p99, ratio))
            for name, script in (SCRIPTS.items() if args.only in (None, "sql") else ()):
                audit = "audit on" in name
                with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as adm:
                    adm.execute("SELECT hush.configure_tenant('bench', audit_reads => %s)", [audit])
                print(f"  {n:,} secrets: {name} ...", file=sys.stderr, flush=True)
                tps, p50, p99 = pgbench(c, script, args.seconds, n)
                ops = tps * 20 if "20 names" in name else tps
                got[name] = ops
                ratio = ""
                if name in RATIOS:
                    ratio = f"{ops / got[RATIOS[name]]:.2f}"
                if name == "hush.get_secret, read audit on":  # and, without a target, to one transaction
                    ratio += f" ({ops / got['plain SELECT + audit INSERT, one transaction (baseline 2)']:.2f} to 2)"
                results.append((n, name, ops, p50, p99, ratio))
            if args.only in (None, "sql") and n >= 100000 and not any(r[0] >= 100000 and "list" in r[1] for r in results):
                for name, script in LIST_SCRIPTS.items():
                    print(f"  {n:,} secrets: {name} ...", file=sys.stderr, flush=True)
                    tps, p50, p99 = pgbench(c, script, args.seconds, n)
                    results.append((n, name, tps, p50, p99, ""))
            if args.only in (None, "rewrap") and n == max(s for s in sizes if s <= 100000):
                idle = got.get("hush.get_secret, read audit off")
                if idle is None:
                    print(f"  {n:,} secrets: get_secret idle ...", file=sys.stderr, flush=True)
                    with psycopg.connect(c.dsn("bench", user="bench_admin"), autocommit=True) as adm:
                        adm.execute("SELECT hush.configure_tenant('bench', audit_reads => false)")
                    idle = pgbench(c, SCRIPTS["hush.get_secret, read audit off"], args.seconds, n)[0]
                    results.append((n, "hush.get_secret, read audit off", idle, 0.0, 0.0, ""))
                results.extend((n, *row) for row in rewrap_rows(c, n, args.seconds, idle))
        if args.only in (None, "authority"):
            n = min(sizes)
            if args.only == "authority":
                load(c, 0, n)
            results.extend(authority_rows(c, n, args.seconds))
        if args.only in (None, "access"):
            from access import access_rows  # bench/access.py
            n = min(sizes)
            if args.only == "access":
                load(c, 0, n)
            results.extend(access_rows(c, n, args.seconds, pgbench))
        if args.only in (None, "retention"):
            n = min(sizes)
            if args.only == "retention":
                load(c, 0, n)
            results.extend(retention_rows(c, n, args.seconds))
        if args.only in (None, "standby"):
            n = min(sizes)
            if args.only == "standby":
                load(c, 0, n)
            results.extend(standby_rows(c, n, args.seconds))
        if args.only in (None, "audit"):
            seal_n, year_n = (int(x) for x in args.audit_rows.split(","))
            results.extend(audit_rows(c, seal_n, year_n))
        if args.only in (None, "oauth"):
            if args.only == "oauth":
                load(c, 0, args.oauth_connections)  # secrets for the get_secret row beside it
            results.extend(oauth_rows(c, args.oauth_connections, args.seconds))
    finally:
        c.stop()
    print(f"\nhush benchmark, {time.strftime('%Y-%m-%d')}: PostgreSQL {settings['server_version']}, "
          f"{os.cpu_count()} cores, synchronous_commit={settings['synchronous_commit']}, fsync={settings['fsync']}, "
          f"shared_buffers={settings['shared_buffers']}; pgbench -M prepared, 2 clients, {args.seconds} s per row\n")
    print("| secrets | operation | ops/s | p50 ms | p99 ms | ratio |")
    print("|---:|---|---:|---:|---:|---:|")
    for n, name, ops, p50, p99, ratio in results:
        lat = f"{p50:.3f} | {p99:.3f}" if p50 else " | "
        shown = f"{ops:,.3f}" if name.endswith((" s)", "(s)")) else f"{ops:,.1f}" if name.endswith("(ms)") \
            else f"{ops:,.0f}"
        print(f"| {n:,} | {name} | {shown} | {lat} | {ratio} |")
    print("\nratio: get_secret (audit off) / baseline 1; get_secret (audit on) / baseline 2b, the read record "
          "committed apart (and, in brackets, / baseline 2, one transaction); get_secrets per secret / get_secret "
          "(audit off, and audit on for the audited row); save_secret / baseline 3. Standby rows: standby / primary, "
          "same audit setting; first calls: wall ms (the ops/s column), the audited one's extra cost beside it. Authority rows: the latest of 200 "
          "versions / a 1-version read; alternating SET LOCAL ROLE / one role; the first call's backend CPU (ms, in "
          "the ops/s column) and what it costs beyond a first plain SELECT. Access rows: get_secret (audit off) by a "
          "reader granted 10 name prefixes (or through its group role) / by one granted the whole tenant: medians of "
          "1 s runs in turn. Retention rows: save_secret of one secret per client again and again with its "
          "max_versions => 5 / without: medians of 1 s runs in turn. "
          "get_secrets and list rows are read with audit off. Python rows: one thread, ops/s = 1 / mean latency, "
          "ratio to raw psycopg on the same kind of connection (4: prepared; 4u: not; 4b: through pgbouncer in "
          "transaction mode): the wrapper's overhead. Rewrap rows: data keys re-sealed per second over the whole "
          "rewrap; the get_secret row beside it has its ratio to get_secret (audit off) at rest. Audit rows: seconds "
          "(the ops/s column) for one call; seal and verify ratios to baseline 5, cleanup to baseline 6. OAuth rows: "
          "oauth_access_token / get_secret (both audit off); the worker's refreshes per second (claim, refresh over "
          "HTTP, store: one worker with its defaults, per_host = 4 requests in flight to the loopback server, which "
          "is one host) / baseline 7 (7b, 7c), the bare HTTP refreshes sent one at a time to the same server (7b: the "
          "server taking 20 ms per token request; 7c: the server in a process of its own, as a provider is, where "
          "the others run it in a thread of the benchmark's process).")


if __name__ == "__main__":
    main()
