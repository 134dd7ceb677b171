"""`--only audit`: sealing and verifying the audit trail, and retention's cleanup of a
year of rows by partition, beside plain-SQL baselines."""
from __future__ import annotations

import sys
import time

import psycopg

from hush import devcluster as pgcluster

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
