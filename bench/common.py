"""What every benchmark family shares: the bench database's setup (roles, the
plain-SQL baseline tables), the pgbench scripts of the read and write rows, the bulk
load, and pgbench itself (2 clients, prepared statements: ops/s, p50 and p99)."""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from hush import devcluster as pgcluster

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
