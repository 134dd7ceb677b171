"""hush.cleanup_oauth(): OAuth events past their retention (90 days by default) and pending
authorizations past their expiry go, in every tenant, run as hush_retention, whose row
policies admit no other row; recent events and live authorizations stay; the result and
hush.maintenance_log say how many. Also through hush.Audit and `hush audit maintain`."""
from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

import hush
from helpers import raises_sqlstate, rows
from test_cli import hush as hush_cli, ok


def _event(db: Any, tenant: str, days_ago: float) -> None:
    db.sql("INSERT INTO hush.oauth_events (tenant_id, at, provider, account, event) "
           "VALUES (%s, now() - make_interval(secs => %s * 86400), 'idp', 'u', 'refresh_failed')",
           [tenant, days_ago])


def _pending(db: Any, user: str, tenant: str, states: list[str]) -> None:
    with db.connect(user) as conn:
        conn.execute("SELECT hush.oauth_save_provider(%s, 'idp', %s)", [tenant, '{"client_id": "app"}'])
        for state in states:
            conn.execute("SELECT hush.oauth_begin(%s, 'idp', %s, NULL, NULL, NULL, '{}', binding => %s)",
                         [tenant, state, "b" * 43])


def _setup(db: Any) -> None:
    for days in (400, 91, 89, 0.5):
        _event(db, "acme", days)
    _event(db, "globex", 100)
    _pending(db, "alice", "acme", ["acme-expired-state", "acme-live-state-0"])
    _pending(db, "bob", "globex", ["globex-expired-st", "globex-expired-2x"])
    # Expired after the last oauth_begin of each tenant, which purges that tenant's expired ones.
    db.sql("UPDATE hush.oauth_pending SET expires_at = now() - interval '1 second' "
           "WHERE state_hash <> sha256(convert_to('acme-live-state-0', 'UTF8'))")


def test_old_events_and_expired_authorizations_go_in_every_tenant(db: Any) -> None:
    _setup(db)
    with db.connect("adam") as adam:
        done = rows(adam, "SELECT * FROM hush.cleanup_oauth()")
        assert done == [{"tenant_id": "acme", "events_removed": 2, "pending_removed": 1},
                        {"tenant_id": "globex", "events_removed": 1, "pending_removed": 2}]
        ages = db.sql("SELECT tenant_id, floor(extract(epoch FROM now() - at) / 86400)::int FROM hush.oauth_events "
                      "ORDER BY at")
        assert ages == [("acme", 89), ("acme", 0)]
        assert db.sql("SELECT tenant_id FROM hush.oauth_pending") == [("acme",)]
        [(detail,)] = db.sql("SELECT detail FROM hush.maintenance_log WHERE task = 'cleanup_oauth'")
        assert (detail["event_days"], detail["events_removed"], detail["pending_removed"]) == (90, 3, 3)
        assert detail["tenants"] == {"acme": [2, 1], "globex": [1, 2]}
        # Nothing left to do: an empty result, and a log row that says so.
        assert rows(adam, "SELECT * FROM hush.cleanup_oauth()") == []
        last = db.sql("SELECT detail FROM hush.maintenance_log WHERE task = 'cleanup_oauth' ORDER BY id DESC LIMIT 1")
        assert (last[0][0]["events_removed"], last[0][0]["pending_removed"], last[0][0]["tenants"]) == (0, 0, {})
        # A shorter retention, down to a day.
        assert rows(adam, "SELECT * FROM hush.cleanup_oauth(1)") == [
            {"tenant_id": "acme", "events_removed": 1, "pending_removed": 0}]
        assert db.sql("SELECT count(*) FROM hush.oauth_events") == [(1,)]
    # The tenants still see their own events as before.
    with db.connect("alice") as a:
        assert len(rows(a, "SELECT * FROM hush.oauth_events('acme')")) == 1


def test_only_admins_run_it_within_its_limits(db: Any) -> None:
    _setup(db)
    with db.connect("adam") as adam:
        for days in (0, 36501, None):
            with raises_sqlstate("SH004"):
                adam.execute("SELECT * FROM hush.cleanup_oauth(%s)", [days])
    for user in ("alice", "rita", "audrey", "wendy"):
        with db.connect(user) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM hush.cleanup_oauth()")
    assert db.sql("SELECT count(*) FROM hush.oauth_events") == [(5,)]
    assert db.sql("SELECT count(*) FROM hush.oauth_pending") == [(4,)]


def test_the_retention_role_reaches_only_expired_rows(db: Any) -> None:
    """Whatever a statement run as hush_retention asks for, its row policies admit expired
    pending authorizations and events at least a day old, and nothing else."""
    _setup(db)
    _event(db, "acme", 0.9)
    with db.connect(autocommit=False) as su:
        su.execute("SET LOCAL ROLE hush_retention")
        assert su.execute("SELECT count(*) FROM hush.oauth_pending").fetchone() == (3,)
        assert su.execute("DELETE FROM hush.oauth_pending").rowcount == 3
        assert su.execute("DELETE FROM hush.oauth_events").rowcount == 4  # not the two younger than a day
        # No policy lets it update a pending row (by_state_lock is hush_owner's) or add an event.
        assert su.execute("UPDATE hush.oauth_pending SET expires_at = now() + interval '1 day'").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            su.execute("INSERT INTO hush.oauth_events (tenant_id, provider, account, event) "
                       "VALUES ('acme', 'p', 'a', 'recovered')")
        su.rollback()
    assert db.sql("SELECT count(*) FROM hush.oauth_pending") == [(4,)]


def test_audit_maintain_and_the_cli_run_it(db: Any) -> None:
    _setup(db)
    with db.connect("adam") as adam:
        audit = hush.Audit(adam)
        assert audit.cleanup_oauth(event_days=300) == [hush.OAuthCleanup("acme", 1, 1),
                                                       hush.OAuthCleanup("globex", 0, 2)]
        done = audit.maintain(months_ahead=1, oauth_event_days=90)
        assert done.oauth == [hush.OAuthCleanup("acme", 1, 0), hush.OAuthCleanup("globex", 1, 0)]
    _event(db, "acme", 50)
    out = json.loads(ok(hush_cli(db, "audit", "maintain", "--json", "--months-ahead", "1", "--oauth-event-days",
                                 "30", user="adam")).stdout)
    assert out["oauth"] == [{"tenant_id": "acme", "events_removed": 2, "pending_removed": 0}]
    text = ok(hush_cli(db, "audit", "maintain", "--months-ahead", "1", user="adam")).stdout
    assert "oauth: 0 events, 0 expired pending authorizations removed" in text
