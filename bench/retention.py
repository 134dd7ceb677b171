"""`--only retention`: what version retention (max_versions) costs a save."""
from __future__ import annotations

import statistics
import sys

import psycopg

from common import VALUE, pgbench
from hush import devcluster as pgcluster

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
