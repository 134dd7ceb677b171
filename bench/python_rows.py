"""`--only python`: the Python client's overhead over raw psycopg, call by call."""
from __future__ import annotations

import statistics
import time

import psycopg

from common import TENANT
from hush import devcluster as pgcluster


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
