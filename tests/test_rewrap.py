"""CALL hush.rewrap(): data keys re-sealed from old root keys to the active one
in committed batches, without touching values' ciphertext; interrupted (backend
terminated, server stopped in immediate mode) and resumed, nothing is lost."""
from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from hush import devcluster as pgcluster
from helpers import raises_sqlstate
from test_keys import key_id

TENANTS = ("acme", "globex", "initech")


def seed(dsn: str, per_tenant: int) -> dict[tuple[str, str], str]:
    """Secrets in several tenants, saved in bulk as a superuser-granted writer."""
    values = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in TENANTS:
            names = [f"s{i:05d}" for i in range(per_tenant)]
            vals = [f"{t}-value-{i}" for i in range(per_tenant)]
            conn.execute("SELECT count(*) FROM hush.save_secrets(%s, %s, %s)", [t, names, vals])
            values.update({(t, n): v for n, v in zip(names, vals)})
    return values


def rotate(dsn: str, new_key: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as adm:
        adm.execute("SELECT hush.add_root_key(%s)", [new_key])
        adm.execute("SELECT hush.activate_root_key(%s)", [new_key])


def read_all(dsn: str, values: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    got = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for t in TENANTS:
            names = sorted(n for (tt, n) in values if tt == t)
            for i in range(0, len(names), 1000):
                for n, v in conn.execute("SELECT name, value FROM hush.get_secrets(%s, %s)", [t, names[i:i + 1000]]):
                    got[(t, n)] = v
    return got


def under(su_dsn: str, kid: str) -> int:
    with psycopg.connect(su_dsn) as su:
        return int(su.execute("SELECT count(*) FROM hush.secret_versions WHERE key_id = %s", [kid]).fetchone()[0])


@pytest.fixture
def writer(db: Any) -> str:
    db.sql("DO $$ BEGIN CREATE ROLE rewrap_writer LOGIN IN ROLE hush_writer; "
           "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    db.sql("SELECT hush.grant_tenant('rewrap_writer', '*')")
    return str(db.dsn("rewrap_writer"))


def test_rotation_of_10000_secrets_across_tenants(db: Any, cluster: Any, writer: str) -> None:
    old, new = key_id(cluster.key_lines[0]), key_id(cluster.key_lines[1])
    values = seed(writer, 3334)
    ciphertexts = db.sql("SELECT tenant_id, secret_id, version, ciphertext FROM hush.secret_versions ORDER BY 1, 2, 3")
    rotate(db.dsn("adam"), new)
    notices: list[str] = []
    with db.connect("adam") as adm:
        adm.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        adm.execute("CALL hush.rewrap(2000)")
    assert under(db.dsn(), old) == 0 and under(db.dsn(), new) == len(values) == 10002
    assert notices[0] == "hush rewrap: 2000 of 10002 data keys re-sealed" and notices[-1].endswith("10002 data keys re-sealed")
    assert db.sql("SELECT tenant_id, secret_id, version, ciphertext FROM hush.secret_versions ORDER BY 1, 2, 3") \
        == ciphertexts  # values' ciphertext untouched
    assert read_all(writer, values) == values
    with db.connect("adam") as adm:
        assert adm.execute("SELECT hush.retire_root_key(%s)", [old]).fetchone() == ("retired",)
        adm.execute("CALL hush.rewrap()")  # nothing left: a no-op
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'rewrap'") == [(6,)]


def test_saves_and_reads_go_on_during_a_rewrap(db: Any, cluster: Any, writer: str) -> None:
    values = seed(writer, 1000)
    rotate(db.dsn("adam"), key_id(cluster.key_lines[1]))
    errors: list[Exception] = []
    stop = threading.Event()

    def traffic() -> None:
        try:
            with psycopg.connect(writer, autocommit=True) as conn:
                i = 0
                while not stop.is_set():
                    t = TENANTS[i % 3]
                    assert conn.execute("SELECT value FROM hush.get_secret(%s, %s)", [t, f"s{i % 1000:05d}"]) \
                        .fetchone() == (values[(t, f"s{i % 1000:05d}")],)
                    conn.execute("SELECT hush.save_secret(%s, %s, %s)", [t, f"new{i}", "fresh"])
                    i += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    th = threading.Thread(target=traffic)
    th.start()
    with db.connect("adam") as adm:
        adm.execute("CALL hush.rewrap(100, 5)")
    stop.set()
    th.join(30)
    assert not errors, errors
    assert under(db.dsn(), key_id(cluster.key_lines[0])) == 0
    assert read_all(writer, values) == values


def test_terminated_rewrap_resumes(db: Any, cluster: Any, writer: str) -> None:
    old = key_id(cluster.key_lines[0])
    values = seed(writer, 1000)
    rotate(db.dsn("adam"), key_id(cluster.key_lines[1]))
    adm = db.connect("adam")
    pid = adm.info.backend_pid
    failed: list[Exception] = []

    def run() -> None:
        try:
            adm.execute("CALL hush.rewrap(100, 100)")
        except psycopg.Error as e:
            failed.append(e)

    th = threading.Thread(target=run)
    th.start()
    deadline = time.time() + 30
    while under(db.dsn(), old) > 2700 and time.time() < deadline:
        time.sleep(0.05)
    db.sql("SELECT pg_terminate_backend(%s)", [pid])
    th.join(30)
    adm.close()
    assert failed, "the rewrap should have been cut off"
    left = under(db.dsn(), old)
    assert 0 < left < 3000  # some batches committed, some not
    assert read_all(writer, values) == values  # half-way, everything reads
    with db.connect("adam") as again:
        again.execute("CALL hush.rewrap(500)")
    assert under(db.dsn(), old) == 0 and read_all(writer, values) == values


def test_only_admins_rewrap(db: Any) -> None:
    for role in ("alice", "audrey", "otto"):
        with db.connect(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CALL hush.rewrap()")
    with db.connect("adam") as adm:
        with raises_sqlstate("SH004"):
            adm.execute("CALL hush.rewrap(0)")
        with adm.transaction(), pytest.raises(psycopg.errors.InvalidTransactionTermination):
            adm.execute("CALL hush.rewrap()")


@pytest.fixture
def own_cluster(cluster: Any) -> Any:  # `cluster` ensures the extension is installed
    c = pgcluster.Cluster(settings={"fsync": "on"}, keys=2).start()
    yield c
    c.stop()


def test_server_stop_mid_rewrap_then_resume(own_cluster: Any) -> None:
    c = own_cluster
    with psycopg.connect(c.dsn(), autocommit=True) as su:
        su.execute("CREATE EXTENSION hush CASCADE; CREATE ROLE w LOGIN IN ROLE hush_writer; "
                   "CREATE ROLE a LOGIN IN ROLE hush_admin; SELECT hush.grant_tenant('w', '*')")
    values = seed(c.dsn(user="w"), 1000)
    old, new = key_id(c.key_lines[0]), key_id(c.key_lines[1])
    rotate(c.dsn(user="a"), new)

    def run() -> None:
        try:
            with psycopg.connect(c.dsn(user="a"), autocommit=True) as adm:
                adm.execute("CALL hush.rewrap(100, 100)")
        except psycopg.Error:
            pass

    th = threading.Thread(target=run)
    th.start()
    deadline = time.time() + 30
    while under(c.dsn(), old) > 2700 and time.time() < deadline:
        time.sleep(0.05)
    assert c.pg_ctl_stop("immediate")
    th.join(30)
    c.pg_ctl_start()
    left = under(c.dsn(), old)
    assert 0 < left < 3000
    assert read_all(c.dsn(user="w"), values) == values
    with psycopg.connect(c.dsn(user="a"), autocommit=True) as adm:
        adm.execute("CALL hush.rewrap()")
        assert adm.execute("SELECT hush.retire_root_key(%s)", [old]).fetchone() == ("retired",)
    assert under(c.dsn(), new) == 3000 and read_all(c.dsn(user="w"), values) == values
