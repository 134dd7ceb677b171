"""Maintenance under contention. No role outside hush's maintenance roles can hold
sealing, verification, partitions, retention or purge up, and each gives up after
a bounded wait (SH061) rather than hanging; retention never makes audited calls
queue behind a session left idle in its transaction (it defers instead); and
seal_audit names the transaction that holds its horizon back."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import hush
from helpers import get, raises_sqlstate, rows, save

MAINTENANCE = ["SELECT * FROM hush.seal_audit()", "SELECT * FROM hush.verify_audit()",
               "SELECT * FROM hush.create_audit_partitions(1)", "SELECT * FROM hush.purge_deleted_secrets()",
               "SELECT * FROM hush.cleanup_audit_logs()", "SELECT * FROM hush.cleanup_oauth()"]


def aged(conn: psycopg.Connection, days: float, action: str) -> None:
    conn.execute("""INSERT INTO hush.audit_log (tenant_id, action, at)
                    VALUES ('acme', %s, now() - make_interval(secs => %s * 86400))""", [action, days])


def said(d: psycopg.errors.Diagnostic) -> tuple[str, str, str]:
    """A notice's severity, message and hint (the Diagnostic itself does not outlive the handler)."""
    return d.severity_nonlocalized or "", d.message_primary or "", d.message_hint or ""


def old_trail(db: Any) -> list[str]:
    """Rows 3000 and 2900 days old in partitions of their own, the trail sealed: the partitions
    retention drops."""
    with db.connect() as su:
        aged(su, 3000, "ancient")
        aged(su, 2900, "ancient")
        su.execute("SELECT * FROM hush.create_audit_partitions(1)")
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
        get(a, "acme", "k")
    with db.connect("audrey") as aud:
        aud.execute("SELECT * FROM hush.seal_audit()")
    return [f"hush.{n}" for (n,) in db.sql(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'hush.audit_log'::regclass
              AND c.relname < 'audit_log_' || to_char(now() - interval '2556 days', 'YYYY_MM')
              AND c.relname <> 'audit_log_default' ORDER BY 1""")]


def test_no_role_without_maintenance_rights_holds_maintenance_up(db):
    """Advisory locks (any role may take any key) and the weak locks any role that can name a
    table holds while a view or rule of its own is parsed: maintenance waits for none of them."""
    with db.connect() as su:
        aged(su, 3000, "ancient")
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    with db.connect("otto", autocommit=False) as otto, db.connect("mallory", autocommit=False) as mal:
        otto.execute("SELECT pg_advisory_lock(1752527720, 1), pg_advisory_lock(1752527720, 2)")
        otto.execute("SELECT pg_advisory_xact_lock(1752527720, 1), pg_advisory_xact_lock(1752527720, 2)")
        mal.execute("CREATE TEMP TABLE t (x integer)")
        for rel in ("audit_seals", "maintenance_log", "secrets", "secret_versions"):
            mal.execute(f"CREATE RULE r_{rel} AS ON INSERT TO t DO INSTEAD DELETE FROM hush.{rel}")
        mal.execute("CREATE TEMP VIEW v AS SELECT * FROM hush.audit_seals FOR UPDATE")
        held = db.sql("SELECT relation::regclass::text, mode FROM pg_locks WHERE pid = %s AND locktype = 'relation' "
                      "AND relation = 'hush.audit_seals'::regclass", [mal.info.backend_pid])
        assert ("hush.audit_seals", "RowExclusiveLock") in held  # what it may hold, and keeps
        for mode in ("ACCESS SHARE", "SHARE UPDATE EXCLUSIVE", "ACCESS EXCLUSIVE"):  # cannot even name it
            with raises_sqlstate("42501"), mal.transaction():
                mal.execute(f"LOCK TABLE hush_private.maintenance_lock IN {mode} MODE")
        with db.connect("adam") as adm:
            adm.execute("SET statement_timeout = '15s'")  # each of these used to wait for ever
            for q in MAINTENANCE:
                adm.execute(q)
            assert rows(adm, "SELECT * FROM hush.verify_audit()")[0]["ok"]
            # The caller's lock_timeout is its own again afterwards.
            assert adm.execute("SHOW lock_timeout").fetchone() == ("0",)
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'ancient'") == [(0,)]


@pytest.mark.parametrize("table", ["maintenance_lock", "audit_cursor_key"])
def test_no_application_role_can_queue_a_lock_on_hush_private(db, table):
    """A lock held while a statement of its own is prepared, and an ACCESS EXCLUSIVE request
    queued behind it (CREATE RULE locks before it checks ownership), made every maintenance call
    fail with SH061 (blaming 'another maintenance call'), or every tenant's audit_log() hang."""
    for role in ("mallory", "rita", "adam", "audrey", "otto"):
        with db.connect(role, autocommit=False) as c:
            for sql in (f"PREPARE p AS SELECT 1 FROM hush_private.{table}",
                        f"CREATE RULE r AS ON INSERT TO hush_private.{table} DO INSTEAD NOTHING",
                        f"LOCK TABLE hush_private.{table} IN ACCESS SHARE MODE"):
                with raises_sqlstate("42501") as e, c.transaction():
                    c.execute(sql)
                assert "schema hush_private" in str(e.value), (role, sql, e.value)
            assert db.sql("SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = %s::regclass",
                          [c.info.backend_pid, f"hush_private.{table}"]) == [(0,)]
    with db.connect("alice") as a, db.connect("adam") as adm:
        save(a, "acme", "k", "v")
        assert rows(a, "SELECT * FROM hush.audit_log('acme')")
        adm.execute("SET lock_timeout = '1s'")
        for q in MAINTENANCE:
            adm.execute(q)


def test_hush_private_goes_only_with_the_extension(db):
    """A member of the extension: PostgreSQL itself refuses to drop it, or what is in it, alone."""
    with db.connect() as su:
        for sql in ("DROP SCHEMA hush_private CASCADE", "DROP TABLE hush_private.maintenance_lock"):
            with raises_sqlstate("2BP01"):
                su.execute(sql)


def test_a_lock_held_elsewhere_is_not_blamed_on_another_maintenance_call(db):
    with db.connect("postgres", autocommit=False) as su, db.connect("adam") as adm:
        su.execute("LOCK TABLE hush.audit_seals IN ACCESS EXCLUSIVE MODE")
        adm.execute("SET lock_timeout = '300ms'")
        with raises_sqlstate("SH061") as ei:
            adm.execute("SELECT * FROM hush.seal_audit()")
        assert "another maintenance call" not in str(ei.value) and "a lock on a table it needs" in str(ei.value)


def test_every_maintenance_step_gives_up_after_a_bounded_wait(db):
    with db.connect("audrey", autocommit=False) as first, db.connect("adam") as adm:
        first.execute("SELECT * FROM hush.seal_audit()")  # its transaction stays open, holding what sealing holds
        adm.execute("SET lock_timeout = '300ms'")
        for q in MAINTENANCE:
            t0 = time.monotonic()
            with raises_sqlstate("SH061") as ei:
                adm.execute(q)
            assert time.monotonic() - t0 < 3, q
            assert "waited 300 ms" in str(ei.value) and "another maintenance call is running" in str(ei.value)
            assert f"pid {first.info.backend_pid} (audrey) holds ShareUpdateExclusiveLock on " \
                   "hush_private.maintenance_lock" in str(ei.value)
            assert "lock_timeout" in ei.value.diag.message_hint
        # No lock_timeout (wait for ever) waits 5 seconds.
        adm.execute("SET lock_timeout = 0")
        t0 = time.monotonic()
        with pytest.raises(hush.MaintenanceBusy):
            hush.Audit(adm).seal()
        assert 4.5 < time.monotonic() - t0 < 10
        first.commit()
        assert hush.Audit(adm).seal().seals_created == 0


def test_partition_creation_gives_up_on_a_default_partition_kept_in_use(db):
    """Attaching a partition locks the DEFAULT partition; a session that keeps a lock there (here
    a writer's own rule, which no privilege stops) makes it give up, not hang, and audited calls,
    whose rows go to the DEFAULT partition meanwhile, go on."""
    with db.connect("mallory", autocommit=False) as mal, db.connect("alice") as a, db.connect("adam") as adm:
        mal.execute("CREATE TEMP TABLE t (x integer)")
        mal.execute("CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM hush.audit_log_default")
        adm.execute("SET statement_timeout = '20s'")
        done: dict[str, Any] = {}

        def create() -> None:
            try:
                adm.execute("SELECT * FROM hush.create_audit_partitions(0)")
            except psycopg.Error as e:
                done["error"] = e
        worker = threading.Thread(target=create)
        worker.start()
        slowest = 0.0
        while worker.is_alive():
            t0 = time.monotonic()
            save(a, "acme", "during", "v")
            slowest = max(slowest, time.monotonic() - t0)
        worker.join()
        assert done["error"].sqlstate == "SH061", done["error"]
        assert f"pid {mal.info.backend_pid} (mallory)" in str(done["error"])
        assert slowest < 1.5
        mal.rollback()
        assert len(rows(adm, "SELECT * FROM hush.create_audit_partitions(0)")) == 1


def _calls_in_a_loop(db: Any, user: str, tenant: str, stop: threading.Event, out: list[float]) -> None:
    with db.connect(user) as conn:
        i = 0
        while not stop.is_set():
            t0 = time.monotonic()
            if user != "rita":
                save(conn, tenant, f"loop{i % 3}", f"v{i}")
            get(conn, tenant, "loop0" if user != "rita" else "k")
            out.append(time.monotonic() - t0)
            i += 1


# Sessions idle in a transaction that keep a lock retention's drop needs: a writer's audit
# row (ROW EXCLUSIVE on hush.audit_log; a read's record is committed on a connection of its
# own), and reads of the trail back to the expired months (ACCESS SHARE on their partitions).
IDLE_HOLDERS = {
    "an audited write": ("alice", "SELECT * FROM hush.save_secret('acme', 'idle', 'v')"),
    "its own trail back to the oldest months": (
        "alice", "SELECT count(*) FROM hush.audit_log(tenant => 'acme', since => now() - interval '4000 days')"),
    "an auditor reading the oldest months": (
        "audrey", "SELECT count(*) FROM hush.audit_log WHERE at < now() - interval '2556 days'"),
}


@pytest.mark.parametrize("holder", sorted(IDLE_HOLDERS))
def test_retention_defers_a_busy_partition_and_never_blocks_the_hot_path(db, holder):
    old = old_trail(db)
    assert len(old) == 2
    with db.connect("bob") as b:
        save(b, "globex", "loop0", "v")
    role, statement = IDLE_HOLDERS[holder]
    idle = db.connect(role, autocommit=False)
    idle.execute(statement)  # and then nothing, its transaction open
    stop = threading.Event()
    timings: dict[str, list[float]] = {"bob": [], "rita": []}
    workers = [threading.Thread(target=_calls_in_a_loop, args=(db, "bob", "globex", stop, timings["bob"])),
               threading.Thread(target=_calls_in_a_loop, args=(db, "rita", "acme", stop, timings["rita"]))]
    for w in workers:
        w.start()
    warnings: list[tuple[str, str, str]] = []
    try:
        time.sleep(0.3)
        with db.connect("adam") as adm:
            adm.add_notice_handler(lambda d: warnings.append(said(d)))
            adm.execute("SET statement_timeout = '20s'")
            t0 = time.monotonic()
            res = rows(adm, "SELECT * FROM hush.cleanup_audit_logs()")[0]
            took = time.monotonic() - t0
        time.sleep(0.3)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert res["partitions_deferred"] == old
    assert (res["partitions_dropped"], res["rows_removed"], res["anchor_seal_id"]) == (0, 0, None)
    assert took < 10
    # Other tenants' and the same tenant's audited reads and writes went on throughout.
    for who, t in timings.items():
        assert len(t) >= 5, who
        assert max(t) < 1.5, (who, max(t))
    warned = [w for w in warnings if w[0] == "WARNING"]
    assert warned and old[0] in warned[0][1] and f"pid {idle.info.backend_pid}" in warned[0][1], warnings
    assert "idle_in_transaction_session_timeout" in warned[0][2]
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'ancient'") == [(2,)]
    log = db.sql("SELECT detail FROM hush.maintenance_log WHERE task = 'cleanup_audit_logs'")
    assert [d["partitions_deferred"] for (d,) in log] == [old] and log[0][0]["rows_removed"] == 0
    # Once the session ends, the next run drops them and anchors the chain.
    idle.rollback()
    idle.close()
    with db.connect("adam") as adm:
        res = hush.Audit(adm).cleanup()
        assert res.partitions_dropped == 2 and res.rows_removed == 2 and res.partitions_deferred == []
        assert res.anchor_seal_id is not None
    with db.connect("audrey") as aud:
        assert rows(aud, "SELECT * FROM hush.verify_audit()")[0]["ok"]


def test_seal_audit_names_the_transaction_that_holds_its_horizon_back(db):
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    with db.connect("otto", autocommit=False) as otto, db.connect("audrey") as aud:
        otto.execute("SELECT pg_catalog.txid_current()")  # any role: a transaction id, then idle
        with db.connect("bob") as b:
            save(b, "globex", "later", "v")  # committed, but after otto's transaction began
        heard: list[tuple[str, str, str]] = []
        aud.add_notice_handler(lambda d: heard.append(said(d)))
        s = rows(aud, "SELECT * FROM hush.seal_audit()")[0]
        assert s["unsealed_rows"] >= 1
        assert (s["horizon_pid"], s["horizon_role"]) == (otto.info.backend_pid, "otto")
        assert timedelta(0) <= s["horizon_age"] < timedelta(minutes=5)
        notice = [d for d in heard if f"pid {otto.info.backend_pid}" in d[1]]
        assert notice and notice[0][0] == "NOTICE", heard  # a WARNING once it has been open a minute
        assert "role otto" in notice[0][1] and "idle in transaction" in notice[0][1]
        assert f"pg_terminate_backend({otto.info.backend_pid})" in notice[0][2]
        assert "idle_in_transaction_session_timeout" in notice[0][2]
        sealed = hush.Audit(aud).seal()  # the client reads the same columns
        assert (sealed.horizon_pid, sealed.horizon_role) == (otto.info.backend_pid, "otto")
        otto.commit()
        s = rows(aud, "SELECT * FROM hush.seal_audit()")[0]
        assert s["unsealed_rows"] == 0 and s["rows_sealed"] >= 1
        assert (s["horizon_pid"], s["horizon_role"], s["horizon_age"]) == (None, None, None)
