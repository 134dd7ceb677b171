"""hush.maintain_secrets() (issue 21), the hourly 'hush-secret-upkeep' job: version
retention for what aged out between saves (the tenant's settings and each secret's own;
never a staged version, nor a soft-deleted secret's), expiry and rotation reminders in
hush.secret_events (the reasons of due_for_rotation, each written once), removal of old
reminders, one hush.maintenance_log row with the counts, and per tenant what was done.
hush.secret_events() shows a tenant's reminders to roles that may list their names. The
purge of soft-deleted secrets and retention by the job notify the tenant's change channel.
Real server, non-superuser roles: adam (hush_admin) runs maintenance, alice and bob write,
rita reads acme; the superuser sets up what no API sets (ages, schedules) and inspects."""
from __future__ import annotations

from typing import Any, Iterator

import psycopg
import pytest

from helpers import cluster_roles, raises_sqlstate, rows, save

ZERO = {"versions_destroyed": 0, "expiring": 0, "rotation_due": 0, "events_removed": 0}


def result(tenant: str, **counts: int) -> dict:
    return {"tenant_id": tenant, **ZERO, **counts}


def maintain(db: Any, *args: Any) -> list[dict]:
    with db.connect("adam") as adam:
        return rows(adam, "SELECT * FROM hush.maintain_secrets(%s)" % ", ".join(["%s"] * len(args)), list(args))


def setting(db: Any, tenant: str, name: str, **cols: str) -> None:
    """Set columns of a secret as SQL expressions (the superuser: ages and schedules no API sets)."""
    sets = ", ".join(f"{k} = {v}" for k, v in cols.items())
    db.sql(f"UPDATE hush.secrets SET {sets} WHERE tenant_id = %s AND name = %s", [tenant, name])


def age(db: Any, tenant: str, name: str, versions: list[int], days: int) -> None:
    db.sql("UPDATE hush.secret_versions v SET created_at = now() - make_interval(days => %s) FROM hush.secrets s "
           "WHERE s.tenant_id = %s AND s.name = %s AND v.tenant_id = s.tenant_id AND v.secret_id = s.id "
           "AND v.version = ANY(%s)", [days, tenant, name, versions])


def destroyed(db: Any, tenant: str, name: str) -> list[int]:
    """The versions whose value is gone; each still has its row (metadata kept)."""
    got = db.sql("SELECT v.version, v.ciphertext IS NULL AND v.wrapped_dek IS NULL AND v.destroyed_at IS NOT NULL "
                 "FROM hush.secret_versions v JOIN hush.secrets s ON s.tenant_id = v.tenant_id AND s.id = v.secret_id "
                 "WHERE s.tenant_id = %s AND s.name = %s ORDER BY v.version", [tenant, name])
    assert [v for v, _ in got] == list(range(1, len(got) + 1))
    return [v for v, gone in got if gone]


def versions(conn: psycopg.Connection, tenant: str, name: str, n: int) -> None:
    for i in range(n):
        save(conn, tenant, name, f"{name}-value-{i + 1}")


def test_retention_by_the_job_for_tenant_and_secret_settings(db: Any) -> None:
    with db.connect("alice") as a:
        versions(a, "acme", "app/a", 5)
        versions(a, "acme", "app/b", 4)
        versions(a, "acme", "app/gone", 4)
        a.execute("SELECT hush.delete_secret('acme', 'app/gone')")
    with db.connect("bob") as b:
        versions(b, "globex", "g", 4)
        versions(b, "globex", "h", 4)
    with db.connect("postgres") as su:  # a tenant without retention: the job leaves it alone
        versions(su, "initech", "i", 4)
    # Retention set after the saves (which would apply it themselves): the job catches up.
    with db.connect("adam") as adam:
        adam.execute("SELECT hush.configure_tenant('acme', max_versions => 2)")
    setting(db, "acme", "app/b", max_versions="3")  # a secret's own setting beats its tenant's
    setting(db, "globex", "g", destroy_versions_after="'30 days'")
    age(db, "globex", "g", [1, 2], 40)
    age(db, "globex", "h", [1, 2], 40)
    audit_before = db.sql("SELECT max(id) FROM hush.audit_log")[0][0]

    assert maintain(db) == [result("acme", versions_destroyed=4), result("globex", versions_destroyed=2)]
    assert destroyed(db, "acme", "app/a") == [1, 2, 3]
    assert destroyed(db, "acme", "app/b") == [1]
    assert destroyed(db, "acme", "app/gone") == []  # a soft-deleted secret keeps its versions
    assert destroyed(db, "globex", "g") == [1, 2]
    assert destroyed(db, "globex", "h") == [] and destroyed(db, "initech", "i") == []
    with db.connect("alice") as a:
        with raises_sqlstate("SH015"):
            a.execute("SELECT * FROM hush.get_secret('acme', 'app/a', 3)")
        assert rows(a, "SELECT value FROM hush.get_secret('acme', 'app/a')")[0]["value"] == "app/a-value-5"
        assert rows(a, "SELECT value FROM hush.get_secret('acme', 'app/a', 4)")[0]["value"] == "app/a-value-4"
    # Audited as destroys by the admin who ran the job, each naming its rule.
    audited = db.sql("SELECT tenant_id, secret_name, version, db_role, detail FROM hush.audit_log "
                     "WHERE id > %s AND action = 'destroy' ORDER BY tenant_id, secret_name, version", [audit_before])
    assert [(t, n, v, r) for t, n, v, r, _ in audited] == [
        ("acme", "app/a", 1, "adam"), ("acme", "app/a", 2, "adam"), ("acme", "app/a", 3, "adam"),
        ("acme", "app/b", 1, "adam"), ("globex", "g", 1, "adam"), ("globex", "g", 2, "adam")]
    assert [d["retention"] for *_, d in audited[:4]] == [{"max_versions": 2}] * 3 + [{"max_versions": 3}]
    assert all(set(d["retention"]) == {"destroy_versions_after"} for *_, d in audited[4:])
    # Logged; and nothing more to do the next time.
    [(detail,)] = db.sql("SELECT detail FROM hush.maintenance_log WHERE task = 'maintain_secrets'")
    assert (detail["event_days"], detail["versions_destroyed"], detail["expiring"], detail["rotation_due"],
            detail["events_removed"]) == (90, 6, 0, 0, 0)
    assert detail["tenants"] == {"acme": {**ZERO, "versions_destroyed": 4},
                                 "globex": {**ZERO, "versions_destroyed": 2}}
    assert maintain(db) == []
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE id > %s AND action = 'destroy'", [audit_before]) \
        == [(6,)]
    assert db.sql("SELECT count(*) FROM hush.maintenance_log WHERE task = 'maintain_secrets'") == [(2,)]


def test_staged_versions_are_never_destroyed(db: Any) -> None:
    with db.connect("bob") as b:
        versions(b, "globex", "k", 6)
    # Current 4, previous 2, pending 6 (as a rotation in progress leaves them), one version kept.
    setting(db, "globex", "k", current_version="4", previous_version="2", pending_version="6", max_versions="1")
    assert maintain(db) == [result("globex", versions_destroyed=3)]
    assert destroyed(db, "globex", "k") == [1, 3, 5]


def test_reminders_at_their_boundaries_written_once(db: Any) -> None:
    with db.connect("alice") as a:
        for name in ("e/now", "e/edge", "e/out", "r/now", "r/edge", "r/out", "both", "deleted", "plain"):
            save(a, "acme", name, "v")
        a.execute("SELECT hush.delete_secret('acme', 'deleted')")
    with db.connect("bob") as b:
        save(b, "globex", "g", "v")
    # now() is the transaction's: set the due times and run the job in one transaction, as adam.
    with db.connect("postgres", autocommit=False) as su:
        su.execute("SET TimeZone = 'UTC'")
        expires = {"e/now": "now()", "e/edge": "now() + interval '336 hours'",
                   "e/out": "now() + interval '336 hours 0.000001 seconds'", "both": "now() - interval '1 day'",
                   "deleted": "now() - interval '1 day'"}
        for name, at in expires.items():
            su.execute(f"UPDATE hush.secrets SET expires_at = {at} WHERE tenant_id = 'acme' AND name = %s", [name])
        rotated = {"r/now": "now() - interval '720 hours'", "r/edge": "now() - interval '384 hours'",
                   "r/out": "now() - interval '383:59:59.999999'", "both": "now() - interval '40 days'"}
        for name, at in rotated.items():
            su.execute(f"UPDATE hush.secrets SET rotate_every = '720 hours', rotated_at = {at} "
                       "WHERE tenant_id = 'acme' AND name = %s", [name])
        su.execute("UPDATE hush.secrets SET expires_at = now() + interval '1 hour' WHERE tenant_id = 'globex'")
        now = su.execute("SELECT now()").fetchone()[0]
        su.execute("SET ROLE adam")
        first = rows(su, "SELECT * FROM hush.maintain_secrets()")
        su.commit()
    assert first == [result("acme", expiring=3, rotation_due=3), result("globex", expiring=1)]
    events = db.sql("SELECT tenant_id, name, event, due_at = %s AS due_now, detail FROM hush.secret_events "
                    "ORDER BY tenant_id, name, event", [now])
    assert [e[:4] for e in events] == [
        ("acme", "both", "expired", False), ("acme", "both", "rotation_overdue", False),
        ("acme", "e/edge", "expiring", False), ("acme", "e/now", "expired", True),
        ("acme", "r/edge", "rotation_due", False), ("acme", "r/now", "rotation_overdue", True),
        ("globex", "g", "expiring", False)]
    assert events[0][4] == {"version": 1}
    assert db.sql("SELECT count(*) FROM hush.secret_events WHERE name IN ('e/edge', 'r/edge') "
                  "AND due_at = %s + interval '336 hours'", [now]) == [(2,)]
    # Again, a moment later: only the two just past the window's edge come in; nothing twice.
    assert maintain(db) == [result("acme", expiring=1, rotation_due=1)]
    assert db.sql("SELECT name, event FROM hush.secret_events WHERE name LIKE '%%/out' ORDER BY name") == [
        ("e/out", "expiring"), ("r/out", "rotation_due")]
    assert maintain(db) == []
    assert db.sql("SELECT count(*), count(DISTINCT (secret_id, event, due_at)) FROM hush.secret_events") == [(9, 9)]
    # Once expired, an expiring secret gets its 'expired' reminder too; a rotation moves the due time.
    setting(db, "acme", "e/edge", expires_at="now() - interval '1 second'")
    setting(db, "acme", "r/now", rotated_at="now()")
    assert maintain(db) == [result("acme", expiring=1)]
    # The log line monitoring reads: each run's counts, per tenant.
    log = [d for (d,) in db.sql("SELECT detail FROM hush.maintenance_log WHERE task = 'maintain_secrets' ORDER BY id")]
    assert [(d["expiring"], d["rotation_due"]) for d in log] == [(4, 3), (1, 1), (0, 0), (1, 0)]
    assert log[0]["tenants"] == {"acme": {**ZERO, "expiring": 3, "rotation_due": 3},
                                 "globex": {**ZERO, "expiring": 1}}
    assert log[2]["tenants"] == {}


def test_the_tenant_expiry_warning_sets_the_window(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "far", "v")
    setting(db, "acme", "far", expires_at="now() + interval '17 days'")
    assert maintain(db) == []
    with db.connect("adam") as adam:
        adam.execute("SELECT hush.configure_tenant('acme', expiry_warning => '20 days')")
    assert maintain(db) == [result("acme", expiring=1)]
    with db.connect("adam") as adam:
        adam.execute("SELECT hush.configure_tenant('acme', expiry_warning => '0')")
    setting(db, "acme", "far", expires_at="now() + interval '1 minute'")
    assert maintain(db) == []


def _event(db: Any, tenant: str, name: str, days_ago: float) -> None:
    db.sql("INSERT INTO hush.secret_events (tenant_id, at, secret_id, name, event, due_at) "
           "VALUES (%s, now() - make_interval(secs => %s * 86400), gen_random_uuid(), %s, 'expired', now())",
           [tenant, days_ago, name])


def test_old_reminders_go_in_every_tenant(db: Any) -> None:
    for tenant, name, days in (("acme", "a", 400), ("acme", "b", 91), ("acme", "c", 89), ("acme", "d", 1.5),
                               ("acme", "e", 0.5), ("globex", "g", 100), ("initech", "i", 95)):
        _event(db, tenant, name, days)
    assert maintain(db) == [result("acme", events_removed=2), result("globex", events_removed=1),
                            result("initech", events_removed=1)]
    assert db.sql("SELECT name FROM hush.secret_events ORDER BY name") == [("c",), ("d",), ("e",)]
    [(detail,)] = db.sql("SELECT detail FROM hush.maintenance_log WHERE task = 'maintain_secrets'")
    assert (detail["events_removed"], detail["tenants"]["initech"]) == (4, {**ZERO, "events_removed": 1})
    # Down to a day.
    assert maintain(db, 1) == [result("acme", events_removed=2)]
    assert db.sql("SELECT name FROM hush.secret_events") == [("e",)]


def test_only_admins_run_it_within_its_limits(db: Any) -> None:
    _event(db, "acme", "a", 400)
    with db.connect("adam") as adam:
        for days in (0, 36501, None):
            with raises_sqlstate("SH004"):
                adam.execute("SELECT * FROM hush.maintain_secrets(%s)", [days])
    for user in ("alice", "rita", "audrey", "wendy", "otto"):
        with db.connect(user) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM hush.maintain_secrets()")
    assert db.sql("SELECT count(*) FROM hush.secret_events") == [(1,)]
    assert db.sql("SELECT count(*) FROM hush.maintenance_log WHERE task = 'maintain_secrets'") == [(0,)]


def _channel(db: Any, tenant: str) -> str:
    channel = "hush_changes_" + tenant.encode().hex().ljust(32, "0")
    db.sql("INSERT INTO hush.tenants (tenant_id, change_channel) VALUES (%s, %s) "
           "ON CONFLICT (tenant_id) DO UPDATE SET change_channel = excluded.change_channel", [tenant, channel])
    return channel


def _heard(listener: psycopg.Connection, db: Any) -> list[str]:
    """The channels notified since LISTEN, up to a marker sent after everything else (a
    transaction's notifications arrive in commit order): no waiting for what never comes."""
    db.sql("NOTIFY hush_test_marker")
    heard = []
    for n in listener.notifies(timeout=10):
        if n.channel == "hush_test_marker":
            return heard
        assert n.payload == ""
        heard.append(n.channel)
    raise AssertionError("the marker did not arrive")


def test_retention_and_purge_notify_the_tenant_channel(db: Any) -> None:
    acme, globex = _channel(db, "acme"), _channel(db, "globex")
    with db.connect("alice") as a:
        versions(a, "acme", "x", 3)
        save(a, "acme", "old", "v")
        a.execute("SELECT hush.delete_secret('acme', 'old')")
    with db.connect("bob") as b:
        versions(b, "globex", "y", 3)
    setting(db, "acme", "x", max_versions="1")
    setting(db, "globex", "y", expires_at="now() + interval '1 day'")  # a reminder only: no change
    with db.connect("otto") as listener:
        for channel in (acme, globex, "hush_test_marker"):
            listener.execute(f"LISTEN {channel}")
        assert maintain(db) == [result("acme", versions_destroyed=1), result("globex", expiring=1)]
        assert _heard(listener, db) == [acme]
        db.sql("UPDATE hush.secrets SET deleted_at = now() - interval '31 days' WHERE deleted_at IS NOT NULL")
        with db.connect("adam") as adam:
            assert rows(adam, "SELECT * FROM hush.purge_deleted_secrets()") == [
                {"tenant_id": "acme", "secrets_purged": 1}]
        assert _heard(listener, db) == [acme]


@pytest.fixture(scope="module")
def lister(cluster: Any) -> Iterator[str]:
    """A reader role (cluster-wide, made once for this module), granted acme's names under app/ only."""
    with cluster_roles(cluster, {"up_app": "LOGIN IN ROLE hush_reader"}):
        yield "up_app"


def test_secret_events_for_roles_that_may_list_the_names(db: Any, lister: str) -> None:
    with db.connect("alice") as a:
        for name in ("app/one", "app/two", "db/pw"):
            save(a, "acme", name, "v")
    with db.connect("bob") as b:
        save(b, "globex", "g", "v")
    for tenant, name, hours in (("acme", "app/one", 2), ("acme", "db/pw", 24), ("acme", "app/two", 100),
                                ("globex", "g", 1)):
        setting(db, tenant, name, expires_at=f"now() + interval '{hours} hours'")
    maintain(db)
    setting(db, "acme", "app/one", expires_at="now() - interval '1 minute'")
    maintain(db)
    table = db.sql("SELECT id, at, name, event FROM hush.secret_events WHERE tenant_id = 'acme' ORDER BY id")
    # One run's reminders in the order they fall due.
    assert [(n, e) for _, _, n, e in table] == [("app/one", "expiring"), ("db/pw", "expiring"),
                                                ("app/two", "expiring"), ("app/one", "expired")]
    with db.connect("rita") as r:
        got = rows(r, "SELECT * FROM hush.secret_events('acme')")
        assert [(g["name"], g["event"]) for g in got] == [(n, e) for _, _, n, e in table]  # oldest first
        assert set(got[0]) == {"id", "at", "name", "event", "due_at", "detail"}
        # Ids say nothing of the shared sequence, and stay the same.
        assert not {g["id"] for g in got} & {i for i, *_ in table}
        assert [g["id"] for g in rows(r, "SELECT id FROM hush.secret_events('acme')")] == [g["id"] for g in got]
        assert len({g["id"] for g in got}) == 4
        assert [g["name"] for g in rows(r, "SELECT * FROM hush.secret_events('acme', max_rows => 2)")] == [
            "app/one", "db/pw"]
        since = rows(r, "SELECT * FROM hush.secret_events('acme', since => %s)", [table[3][1]])
        assert [(g["name"], g["event"]) for g in since] == [("app/one", "expired")]
        for bad in (0, 10001, None):
            with raises_sqlstate("SH004"):
                r.execute("SELECT * FROM hush.secret_events('acme', max_rows => %s)", [bad])
        with raises_sqlstate("SH020"):
            r.execute("SELECT * FROM hush.secret_events('globex')")
    with db.connect("bob") as b:
        with raises_sqlstate("SH020"):
            b.execute("SELECT * FROM hush.secret_events('acme')")
        assert [g["name"] for g in rows(b, "SELECT * FROM hush.secret_events('globex')")] == ["g"]
    with db.connect("otto") as o, pytest.raises(psycopg.errors.InsufficientPrivilege):
        o.execute("SELECT * FROM hush.secret_events('acme')")
    # A role that may list app/ only sees the reminders about names under it.
    db.sql("SELECT hush.grant(%s, 'acme', 'app/', ARRAY['list'])", [lister], user="adam")
    with db.connect(lister) as app:
        assert [g["name"] for g in rows(app, "SELECT * FROM hush.secret_events('acme')")] == [
            "app/one", "app/two", "app/one"]


def test_audit_maintain_and_the_cli_run_it(db: Any) -> None:
    import json

    import hush
    from test_cli import hush as hush_cli, ok
    with db.connect("alice") as a:
        versions(a, "acme", "x", 3)
        save(a, "acme", "soon", "v")
    setting(db, "acme", "x", max_versions="1")
    setting(db, "acme", "soon", expires_at="now() + interval '1 day'")
    _event(db, "globex", "old", 100)
    with db.connect("adam") as adam:
        audit = hush.Audit(adam)
        assert audit.maintain_secrets() == [hush.SecretUpkeep("acme", 1, 1, 0, 0),
                                            hush.SecretUpkeep("globex", 0, 0, 0, 1)]
        _event(db, "globex", "old", 100)
        done = audit.maintain(months_ahead=1, secret_event_days=30)
        assert done.secrets == [hush.SecretUpkeep("globex", 0, 0, 0, 1)]
        with pytest.raises(hush.InvalidArgument) as ei:
            audit.maintain_secrets(event_days=0)
        assert "event_days" in ei.value.message
    _event(db, "globex", "old", 100)
    out = json.loads(ok(hush_cli(db, "audit", "maintain", "--json", "--months-ahead", "1", "--secret-event-days",
                                 "30", user="adam")).stdout)
    assert out["secrets"] == [{"tenant_id": "globex", "versions_destroyed": 0, "expiring": 0, "rotation_due": 0,
                               "events_removed": 1}]
    text = ok(hush_cli(db, "audit", "maintain", "--months-ahead", "1", user="adam")).stdout
    assert ("secrets: 0 versions destroyed by retention, 0 expiry and 0 rotation reminders written, "
            "0 old reminders removed") in text


def test_async_audit_maintain_secrets(db: Any) -> None:
    import asyncio

    import hush
    import hush.aio
    _event(db, "acme", "old", 100)

    async def run() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(db.dsn("adam"), autocommit=True) as conn:
            return await hush.aio.AsyncAudit(conn).maintain_secrets()
    assert asyncio.run(run()) == [hush.SecretUpkeep("acme", 0, 0, 0, 1)]


# -- one tenant cannot hold up the others ----------------------------------------------

def _maintain_waiting(db: Any, wait: str, **settings: str) -> tuple[list[dict], list[str]]:
    """maintain_secrets() by adam with lock_timeout `wait` (and other settings): (its rows, its warnings)."""
    with db.connect("adam") as adam:
        warnings: list[str] = []
        adam.add_notice_handler(lambda d: warnings.append(d.message_primary)
                                if d.severity_nonlocalized == "WARNING" else None)
        for k, v in {"lock_timeout": wait, **settings}.items():
            adam.execute("SELECT set_config(%s, %s, false)", [k, v])
        return rows(adam, "SELECT * FROM hush.maintain_secrets()"), warnings


def _log_detail(db: Any) -> dict:
    return db.sql("SELECT detail FROM hush.maintenance_log WHERE task = 'maintain_secrets' ORDER BY id DESC "
                  "LIMIT 1")[0][0]


def test_a_writers_open_transaction_does_not_stop_the_job(db: Any) -> None:
    # mallory (tenant evil) saves in a transaction she keeps open; that save's retention
    # locked evil/x's old versions, which the job would destroy too. The job must not wait
    # for her: acme's retention and reminders are done, evil's locked versions are left for
    # the next run (or her own save, if it commits).
    with db.connect("alice") as a:
        versions(a, "acme", "app/old", 3)
        save(a, "acme", "app/expiring", "x")
    setting(db, "acme", "app/expiring", expires_at="now() + interval '2 days'")
    db.sql("SELECT hush.configure_tenant('acme', max_versions => 1)", user="adam")
    with db.connect("mallory") as m:
        versions(m, "evil", "x", 3)
    setting(db, "evil", "x", destroy_versions_after="interval '1 day'")
    age(db, "evil", "x", [1, 2, 3], 2)
    hold = db.connect("mallory", autocommit=False)
    try:
        save(hold, "evil", "x", "held")  # destroys v1 and v2, uncommitted: their rows stay locked
        got, warnings = _maintain_waiting(db, "300ms")
        assert got == [result("acme", versions_destroyed=1, expiring=1)]
        assert warnings == []
        assert destroyed(db, "acme", "app/old") == [1]
        assert _log_detail(db)["failed"] == {}
    finally:
        hold.rollback()
        hold.close()
    # Her save rolled back: v1 (neither current nor previous) is the next run's.
    assert destroyed(db, "evil", "x") == []
    got, _ = _maintain_waiting(db, "300ms")
    assert got == [result("evil", versions_destroyed=1)]
    assert destroyed(db, "evil", "x") == [1]


def _block_reminder(db: Any, tenant: str, name: str) -> psycopg.Connection:
    """A superuser transaction, left open, that inserted the reminder the job is about to
    write for `name`: the job's insert waits for it (a failure of that tenant's part only)."""
    conn = db.connect(autocommit=False)
    conn.execute("INSERT INTO hush.secret_events (tenant_id, secret_id, name, event, due_at) "
                 "SELECT tenant_id, id, name, 'expiring', expires_at FROM hush.secrets "
                 "WHERE tenant_id = %s AND name = %s", [tenant, name])
    return conn


def test_a_tenant_that_fails_is_logged_and_the_others_are_done(db: Any) -> None:
    with db.connect("alice") as a:
        versions(a, "acme", "x", 3)
        save(a, "acme", "soon", "v")
    with db.connect("bob") as b:
        versions(b, "globex", "y", 3)
        save(b, "globex", "soon", "v")
    for tenant, name in (("acme", "soon"), ("globex", "soon")):
        setting(db, tenant, name, expires_at="now() + interval '1 day'")
    setting(db, "acme", "x", max_versions="1")
    setting(db, "globex", "y", max_versions="1")
    blocker = _block_reminder(db, "acme", "soon")
    try:
        got, warnings = _maintain_waiting(db, "300ms")
        # acme's part waited its lock_timeout and was undone, retention included; globex's was done.
        assert got == [result("globex", versions_destroyed=1, expiring=1)]
        assert _log_detail(db)["failed"] == {"acme": "55P03"}
        assert _log_detail(db)["tenants"] == {"globex": {**ZERO, "versions_destroyed": 1, "expiring": 1}}
        assert len(warnings) == 1 and "acme (SQLSTATE 55P03)" in warnings[0]
        assert destroyed(db, "acme", "x") == [] and destroyed(db, "globex", "y") == [1]
    finally:
        blocker.rollback()
        blocker.close()
    got, warnings = _maintain_waiting(db, "300ms")
    assert got == [result("acme", versions_destroyed=1, expiring=1)] and warnings == []
    assert _log_detail(db)["failed"] == {}


def test_a_cancel_stops_the_whole_job(db: Any) -> None:
    # A statement_timeout (or a cancel) is meant for the call: it is not one tenant's failure.
    with db.connect("alice") as a:
        save(a, "acme", "soon", "v")
    with db.connect("bob") as b:
        save(b, "globex", "soon", "v")
    for tenant in ("acme", "globex"):
        setting(db, tenant, "soon", expires_at="now() + interval '1 day'")
    blocker = _block_reminder(db, "acme", "soon")
    try:
        with raises_sqlstate("57014"):
            _maintain_waiting(db, "0", statement_timeout="300ms")
    finally:
        blocker.rollback()
        blocker.close()
    assert db.sql("SELECT count(*) FROM hush.secret_events") == [(0,)]
    assert db.sql("SELECT count(*) FROM hush.maintenance_log WHERE task = 'maintain_secrets'") == [(0,)]
