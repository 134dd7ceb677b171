"""hush.configure_tenant's lifecycle settings (issue 21): max_versions (0..10000, 0 keeps
every version), destroy_versions_after (0..100 years, '0' keeps versions however old) and
expiry_warning (0..10 years, 14 days by default). NULL keeps a setting; a bad value is
SH004 with nothing written; the audit row and the returned hush.tenant_settings carry them.
Real server, as adam (hush_admin); the superuser only inspects."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from helpers import raises_sqlstate, rows

SETTINGS = ("max_versions", "destroy_versions_after", "expiry_warning")


def configure(conn: psycopg.Connection, tenant: str, **kw: Any) -> dict:
    args = "".join(f", {k} => %({k})s" for k in kw)
    return rows(conn, f"SELECT * FROM hush.configure_tenant(%(t)s{args})", {"t": tenant, **kw})[0]


def stored(db: Any, tenant: str) -> tuple:
    return db.sql("SELECT max_versions, destroy_versions_after, expiry_warning, updated_at FROM hush.tenants "
                  "WHERE tenant_id = %s", [tenant])[0]


def audit_details(db: Any) -> list[dict]:
    return [d for (d,) in db.sql("SELECT detail FROM hush.audit_log WHERE action = 'configure_tenant' ORDER BY id")]


def test_settings_round_trip_and_null_keeps(db: Any) -> None:
    with db.connect("adam") as adam:
        # A tenant configured for the first time gets the defaults: no retention, 14 days' warning.
        first = configure(adam, "acme", recovery_days=9)
        assert (first["max_versions"], first["destroy_versions_after"], first["expiry_warning"]) == (
            0, timedelta(0), timedelta(days=14))
        row = configure(adam, "acme", max_versions=5, destroy_versions_after=timedelta(days=90),
                        expiry_warning="7 days")
        assert (row["max_versions"], row["destroy_versions_after"], row["expiry_warning"]) == (
            5, timedelta(days=90), timedelta(days=7))
        assert row["recovery_days"] == 9
        assert stored(db, "acme")[:3] == (5, timedelta(days=90), timedelta(days=7))
        # NULL (or leaving it out) keeps each setting.
        kept = configure(adam, "acme", audit_reads=False, max_versions=None)
        assert (kept["max_versions"], kept["destroy_versions_after"], kept["expiry_warning"]) == (
            5, timedelta(days=90), timedelta(days=7))
        # 0 turns retention off; the bounds themselves are allowed.
        off = configure(adam, "acme", max_versions=0, destroy_versions_after="0", expiry_warning="0")
        assert (off["max_versions"], off["destroy_versions_after"], off["expiry_warning"]) == (
            0, timedelta(0), timedelta(0))
        top = configure(adam, "acme", max_versions=10000, destroy_versions_after="100 years",
                        expiry_warning="10 years")
        assert top["max_versions"] == 10000
        assert db.sql("SELECT max_versions, destroy_versions_after = '100 years', expiry_warning = '10 years' "
                      "FROM hush.tenants WHERE tenant_id = 'acme'") == [(10000, True, True)]
        # Intervals reach the Python code as text in the caller's IntervalStyle, and are read back as such.
        adam.execute("SET IntervalStyle = 'iso_8601'")
        adam.execute("SELECT FROM hush.configure_tenant('acme', destroy_versions_after => 'P30D', "
                     "expiry_warning => 'PT36H')")
    assert stored(db, "acme")[1:3] == (timedelta(days=30), timedelta(hours=36))
    # Each call's audit row carries the settings as they stand after it, named by the admin.
    details = audit_details(db)
    assert len(details) == 6
    assert {k: details[1][k] for k in SETTINGS} == {"max_versions": 5, "destroy_versions_after": "90 days",
                                                     "expiry_warning": "7 days"}
    assert details[2]["max_versions"] == 5 and details[2]["audit_reads"] is False
    assert {k: details[3][k] for k in SETTINGS} == {"max_versions": 0, "destroy_versions_after": "00:00:00",
                                                     "expiry_warning": "00:00:00"}
    assert db.sql("SELECT DISTINCT db_role FROM hush.audit_log WHERE action = 'configure_tenant'") == [("adam",)]


BAD = [
    {"max_versions": -1}, {"max_versions": 10001},
    {"destroy_versions_after": "-1 day"}, {"destroy_versions_after": "100 years 1 day"},
    {"destroy_versions_after": "1 mon -40 days"},  # less than nothing, as PostgreSQL compares intervals
    {"expiry_warning": "-1 second"}, {"expiry_warning": "10 years 00:00:01"},
    # a bad one beside good ones: none of them is written
    {"max_versions": 3, "recovery_days": 5, "expiry_warning": "11 years"},
    {"max_versions": 3, "destroy_versions_after": "-00:00:01", "expiry_warning": "1 day"},
]


@pytest.mark.parametrize("bad", BAD, ids=[",".join(f"{k}={v}" for k, v in b.items()) for b in BAD])
def test_bad_values_are_refused_with_nothing_written(db: Any, bad: dict) -> None:
    with db.connect("adam") as adam:
        configure(adam, "acme", max_versions=2, destroy_versions_after="30 days", expiry_warning="3 days")
        before, audited = stored(db, "acme"), len(audit_details(db))
        with raises_sqlstate("SH004") as ei:
            configure(adam, "acme", **bad)
        assert next(k for k in bad if k in SETTINGS) in str(ei.value)
        # A tenant that has no settings yet does not get a row either.
        with raises_sqlstate("SH004"):
            configure(adam, "newco", **bad)
    assert stored(db, "acme") == before
    assert db.sql("SELECT recovery_days FROM hush.tenants WHERE tenant_id = 'acme'") == [(30,)]
    assert db.sql("SELECT count(*) FROM hush.tenants WHERE tenant_id = 'newco'") == [(0,)]
    assert len(audit_details(db)) == audited


def test_only_admins_change_them(db: Any) -> None:
    for user in ("alice", "rita", "audrey"):
        with db.connect(user) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            configure(conn, "acme", max_versions=1)
    assert db.sql("SELECT count(*) FROM hush.tenants WHERE tenant_id = 'acme' AND max_versions <> 0") == [(0,)]
