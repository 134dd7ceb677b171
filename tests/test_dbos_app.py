"""examples/dbos_app end to end: a real DBOS app (its documented datasource
transaction API) against the test cluster, a partner API on loopback, and a
scan of DBOS's own tables for the secret values: they must not be there."""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import hush
import psycopg
import pytest
from dbos import SQLAlchemyDatasource

APP = Path(__file__).resolve().parent.parent / "examples" / "dbos_app" / "app.py"


class Partner(BaseHTTPRequestHandler):
    """The partner API: POST /token with the right API key returns a fresh token."""

    api_key = ""
    token = ""
    calls: list[str] = []

    def do_POST(self) -> None:
        Partner.calls.append(self.path)
        if self.headers.get("Authorization") != "Bearer " + Partner.api_key:
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"access_token": Partner.token, "account": "acct-42", "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def partner() -> Iterator[str]:
    Partner.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def url(cluster: Any, dbname: str, user: str) -> str:
    return f"postgresql+psycopg://{user}@/{dbname}?host={cluster.base}&port={cluster.port}"


@pytest.fixture
def app_env(db: Any, cluster: Any, partner: str) -> Iterator[dict[str, str]]:
    sysdb = db.name + "_dbos"
    db.sql("DO $$ BEGIN CREATE ROLE dbos_app LOGIN IN ROLE hush_writer; "
           "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    db.sql("SELECT hush.grant_tenant('dbos_app', 'acme')")
    db.sql("CREATE TABLE partner_syncs (tenant text, account text, token_version int, at timestamptz DEFAULT now())")
    db.sql("GRANT SELECT, INSERT ON partner_syncs TO dbos_app")
    db.sql(f"CREATE DATABASE {sysdb}")
    # DBOS's documented split: a privileged role migrates, the app's role only uses the tables.
    SQLAlchemyDatasource.migrate(url(cluster, db.name, "postgres"), application_role="dbos_app")
    yield {**os.environ, "APP_DATABASE_URL": url(cluster, db.name, "dbos_app"),
           "DBOS_SYSTEM_DATABASE_URL": url(cluster, sysdb, "postgres"), "PARTNER_URL": partner}
    db.sql(f"DROP DATABASE {sysdb} WITH (FORCE)")


def run_app(env: dict[str, str], *args: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, str(APP), *args], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    result: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return result


def dbos_text(cluster: Any, dbname: str) -> str:
    """Every cell of every table in DBOS's schema, as text, plus whatever decodes
    from base64 in it (DBOS pickles and base64-encodes checkpointed values)."""
    out = []
    with psycopg.connect(cluster.dsn(dbname)) as conn:
        tables = conn.execute("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                              "WHERE schemaname = 'dbos'").fetchall()
        for (table,) in tables:
            for (row,) in conn.execute(f"SELECT t::text FROM {table} t"):
                out.append(row)
                for chunk in re.findall(r"[A-Za-z0-9+/=]{16,}", row):
                    try:
                        out.append(base64.b64decode(chunk, validate=True).decode("utf-8", "replace"))
                    except (binascii.Error, ValueError):
                        pass
    return "\n".join(out)


def test_workflow_uses_secrets_and_checkpoints_none(db: Any, cluster: Any, app_env: dict[str, str]) -> None:
    Partner.api_key, Partner.token = f"api-key-{uuid.uuid4()}", f"token-{uuid.uuid4()}"
    with db.connect("alice") as conn:
        hush.Secrets(conn, "acme").save("partner/api_key", Partner.api_key, kind="api_key")

    result = run_app(app_env, "sync", "acme")

    assert result["token_version"] == 1 and result["account"] == "acct-42"
    assert Partner.calls == ["/token"]  # called once, with the right key (else 401 and the step fails)
    with db.connect("alice") as conn:
        token = hush.Secrets(conn, "acme").get("partner/access_token")
    assert token.value == Partner.token and token.kind == "token" and token.metadata == {"account": "acct-42"}
    assert db.sql("SELECT tenant, account, token_version FROM partner_syncs") == [("acme", "acct-42", 1)]
    audit = db.sql("SELECT action, secret_name, version FROM hush.audit_log "
                   "WHERE db_role = 'dbos_app' AND outcome = 'ok' ORDER BY id")
    assert audit == [("read", "partner/api_key", 1),            # the DBOS transaction
                     ("read", "partner/api_key", 1),            # the step, reading it itself
                     ("create", "partner/access_token", 1)]     # the step's own transaction
    # The values are nowhere in DBOS's tables (system database and the app's checkpoint table)...
    scanned = dbos_text(cluster, db.name + "_dbos") + dbos_text(cluster, db.name)
    assert Partner.api_key not in scanned and Partner.token not in scanned
    # ...while what the steps did return is there: the scan does see checkpoints.
    assert "acct-42" in scanned and "sync_partner" in scanned


def test_failed_transaction_leaves_no_secret_and_no_audit_row(db: Any, app_env: dict[str, str]) -> None:
    name = f"tmp/{uuid.uuid4().hex[:8]}"
    assert run_app(app_env, "fail", "acme", name) == {"failed": "something failed after the save"}
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE name = %s", [name]) == [(0,)]
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE secret_name = %s", [name]) == [(0,)]
    with db.connect("alice") as conn:
        assert not hush.Secrets(conn, "acme").exists(name)
