"""Retention: cleanup_audit_logs drops whole monthly partitions past the
cutoff, deletes only the expired rows of the partition straddling it (and of
the DEFAULT partition), logs what it removed and anchors the seal chain so
that verification still passes."""
from __future__ import annotations

import psycopg
import pytest

from helpers import raises_sqlstate, rows, save

RETENTION = 2555
# Ages in days (fractions for the rows either side of the cutoff): the first
# three months are wholly expired, the rows near 2555 days straddle the cutoff.
AGES = [3000, 2990, 2900, 2800, 2555.05, 2554.95, 2500, 400, 10]


def insert_aged(conn: psycopg.Connection, days: float, action: str) -> int:
    return conn.execute("""INSERT INTO hush.audit_log (tenant_id, action, at)
                           VALUES ('acme', %s, now() - make_interval(secs => %s * 86400)) RETURNING id""",
                        [action, days]).fetchone()[0]


def test_retention_removes_exactly_the_expired_rows_and_keeps_the_chain(db):
    with db.connect() as su:
        aged = {insert_aged(su, d, f"aged-{d}"): d for d in AGES}
        made = rows(su, "SELECT * FROM hush.create_audit_partitions(1)")
        assert sum(m["rows_moved"] for m in made) >= len(AGES)  # and the template's grant rows
        # A row for a month with no partition waits in the DEFAULT partition.
        aged[insert_aged(su, 2700, "aged-2700")] = 2700
        assert su.execute("SELECT count(*) FROM hush.audit_log_default").fetchone() == (1,)
        months_before = su.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'hush.audit_log'::regclass"
                                   ).fetchone()[0]
    with db.connect("alice") as a:
        save(a, "acme", "recent", "v")
    with db.connect("audrey") as aud:
        aud.execute("SELECT hush.seal_audit()")
    expired = {i for i, d in aged.items() if d > RETENTION}
    kept_before = {i for (i,) in db.sql("SELECT id FROM hush.audit_log")} - expired

    with db.connect("adam") as adm:
        adm.execute("SET TimeZone = 'Pacific/Kiritimati'")
        res = rows(adm, "SELECT * FROM hush.cleanup_audit_logs()")[0]
    assert res["rows_removed"] == len(expired) == 6
    # 3000 and 2900 days ago lie in different months wholly past the cutoff (the
    # others may share a month or the straddling one, depending on today's date).
    assert res["partitions_dropped"] >= 2
    assert res["anchor_seal_id"] is not None
    assert {i for (i,) in db.sql("SELECT id FROM hush.audit_log")} == kept_before
    with db.connect() as su:
        months_after = su.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'hush.audit_log'::regclass"
                                  ).fetchone()[0]
        assert months_before - months_after == res["partitions_dropped"]
        log = rows(su, "SELECT * FROM hush.maintenance_log WHERE task = 'cleanup_audit_logs'")
        assert len(log) == 1
        d = log[0]["detail"]
        assert d["rows_removed"] == 6 and d["retention_days"] == RETENTION and d["anchor_seal_id"] == res["anchor_seal_id"]
        assert len(d["partitions_dropped"]) == res["partitions_dropped"]
        assert all(p.startswith("hush.audit_log_") for p in d["partitions_dropped"])
        assert su.execute("SELECT kind FROM hush.audit_seals WHERE id = %s", [res["anchor_seal_id"]]).fetchone() == ("anchor",)
    with db.connect("audrey") as aud:
        v = rows(aud, "SELECT * FROM hush.verify_audit()")[0]
        assert v["ok"], v
        assert v["rows_checked"] == len(kept_before) and v["unsealed_rows"] == 0
    # Life goes on: new rows, a new seal after the anchor, and a second run removes nothing.
    with db.connect("alice") as a:
        save(a, "acme", "later", "v")
    with db.connect("audrey") as aud:
        aud.execute("SELECT hush.seal_audit()")
        assert rows(aud, "SELECT * FROM hush.verify_audit()")[0]["ok"]
    with db.connect("adam") as adm:
        again = rows(adm, "SELECT * FROM hush.cleanup_audit_logs(%s)", [RETENTION])[0]
        assert again["rows_removed"] == 0 and again["partitions_dropped"] == 0 and again["anchor_seal_id"] is None
    with db.connect("audrey") as aud:
        assert rows(aud, "SELECT * FROM hush.verify_audit()")[0]["ok"]


def test_retention_tampering_after_the_anchor_is_still_caught(db):
    with db.connect() as su:
        insert_aged(su, 3000, "ancient")
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.seal_audit()")
        assert rows(adm, "SELECT * FROM hush.cleanup_audit_logs()")[0]["rows_removed"] == 1
    with db.connect() as su:
        su.execute("SET session_replication_role = replica")
        su.execute("UPDATE hush.audit_log SET secret_name = 'x' WHERE action = 'create'")
    with db.connect("audrey") as aud:
        v = rows(aud, "SELECT * FROM hush.verify_audit()")[0]
        assert v["problem"] == "rows_changed" and "anchor" in v["detail"]


def test_cleanup_checks_its_input_and_its_caller(db):
    with db.connect("adam") as adm:
        for bad in (0, -5, 100000):
            with raises_sqlstate("SH004"):
                adm.execute("SELECT hush.cleanup_audit_logs(%s)", [bad])
    for role in ("alice", "audrey", "otto"):
        with db.connect(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT hush.cleanup_audit_logs()")
