"""`make bench`: hush's read and write paths against plain-SQL baselines, on a
throwaway cluster, measured in the same run with pgbench (2 clients,
prepared statements). Prints one table: ops/s, p50/p99 latency, and each hush
row's ratio to its baseline. Not part of the test suite: speed is measured
here, never asserted in tests.

    python bench/run.py [--sizes 1000,100000,1000000] [--seconds 5]

Each family of rows is a module beside this one (common.py holds the setup, the
load and pgbench; access.py, authority.py, audit.py, oauth.py, python_rows.py,
retention.py, rewrap.py, standby.py the rows); this one runs them and prints.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import psycopg

from access import access_rows
from audit import audit_rows
from authority import authority_rows
from common import LIST_SCRIPTS, RATIOS, SCRIPTS, SETUP, load, pgbench
from hush import devcluster as pgcluster
from oauth import oauth_rows
from python_rows import python_rounds
from retention import retention_rows
from rewrap import rewrap_rows
from standby import standby_rows


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
