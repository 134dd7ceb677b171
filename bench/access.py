"""`make bench BENCH_ARGS="--only access"`: what scoped grants cost a read.

hush.get_secret (read audit off) by a role granted the whole tenant beside one
granted 10 name prefixes (the capability check is folded into the read's own
statement), and one holding the same 10 through a group role it is a member of;
with few grants in the tenant, then with 1,000 (100 roles x 10 prefixes, the
scoped reader's 10 among them). The readers take turns in short runs (pgbench,
2 clients, 1 s), in a new order each round, so that drift and the load of
whatever else runs on the machine hit them alike (5 s runs in turn moved the
ratios by 20% on a shared machine); the rows are the medians: ops/s and latency
of each reader, and each prefix reader's ratio to the whole-tenant reader of the
same round.
"""
from __future__ import annotations

import statistics
import sys
from typing import Callable

import psycopg

from hush import devcluster as pgcluster

TENANT = "bench"
READ = "\\set i random(1, :n)\nSELECT value FROM hush.get_secret('bench', 's' || :i);\n"
# The scoped reader's prefixes: s1..s9 cover every benchmark name (s1..sN), x/ none.
PREFIXES = [f"s{d}" for d in range(1, 10)] + ["x/"]
# Roles of 10 prefixes each besides the scoped reader, bench_group among them: 100 in all.
OTHER_ROLES = 99


def _grant(su: psycopg.Connection, role: str, prefix: str, caps: list[str]) -> None:
    su.execute('SELECT hush."grant"(%s, %s, %s, %s)', [role, TENANT, prefix, caps])


def access_rows(c: pgcluster.Cluster, n: int, seconds: int,
                pgbench: Callable[..., tuple[float, float, float]]) -> list[tuple[int, str, float, float, float, str]]:
    """The rows of the access section: (secrets, operation, ops/s, p50 ms, p99 ms, ratio); each
    reader reads for 2 x `seconds` s per number of grants, in 1 s runs of `pgbench` (run.py's:
    (c, script, seconds, n, role) -> (tps, p50 ms, p99 ms))."""
    out: list[tuple[int, str, float, float, float, str]] = []
    with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
        su.execute("CREATE ROLE bench_whole LOGIN IN ROLE hush_reader")
        su.execute("CREATE ROLE bench_scoped LOGIN IN ROLE hush_reader")
        su.execute("CREATE ROLE bench_group NOLOGIN IN ROLE hush_reader")
        su.execute("CREATE ROLE bench_member LOGIN IN ROLE bench_group")
        su.execute("SELECT hush.grant_tenant('bench_whole', %s)", [TENANT])
        for p in PREFIXES:
            _grant(su, "bench_scoped", p, ["read"])
            _grant(su, "bench_group", p, ["read"])
        su.execute("SELECT hush.configure_tenant(%s, audit_reads => false)", [TENANT])
    readers = {"bench_whole": "whole-tenant grant", "bench_scoped": "10 prefix grants",
               "bench_member": "10 prefix grants of its group role"}
    for stage in ("few", "many"):
        if stage == "many":
            print(f"  {n:,} secrets: {(OTHER_ROLES - 1) * 10:,} more grants ...", file=sys.stderr, flush=True)
            with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
                for k in range(OTHER_ROLES - 1):  # and bench_group
                    su.execute(f"CREATE ROLE bench_other{k} NOLOGIN IN ROLE hush_reader")
                    for j in range(10):
                        _grant(su, f"bench_other{k}", f"team{k}/app{j}/", ["read"])
                su.execute("ANALYZE hush.tenant_grants")
        with psycopg.connect(c.dsn("bench"), autocommit=True) as su:
            grants = su.execute("SELECT count(*) FROM hush.tenant_grants WHERE tenant_id = %s",
                                [TENANT]).fetchall()[0][0]
        print(f"  {n:,} secrets, {grants:,} grants: get_secret by each reader in turn ...", file=sys.stderr,
              flush=True)
        order = list(readers)
        runs = []
        for i in range(2 * seconds):
            run = {}
            for role in order[i % 3:] + order[:i % 3]:
                run[role] = pgbench(c, READ, 1, n, role)
            runs.append(run)
        for role, what in readers.items():
            tps, p50, p99 = (statistics.median(run[role][k] for run in runs) for k in range(3))
            ratio = "" if role == "bench_whole" else \
                f"{statistics.median(run[role][0] / run['bench_whole'][0] for run in runs):.2f}"
            out.append((n, f"hush.get_secret, audit off, {what} ({grants:,} grants in the tenant)", tps, p50, p99,
                        ratio))
    return out
