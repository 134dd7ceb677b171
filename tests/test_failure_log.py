"""Denied and failed calls roll back with their transaction, audit row and
all, so each leaves one structured server log line instead:
`hush-failure {"action": ..., "tenant": ..., "role": ..., "sqlstate": ...}`
(docs/operations.md, "The server log"). The tests read the line back from the server log."""
from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg

from helpers import get, raises_sqlstate, save

TAG = "hush-failure "


def failures(cluster, app: str) -> list[dict]:
    """The failure lines of connections named `app`, waiting briefly for the logger."""
    found: list[dict] = []
    for _ in range(50):
        found = []
        for line in cluster.log.read_text(errors="replace").splitlines():
            if TAG in line:
                entry = json.loads(line.split(TAG, 1)[1])
                if entry["application_name"] == app:
                    found.append(entry)
        if found:
            return found
        time.sleep(0.1)
    return found


def test_refused_and_failed_calls_leave_a_log_line(db, cluster):
    app = f"failure-log-{uuid.uuid4().hex[:8]}"
    canary = f"value-{uuid.uuid4()}"
    with db.connect("alice") as a:
        save(a, "acme", "k", canary)
    # Break the stored ciphertext behind hush's back: the next read fails to decrypt.
    db.sql("UPDATE hush.secret_versions SET ciphertext = set_byte(ciphertext, 30, get_byte(ciphertext, 30) # 1)")
    with psycopg.connect(db.dsn("bob") + f" application_name={app}", autocommit=False) as b:
        with raises_sqlstate("SH020"):
            get(b, "acme", "k")   # a cross-tenant read, refused
        b.rollback()
    with psycopg.connect(db.dsn("alice") + f" application_name={app}", autocommit=True) as a:
        with raises_sqlstate("SH031"):
            get(a, "acme", "k")   # a failed decrypt
        with raises_sqlstate("SH010"):
            get(a, "acme", "missing")
        with raises_sqlstate("SH002"):
            # A value passed where the tenant goes is not a tenant id, and is not logged.
            a.execute("SELECT hush.save_secret(%s, 'k', %s)", ["pass phrase " + canary, canary])
    with psycopg.connect(db.dsn("gateway") + f" application_name={app}", autocommit=True) as g:
        g.execute("SET ROLE acme_app")
        with raises_sqlstate("SH020"):
            save(g, "globex", "k", canary)
    got = failures(cluster, app)
    # A tenant the caller may not act on only by its first characters and length (docs/errors.md).
    assert [(f["action"], f["tenant"], f.get("tenant_masked"), f["role"], f["session_role"], f["sqlstate"])
            for f in got] == [
        ("get_secret", None, "'acm...' (4 chars)", "bob", "bob", "SH020"),
        ("get_secret", "acme", None, "alice", "alice", "SH031"),
        ("get_secret", "acme", None, "alice", "alice", "SH010"),
        ("save_secret", None, "'pass...' (54 chars)", "alice", "alice", "SH002"),
        ("save_secret", None, "'glob...' (6 chars)", "acme_app", "gateway", "SH020"),
    ]
    assert canary not in cluster.log.read_text(errors="replace")
    # The refused calls left no audit row: the log line is their only trace.
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE outcome <> 'ok' OR db_role = 'bob'") == [(0,)]


def test_a_timed_out_call_runs_no_more_sql_and_ends_at_its_timeout(db, cluster):
    # A session holds tenant_grants; alice's read times out on it. The failure path used to
    # look up her grant again, on the same table, with no timeout left: the call outlived its
    # statement_timeout until the blocker ended.
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    app = f"failure-cancel-{uuid.uuid4().hex[:8]}"
    since = len(cluster.log.read_bytes())
    blocker = psycopg.connect(db.dsn("postgres"), autocommit=False)
    timer = threading.Timer(6, blocker.rollback)  # a call that outlives its timeout fails, not hangs
    try:
        blocker.execute("LOCK TABLE hush.tenant_grants IN ACCESS EXCLUSIVE MODE")
        timer.start()
        with psycopg.connect(db.dsn("alice") + f" application_name={app}", autocommit=True) as a:
            a.execute("SET statement_timeout = '500ms'")
            began = time.monotonic()
            with raises_sqlstate("57014"):
                get(a, "acme", "k")
            assert time.monotonic() - began < 3
    finally:
        timer.cancel()
        blocker.rollback()
        blocker.close()
    # No SQL after the cancel, not even the caller lookup (so no role or application_name:
    # the server's log_line_prefix has them); the tenant is masked.
    for _ in range(50):
        got = [json.loads(line.split(TAG, 1)[1]) for line in
               cluster.log.read_bytes()[since:].decode(errors="replace").splitlines() if TAG in line]
        got = [f for f in got if f["sqlstate"] == "57014"]
        if got:
            break
        time.sleep(0.1)
    assert [(f["action"], f["tenant"], f.get("tenant_masked"), f["role"]) for f in got] == [
        ("get_secret", None, "'acm...' (4 chars)", None)]


def test_a_bad_argument_before_the_grant_check_masks_the_tenant(db, cluster):
    # Showing the tenant would need a grant check in the failure path (a timing oracle: it costs
    # more for a tenant with many grants), so a failure before the call's own check masks it.
    app = f"failure-early-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db.dsn("alice") + f" application_name={app}", autocommit=True) as a:
        with raises_sqlstate("SH004"):
            a.execute("SELECT * FROM hush.list_secrets('acme', page => NULL)")
        with raises_sqlstate("SH010"):
            get(a, "acme", "missing")  # after the check: shown
    got = failures(cluster, app)
    assert [(f["sqlstate"], f["tenant"], f.get("tenant_masked")) for f in got] == [
        ("SH004", None, "'acm...' (4 chars)"), ("SH010", "acme", None)]
