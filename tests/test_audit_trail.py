"""The audit trail's storage: monthly partitions (UTC bounds) with a DEFAULT
safety net, append-only for every role including the owner, on every
partition; and the purge of soft-deleted secrets after their recovery window."""
from __future__ import annotations

import psycopg
import pytest

from helpers import get, raises_sqlstate, rows, save

# Fixed instants around a month boundary, in UTC.
LAST_OF_NOVEMBER = "2031-11-30 23:59:59.999999+00"
FIRST_OF_DECEMBER = "2031-12-01 00:00:00+00"
FAR_FUTURE = "2040-06-15 12:00:00+00"


def insert_at(conn: psycopg.Connection, at: str, action: str = "fixture", tenant: str = "acme") -> int:
    """An audit row at a fixed time, written by the superuser behind the API."""
    return conn.execute("INSERT INTO hush.audit_log (tenant_id, action, at) VALUES (%s, %s, %s) RETURNING id",
                        [tenant, action, at]).fetchone()[0]


def partition_of(conn: psycopg.Connection, row_id: int) -> str:
    return conn.execute("SELECT tableoid::regclass::text FROM hush.audit_log WHERE id = %s", [row_id]).fetchone()[0]


def partitions(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'hush.audit_log'::regclass ORDER BY 1")]


def test_rows_land_in_their_month_across_a_boundary(db):
    with db.connect("adam") as adm:
        made = rows(adm, "SELECT * FROM hush.create_audit_partitions(months_ahead => 1)")
    assert len(made) == 2  # this month and the next
    with db.connect() as su:
        # A caller's odd time settings change nothing: bounds and names are UTC.
        su.execute("SET TimeZone = 'Pacific/Chatham'")
        su.execute("SET DateStyle = 'SQL, DMY'")
        nov, dec, far = (insert_at(su, t) for t in (LAST_OF_NOVEMBER, FIRST_OF_DECEMBER, FAR_FUTURE))
        # No partition for those months yet: the DEFAULT partition takes them.
        assert {partition_of(su, i) for i in (nov, dec, far)} == {"hush.audit_log_default"}
        made = rows(su, "SELECT partition, rows_moved FROM hush.create_audit_partitions(0)")
        assert sorted((m["partition"], m["rows_moved"]) for m in made) == [
            ("hush.audit_log_2031_11", 1), ("hush.audit_log_2031_12", 1), ("hush.audit_log_2040_06", 1)]
        assert partition_of(su, nov) == "hush.audit_log_2031_11"
        assert partition_of(su, dec) == "hush.audit_log_2031_12"
        assert partition_of(su, far) == "hush.audit_log_2040_06"
        su.execute("SET TimeZone = 'UTC'")
        su.execute("SET DateStyle = 'ISO'")
        assert su.execute("""SELECT pg_get_expr(relpartbound, oid) FROM pg_class
                              WHERE oid = 'hush.audit_log_2031_12'::regclass""").fetchone() == (
            "FOR VALUES FROM ('2031-12-01 00:00:00+00') TO ('2032-01-01 00:00:00+00')",)
        # Inserts keep going into both months, and the default is empty again.
        insert_at(su, "2031-11-15 00:00:00+00")
        insert_at(su, "2031-12-31 23:59:59+00")
        assert su.execute("SELECT count(*) FROM hush.audit_log_default").fetchone() == (0,)
        assert su.execute("SELECT count(*) FROM hush.audit_log_2031_11").fetchone() == (2,)
        assert su.execute("SELECT count(*) FROM hush.audit_log_2031_12").fetchone() == (2,)
        # Each new month is logged.
        logged = {r[0] for r in su.execute("SELECT detail->>'partition' FROM hush.maintenance_log "
                                           "WHERE task = 'create_audit_partition'")}
        assert {"hush.audit_log_2031_11", "hush.audit_log_2031_12", "hush.audit_log_2040_06"} <= logged
    # The API's own inserts (the clock's month) go on working, in this month's partition.
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
        get(a, "acme", "k")
    with db.connect() as su:
        assert su.execute("""SELECT DISTINCT tableoid::regclass::text FROM hush.audit_log
                              WHERE action IN ('create', 'read')""").fetchall() == [
            ("hush.audit_log_" + su.execute("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')").fetchone()[0],)]


def test_creating_partitions_again_is_a_no_op(db):
    with db.connect("adam") as adm:
        first = rows(adm, "SELECT * FROM hush.create_audit_partitions(2)")
        again = rows(adm, "SELECT * FROM hush.create_audit_partitions(2)")
        assert len(first) == 3 and again == []
        with raises_sqlstate("SH004"):
            adm.execute("SELECT hush.create_audit_partitions(-1)")
    for role in ("alice", "audrey"):
        with db.connect(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT hush.create_audit_partitions()")


TAMPERING = ["UPDATE {t} SET id = id", "DELETE FROM {t}", "TRUNCATE {t}"]


def test_append_only_for_the_owner_and_the_superuser_on_every_partition(db):
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    with db.connect() as su:
        su.execute("SELECT hush.create_audit_partitions(0)")
        insert_at(su, FAR_FUTURE)  # one row in the DEFAULT partition
        su.execute("SELECT hush.seal_audit()")
        month = partitions(su)[0]
        assert month.startswith("hush.audit_log_20")
        tables = ["hush.audit_log", "hush.audit_log_default", month, "hush.audit_seals", "hush.maintenance_log"]
        counts = {t: su.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
        # The superuser has every privilege: the triggers stop it, on each partition
        # too (statement-level TRUNCATE triggers are not inherited).
        for t in tables:
            for q in TAMPERING:
                with raises_sqlstate("SH040"):
                    su.execute(q.format(t=t))
        # The owner of the tables (and of every API function) has no such rights.
        su.execute("SET ROLE hush_owner")
        for t in tables:
            for q in TAMPERING:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    su.execute(q.format(t=t))
        su.execute("RESET ROLE")
        # A session setting is no key: whatever one SETs, the trigger still says no.
        su.execute("SET hush.retention = 'on'")
        with raises_sqlstate("SH040"):
            su.execute("DELETE FROM hush.audit_log")
        assert {t: su.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables} == counts
    # Application roles, auditors and admins: no rights either.
    for role in ("alice", "audrey", "adam", "otto"):
        with db.connect(role) as conn:
            for t in tables:
                for q in TAMPERING:
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(q.format(t=t))


def test_only_auditors_and_admins_read_seals_and_the_maintenance_log(db):
    with db.connect() as su:
        su.execute("SELECT hush.create_audit_partitions(0)")
    for role in ("audrey", "adam"):
        with db.connect(role) as conn:
            assert conn.execute("SELECT count(*) > 0 FROM hush.maintenance_log").fetchone() == (True,)
            conn.execute("SELECT count(*) FROM hush.audit_seals")
    for role in ("alice", "rita", "otto"):
        with db.connect(role) as conn:
            for t in ("hush.audit_seals", "hush.maintenance_log", "hush.audit_log_default"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"SELECT * FROM {t}")


# -- the recovery window ------------------------------------------------------------

def backdate_deletion(db, tenant: str, name: str, days: int) -> None:
    db.sql("UPDATE hush.secrets SET deleted_at = now() - make_interval(days => %s) "
           "WHERE tenant_id = %s AND name = %s", [days, tenant, name])


def test_deleted_secrets_are_purged_after_their_tenants_window(db):
    with db.connect("alice") as a:
        for name in ("old", "recent", "live"):
            save(a, "acme", name, "value-1")
            save(a, "acme", name, "value-2")
        a.execute("SELECT hush.delete_secret('acme', 'old')")
        a.execute("SELECT hush.delete_secret('acme', 'recent')")
    with db.connect("bob") as b:
        save(b, "globex", "old", "g")
        b.execute("SELECT hush.delete_secret('globex', 'old')")
    backdate_deletion(db, "acme", "old", 31)
    backdate_deletion(db, "acme", "recent", 29)
    backdate_deletion(db, "globex", "old", 31)
    with db.connect("adam") as adm:
        # globex keeps deleted secrets for 60 days.
        assert rows(adm, "SELECT * FROM hush.configure_tenant('globex', recovery_days => 60)")[0]["recovery_days"] == 60
        with raises_sqlstate("SH004"):
            adm.execute("SELECT hush.configure_tenant('globex', recovery_days => 0)")
        assert rows(adm, "SELECT * FROM hush.purge_deleted_secrets()") == [{"tenant_id": "acme", "secrets_purged": 1}]
        assert rows(adm, "SELECT * FROM hush.purge_deleted_secrets()") == []
    with db.connect() as su:
        assert su.execute("SELECT count(*) FROM hush.secret_versions v JOIN hush.secrets s "
                          "ON s.tenant_id = v.tenant_id AND s.id = v.secret_id "
                          "WHERE s.tenant_id = 'acme' AND s.name = 'old'").fetchone() == (0,)
        purge = rows(su, "SELECT * FROM hush.audit_log WHERE action = 'purge'")
        assert [(p["tenant_id"], p["secret_name"], p["version"], p["detail"]["versions"]) for p in purge] == [
            ("acme", "old", 2, 2)]
        assert su.execute("SELECT detail FROM hush.maintenance_log WHERE task = 'purge_deleted_secrets'"
                          ).fetchall() == [({"tenants": {"acme": 1}},)]
    with db.connect("alice") as a:
        with raises_sqlstate("SH010"):
            a.execute("SELECT hush.restore_secret('acme', 'old')")
        assert a.execute("SELECT name FROM hush.restore_secret('acme', 'recent')").fetchone() == ("recent",)
        assert get(a, "acme", "live")["value"] == "value-2"
        assert save(a, "acme", "old", "reborn")["version"] == 1  # the name is free again
    with db.connect("bob") as b:
        assert b.execute("SELECT name FROM hush.restore_secret('globex', 'old')").fetchone() == ("old",)
    for role in ("alice", "audrey"):
        with db.connect(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT hush.purge_deleted_secrets()")


def test_rows_waiting_in_the_default_partition_move_only_between_seals(db):
    """create_audit_partitions moves waiting rows into their new partition under the sealers'
    lock: while a seal is being taken (its transaction still open) the move waits, so no
    sealer can plan before the attach and read after the move, and miss the rows."""
    with db.connect("alice") as alice:
        save(alice, "acme", "k", "v")
    assert db.sql("SELECT count(*) FROM hush.audit_log_default") != [(0,)]
    with db.connect("audrey", autocommit=False) as sealer, db.connect("adam") as admin:
        sealer.execute("SELECT * FROM hush.seal_audit()")  # holds the seal lock until it commits
        admin.execute("SET statement_timeout = '1s'")
        with raises_sqlstate("57014"):  # waited for the sealer: canceled by the timeout
            admin.execute("SELECT * FROM hush.create_audit_partitions(0)")
        sealer.commit()
        admin.execute("SET statement_timeout = 0")
        moved = admin.execute("SELECT sum(rows_moved) FROM hush.create_audit_partitions(0)").fetchone()[0]
    assert moved and db.sql("SELECT count(*) FROM hush.audit_log_default") == [(0,)]
    assert db.sql("SELECT ok FROM hush.verify_audit()") == [(True,)]
