"""`--only rewrap`: CALL hush.rewrap over every data key, alone and beside reads."""
from __future__ import annotations

import sys
import time

import psycopg

from common import SCRIPTS, pgbench
from hush import devcluster as pgcluster


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
