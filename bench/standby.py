"""`--only standby`: reads on a streaming standby beside the same reads on the primary."""
from __future__ import annotations

import statistics
import sys
import time

import psycopg

from common import SCRIPTS, pgbench
from hush import devcluster as pgcluster


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
