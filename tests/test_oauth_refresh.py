"""Refresh: single-flight across threads and processes (counted at the server),
rotation, invalid_grant, transient failures. Tokens are issued with a 30-second
lifetime where a test wants them stale: the client's skew is 60 seconds, so
they count as expiring at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import hush
from oauth_helpers import fresh_server, login, stale_login, tenant_oauth

def test_twenty_threads_one_refresh(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.token_delay = 0.3  # the refresh takes a while: the others must wait for it
    with tenant_oauth(db) as oa:
        old = stale_login(oa, srv)
        barrier = threading.Barrier(20)
        got: list[str] = []
        errors: list[BaseException] = []

        def ask() -> None:
            try:
                barrier.wait()
                got.append(oa.access_token("idp"))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
        threads = [threading.Thread(target=ask) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert srv.token_count("refresh_token") == 1
        assert len(got) == 20 and len(set(got)) == 1 and got[0] != old.access_token
        assert oa.access_token("idp") == got[0] and srv.token_count("refresh_token") == 1


PROCESS = """
import json, sys, threading, time
import hush
dsn, start, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
client = hush.connect(dsn, max_size=n)
oa = client.tenant("acme").oauth
oa.access_token  # imported and connected before the start line
with client.connection() as conn:
    conn.execute("SELECT 1")
barrier = threading.Barrier(n)
out = []
def ask():
    barrier.wait()
    time.sleep(max(0.0, start - time.time()))
    out.append(oa.access_token("idp"))
threads = [threading.Thread(target=ask) for _ in range(n)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(out))
"""


def test_twenty_callers_in_two_processes_one_refresh(db: Any, oauth_server: Any, tmp_path: Path) -> None:
    srv = fresh_server(oauth_server)
    srv.control.token_delay = 0.5
    with tenant_oauth(db) as oa:
        old = stale_login(oa, srv)
    start = time.time() + 4  # both processes imported and connected by then
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS, db.dsn("alice"), str(start), "10"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-2000:] for r in results]
    got = [tok for out, _ in results for tok in json.loads(out)]
    assert srv.token_count("refresh_token") == 1
    assert len(got) == 20 and len(set(got)) == 1 and got[0] != old.access_token


def test_rotation_over_a_second_and_a_third_refresh(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        first = stale_login(oa, srv)
        seen_refresh = [first.refresh_token]
        seen_access = [first.access_token]
        for _ in range(3):
            tokens = oa.refresh("idp")
            assert tokens.refresh_token and tokens.refresh_token not in seen_refresh
            assert tokens.access_token not in seen_access
            # The refresh token used is dead at the server; the one stored is the new one.
            assert srv.refresh[seen_refresh[-1] or ""].revoked
            stored = db.sql("SELECT refresh_token FROM hush.oauth_connection_tokens('acme', 'idp')", user="alice")
            assert stored == [(tokens.refresh_token,)]
            seen_refresh.append(tokens.refresh_token)
            seen_access.append(tokens.access_token)
        assert srv.token_count("refresh_token") == 3
        assert oa.access_token("idp") == seen_access[-1]


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.rotate_refresh_tokens = False
    with tenant_oauth(db) as oa:
        first = stale_login(oa, srv)
        again = oa.refresh("idp")
        assert again.refresh_token is None  # the response carried none
        third = oa.refresh("idp")  # the stored refresh token still works
        assert third.access_token not in (first.access_token, again.access_token)
        assert [c.has_refresh_token for c in oa.connections()] == [True]


def test_invalid_grant_marks_the_connection_needs_reauth(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        tokens = stale_login(oa, srv)
        srv.refresh[tokens.refresh_token or ""].revoked = True  # the user revoked the app at the provider
        with pytest.raises(hush.ReauthorizationRequired) as e:
            oa.access_token("idp")
        assert e.value.code == "SH074"
        [conn] = oa.connections()
        assert conn.status == "needs_reauth" and conn.lease_until is None
        assert conn.last_error and "invalid_grant" in conn.last_error
        with pytest.raises(hush.ReauthorizationRequired):  # no second request to the provider
            oa.access_token("idp")
        assert srv.token_count("refresh_token") == 1
        login(oa)  # authorizing again heals it
        assert [c.status for c in oa.connections()] == ["active"]
        assert oa.access_token("idp")


def test_what_a_provider_echoes_back_is_blanked_before_it_is_stored(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    srv.control.echo_in_errors = True
    with tenant_oauth(db) as oa:
        tokens = stale_login(oa, srv)
        srv.refresh[tokens.refresh_token or ""].revoked = True
        with pytest.raises(hush.ReauthorizationRequired):
            oa.access_token("idp")
        [conn] = oa.connections()
    assert conn.last_error and "refresh token *** is revoked" in conn.last_error
    stored = db.sql("SELECT c::text FROM hush.oauth_connections c") + db.sql("SELECT a::text FROM hush.audit_log a")
    assert not any(tokens.refresh_token in row for (row,) in stored)


def test_a_503_is_retried_with_backoff(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    sleeps: list[float] = []
    with tenant_oauth(db, sleep=sleeps.append) as oa:
        old = stale_login(oa, srv)
        srv.control.fail_token_requests = 2
        new = oa.access_token("idp")
        assert new != old.access_token
        assert srv.token_count("refresh_token") == 3 and sleeps == [0.5, 1.0]


def test_a_503_storm_keeps_the_old_tokens(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    sleeps: list[float] = []
    with tenant_oauth(db, sleep=sleeps.append) as oa:
        old = stale_login(oa, srv)
        srv.control.fail_token_requests = 100
        with pytest.raises(hush.ProviderUnavailable) as e:
            oa.access_token("idp")
        assert e.value.status == 503
        assert srv.token_count("refresh_token") == 3 and sleeps == [0.5, 1.0]
        [conn] = oa.connections()
        assert conn.status == "active" and conn.lease_until is None and "503" in (conn.last_error or "")
        # The stored tokens are untouched: the old access token (still valid for half a
        # minute) is there to read, and once the provider is back the old refresh token works.
        row = db.sql("SELECT (hush.oauth_token('acme', 'idp')).access_token", user="alice")
        assert row == [(old.access_token,)]
        srv.control.fail_token_requests = 0
        assert oa.access_token("idp") != old.access_token
        assert [c.last_error for c in oa.connections()] == [None]


def test_a_dead_refresher_holds_others_only_until_its_lease_expires(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db, lease_seconds=2) as oa:
        old = stale_login(oa, srv)
        [(gen,)] = db.sql("SELECT generation FROM hush.oauth_connections")
        # A process claims the lease and dies before calling the provider.
        db.sql("SELECT outcome FROM hush.oauth_claim_refresh('acme', 'idp', 'sub-alice', 'dead', 2, %s)",
               [gen], user="alice")
        began = time.monotonic()
        new = oa.access_token("idp")
        assert 1.0 < time.monotonic() - began < 10
        assert new != old.access_token and srv.token_count("refresh_token") == 1


def test_a_late_finish_does_not_overwrite_newer_tokens(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        stale_login(oa, srv)
        [(gen,)] = db.sql("SELECT generation FROM hush.oauth_connections")
        with db.connect("alice") as alice:
            # A refresher claims, then takes longer than its lease: another caller refreshes.
            late = alice.execute("SELECT lease_token FROM hush.oauth_claim_refresh('acme', 'idp', 'sub-alice', "
                                 "'late', 60, %s)", [gen]).fetchone()[0]
            db.sql("UPDATE hush.oauth_connections SET lease_until = now() - interval '1 second'")
            newer = oa.refresh("idp")
            with pytest.raises(Exception) as e:
                alice.execute("SELECT hush.oauth_finish_refresh('acme', 'idp', 'sub-alice', %s, %s, %s)",
                              [late, gen, json.dumps({"access_token": "late-token", "expires_in": 3600})])
        assert getattr(e.value, "sqlstate", None) == "SH075"
        assert oa.access_token("idp") == newer.access_token
