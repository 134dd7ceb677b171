"""`--only authority`: what the invoker model costs where it could (many versions,
SET LOCAL ROLE, a new connection's first call)."""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import psycopg

from common import VALUE, pgbench
from hush import devcluster as pgcluster


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
