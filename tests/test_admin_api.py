"""The administration APIs of the Python client: hush.Tenants, hush.Keys and
hush.Audit (and their hush.aio twins), reached from the clients or built over a
connection, against the real server as non-superuser roles: adam (hush_admin),
audrey (hush_auditor), alice (hush_writer of acme). Also Secrets.exists_by_id
and the page size the server uses."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any, Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

import hush
import hush.aio
from test_keys import key_id, keyfile_setting  # noqa: F401 (keyfile_setting is a fixture)


def kid(cluster: Any, n: int) -> str:
    return key_id(cluster.key_lines[n])


def engine(db: Any, user: str) -> sa.Engine:
    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(db.dsn(user)),
                            poolclass=sa.NullPool)


@pytest.fixture
def admin(db: Any) -> Iterator[hush.Client]:
    with hush.connect(db.dsn("adam"), max_size=2) as c:
        yield c


def actions(db: Any, *names: str) -> list[tuple[str, str]]:
    return [(a, t) for a, t in db.sql("SELECT action, tenant_id FROM hush.audit_log WHERE action = ANY(%s) "
                                      "ORDER BY id", [list(names)])]


# -- tenants ----------------------------------------------------------------------------

def test_tenant_settings_and_grants(db: Any, admin: hush.Client) -> None:
    s = admin.configure_tenant("acme", max_value_bytes=131072, recovery_days=7)
    assert isinstance(s, hush.TenantSettings)
    assert (s.tenant_id, s.audit_reads, s.max_value_bytes, s.recovery_days) == ("acme", True, 131072, 7)
    same = admin.tenants.configure("acme")  # nothing given: the settings as they are
    assert (same.audit_reads, same.max_value_bytes, same.recovery_days) == (True, 131072, 7)
    assert admin.grant("rita", "globex") is True and admin.tenants.grant("rita", "globex") is False
    with db.connect("rita") as rita:
        assert hush.Secrets(rita, "globex").exists("anything") is False  # granted: no TenantAccessDenied
    assert admin.revoke("rita", "globex") is True and admin.tenants.revoke("rita", "globex") is False
    with db.connect("rita") as rita, pytest.raises(hush.TenantAccessDenied):
        hush.Secrets(rita, "globex").exists("anything")
    got = actions(db, "configure_tenant", "grant_tenant", "revoke_tenant")
    assert got[-4:] == [("configure_tenant", "acme"), ("configure_tenant", "acme"), ("grant_tenant", "globex"),
                        ("revoke_tenant", "globex")]
    with pytest.raises(hush.InvalidArgument):
        admin.configure_tenant("acme", max_value_bytes=0)


def test_tenants_over_a_connection_join_its_transaction(db: Any) -> None:
    with db.connect("adam", autocommit=False) as adam:
        assert hush.Tenants(adam).configure("acme", audit_reads=False).audit_reads is False
        adam.rollback()
        assert hush.Tenants(adam).configure("acme").audit_reads is True
        adam.commit()
    with Session(engine(db, "adam")) as session:  # SQLAlchemy: rows through Row._mapping
        assert hush.Tenants(session).configure("globex", recovery_days=3).recovery_days == 3
        assert hush.Tenants(session).grant("rita", "globex") is True
        session.rollback()
    assert db.sql("SELECT count(*) FROM hush.tenant_grants WHERE role_name = 'rita' AND tenant_id = 'globex'") == [(0,)]


def test_only_admins_administer(db: Any) -> None:
    with db.connect("alice") as alice:
        for call in (lambda: hush.Tenants(alice).configure("acme"), lambda: hush.Tenants(alice).grant("bob", "acme"),
                     lambda: hush.Keys(alice).status(), lambda: hush.Keys(alice).rewrap(),
                     lambda: hush.Audit(alice).seal(), lambda: hush.Audit(alice).query(),
                     lambda: hush.Audit(alice).maintain()):
            with pytest.raises(hush.PermissionDenied):
                call()
    with db.connect("audrey") as audrey:  # an auditor reads and seals the trail, and changes nothing else
        hush.Audit(audrey).seal()
        for call in (lambda: hush.Audit(audrey).cleanup(), lambda: hush.Keys(audrey).status(),
                     lambda: hush.Tenants(audrey).grant("bob", "acme")):
            with pytest.raises(hush.PermissionDenied):
                call()


# -- root keys --------------------------------------------------------------------------

def test_rotation_through_the_client(db: Any, cluster: Any, admin: hush.Client) -> None:
    first, second = kid(cluster, 0), kid(cluster, 1)
    with hush.connect(db.dsn("alice"), max_size=1) as alice:
        alice.tenant("acme").save_many({f"k{i}": f"v{i}" for i in range(3)})
    st = admin.keys.status()
    assert isinstance(st, hush.RootKeyStatus) and st.warnings == []
    assert st.active is not None and st.active.key_id == first and st.active.data_keys == 3
    assert {k.key_id: k.state for k in st} == {first: "active", second: "unregistered"}
    assert admin.keys.add(second) == hush.RootKeyChange(second, "decrypt_only", [])
    assert admin.keys.activate(second).state == "active"
    with pytest.raises(hush.RootKeyInUse):
        admin.keys.retire(first)
    seen: list[tuple[int, int]] = []
    assert admin.keys.rewrap(batch_size=2, progress=lambda done, total: seen.append((done, total))) == 3
    assert seen == [(2, 3), (3, 3)]
    assert admin.keys.rewrap() == 0  # nothing left: resumable, and idempotent
    assert admin.keys.retire(first).state == "retired"
    assert {k.key_id: (k.state, k.data_keys) for k in admin.keys.status()} == {first: ("retired", 0),
                                                                               second: ("active", 3)}
    assert [a for a, _ in actions(db, "add_root_key", "activate_root_key", "rewrap", "retire_root_key")] == [
        "add_root_key", "activate_root_key", "rewrap", "rewrap", "retire_root_key"]
    with hush.connect(db.dsn("alice"), max_size=1) as alice:
        assert alice.tenant("acme").get("k2").value == "v2"
    with pytest.raises(hush.RootKeyUnknown):
        admin.keys.activate("f" * 32)
    with pytest.raises(hush.InvalidArgument):
        admin.keys.rewrap(batch_size=0)
    with pytest.raises(hush.InvalidArgument):
        admin.keys.rewrap(pause_ms=-1)


def test_rewrap_commits_batch_by_batch_so_a_transaction_is_refused(db: Any, cluster: Any) -> None:
    with db.connect("adam", autocommit=False) as adam, pytest.raises(hush.InvalidArgument, match="autocommit"):
        hush.Keys(adam).rewrap()
    with db.connect("adam") as adam, adam.transaction(), pytest.raises(hush.InvalidArgument):
        hush.Keys(adam).rewrap()
    with Session(engine(db, "adam")) as session, pytest.raises(hush.InvalidArgument):
        hush.Keys(session).rewrap()
    with db.connect("adam") as adam:  # autocommit, outside a transaction: what the CLI uses
        assert hush.Keys(adam).rewrap() == 0


def test_the_servers_warnings_come_back(db: Any, cluster: Any, keyfile_setting: Any, admin: hush.Client) -> None:
    with db.connect("alice") as alice:
        hush.Secrets(alice, "acme").save("k", "v")  # the first save registers the keyring's first key
    missing = cluster.base / "keys" / "missing.keys"
    keyfile_setting(missing)
    st = admin.keys.status()  # over the pool
    assert st.warnings and str(missing) in st.warnings[0] and not st.warnings[0].startswith("hush:")
    assert [(k.key_id, k.loaded) for k in st] == [(kid(cluster, 0), False)]
    with db.connect("adam") as adam:
        assert hush.Keys(adam).status().warnings == st.warnings
    db.sql("ALTER SYSTEM RESET hush.root_key_file")
    # A standby that reported a keyring without the key: add and activate say so.
    db.sql("INSERT INTO hush.node_keyrings (node, key_ids) VALUES ('standby-b', ARRAY[]::text[])")
    second = kid(cluster, 1)
    with db.connect("adam") as adam:
        added = hush.Keys(adam).add(second)
    assert added.state == "decrypt_only" and len(added.warnings) == 1 and "standby-b" in added.warnings[0]
    with Session(engine(db, "adam")) as session:  # SQLAlchemy over psycopg: its notices too
        activated = hush.Keys(session).activate(second)
        session.commit()
    assert activated.state == "active" and "standby-b" in activated.warnings[0]
    assert admin.keys.status().warnings == []


# -- audit ------------------------------------------------------------------------------

@pytest.fixture
def trail(db: Any) -> Any:
    with hush.connect(db.dsn("alice"), max_size=1) as alice:
        acme = alice.tenant("acme")
        acme.save("a", "value-a1")
        acme.save("a", "value-a2")
        acme.get("a")
    with hush.connect(db.dsn("bob"), max_size=1) as bob:
        bob.tenant("globex").save("g", "value-g")
    return db


def test_a_tenants_own_log(trail: Any) -> None:
    with trail.connect("alice") as alice:
        log = hush.Audit(alice).log("acme", secret_name="a")
        assert [(r.action, r.version, r.tenant_id, r.db_role) for r in log] == [
            ("read", 2, "acme", "alice"), ("new_version", 2, "acme", "alice"), ("create", 1, "acme", "alice")]
        assert isinstance(log[0], hush.AuditRecord) and isinstance(log[-1].secret_id, uuid.UUID)
        assert [r.action for r in hush.Audit(alice).log("acme", action="create", max_rows=1)] == ["create"]
        assert "value-" not in repr(log)
        with pytest.raises(hush.TenantAccessDenied):
            hush.Audit(alice).log("globex")


def test_the_trail_in_seal_order(trail: Any) -> None:
    with trail.connect("audrey") as audrey:
        audit = hush.Audit(audrey)
        everything = audit.query(limit=None)
        assert len(everything) == trail.sql("SELECT count(*) FROM hush.audit_log")[0][0]
        assert [(r.txid, r.id) for r in everything] == sorted((r.txid, r.id) for r in everything)
        assert list(audit.iter_all(batch_size=2)) == everything
        assert audit.query(limit=3) == everything[:3]
        after = (everything[2].txid, everything[2].id)
        assert audit.query(after=after, limit=None) == everything[3:]
        assert list(audit.iter_all(after=after, batch_size=1)) == everything[3:]
        assert audit.tail(2) == everything[-2:]
        assert [(r.tenant_id, r.secret_name) for r in audit.query(tenant="acme", action="read")] == [("acme", "a")]
        assert [r.secret_name for r in audit.query(secret_name="g")] == ["g"]
        assert audit.query(since=everything[-1].at.replace(year=2999)) == []
        assert [r.id for r in audit.query(until=everything[0].at)] == []
        assert "value-" not in repr(everything)
    # The CLI's export is this iteration, as JSON lines: the same rows.
    from test_cli import hush as cli, ok
    exported = ok(cli(trail, "audit", "export", user="audrey")).stdout.splitlines()
    assert len(exported) == len(everything)


def test_seal_verify_and_maintenance(db: Any, trail: Any) -> None:
    with trail.connect("audrey") as audrey:
        audit = hush.Audit(audrey)
        sealed = audit.seal()
        assert isinstance(sealed, hush.AuditSeal) and sealed.seals_created == 1 and sealed.unsealed_rows == 0
        ok = audit.verify(known_head=sealed.head_hash)
        assert isinstance(ok, hush.AuditVerification) and ok.ok and ok.head_hash == sealed.head_hash
        lost = audit.verify(known_head="0" * 64)
        assert not lost.ok and lost.problem == "seal_missing"
    with trail.connect("alice") as alice:
        hush.Secrets(alice, "acme").delete("a")
    db.sql("UPDATE hush.secrets SET deleted_at = now() - interval '40 days' WHERE deleted_at IS NOT NULL")
    with hush.connect(db.dsn("adam"), max_size=1) as admin:
        done = admin.audit.maintain(months_ahead=1)
        assert isinstance(done, hush.AuditMaintenance)
        assert len(done.partitions) == 2 and all(isinstance(p, hush.AuditPartition) for p in done.partitions)
        assert done.seal.seals_created == 1 and done.retention.rows_removed == 0
        assert done.purge == [hush.PurgedSecrets("acme", 1)]
        assert admin.audit.create_partitions(1) == [] and admin.audit.purge_deleted() == []
        assert admin.audit.cleanup().rows_removed == 0
        with pytest.raises(hush.NoScheduler) as ei:  # no pg_cron in the test databases
            admin.audit.schedule_maintenance()
        assert ei.value.hint and "hush audit maintain" in ei.value.hint
        db.sql("SET session_replication_role = replica; UPDATE hush.audit_log SET action = 'x' WHERE action = 'read'")
        assert admin.audit.verify().problem == "rows_changed"
        # Retention refuses to remove anything from a chain that does not verify.
        db.sql("INSERT INTO hush.audit_log (tenant_id, action, at) "
               "VALUES ('acme', 'old', now() - interval '3000 days')")
        admin.audit.seal()
        with pytest.raises(hush.AuditTampered) as tampered:
            admin.audit.maintain()
        assert tampered.value.message.startswith("retention: ")


# -- asyncio ----------------------------------------------------------------------------

def test_async_twins(db: Any, cluster: Any) -> None:
    first, second = kid(cluster, 0), kid(cluster, 1)

    async def main() -> None:
        async with await hush.aio.connect(db.dsn("alice"), max_size=1) as alice:
            await alice.tenant("acme").save("a", "v")
        async with await hush.aio.connect(db.dsn("adam"), max_size=1) as admin:
            assert (await admin.configure_tenant("acme", recovery_days=9)).recovery_days == 9
            assert await admin.grant("rita", "globex") is True and await admin.revoke("rita", "globex") is True
            st = await admin.keys.status()
            assert st.active is not None and st.active.key_id == first and st.warnings == []
            assert (await admin.keys.add(second)).state == "decrypt_only"
            assert (await admin.keys.activate(second)).state == "active"
            seen: list[tuple[int, int]] = []
            assert await admin.keys.rewrap(batch_size=1, pause_ms=1,
                                           progress=lambda d, t: seen.append((d, t))) == 1
            assert seen == [(1, 1)]
            assert (await admin.keys.retire(first)).state == "retired"
            sealed = await admin.audit.seal()
            assert (await admin.audit.verify(known_head=sealed.head_hash)).ok
            done = await admin.audit.maintain(months_ahead=1)
            assert done.seal.seals_created == 0 and len(done.partitions) == 2
            rows = [r async for r in admin.audit.iter_all(batch_size=2)]
            assert rows == await admin.audit.query(limit=None) and (await admin.audit.tail(1)) == rows[-1:]
        async with await psycopg.AsyncConnection.connect(db.dsn("alice"), autocommit=True) as conn:
            log = await hush.aio.AsyncAudit(conn).log("acme", action="create")
            assert [(r.action, r.secret_name) for r in log] == [("create", "a")]
            with pytest.raises(hush.PermissionDenied):
                await hush.aio.AsyncKeys(conn).status()
        async with await psycopg.AsyncConnection.connect(db.dsn("adam")) as conn:  # not autocommit
            assert (await hush.aio.AsyncTenants(conn).configure("acme", audit_reads=False)).audit_reads is False
            await conn.rollback()
            assert (await hush.aio.AsyncTenants(conn).configure("acme")).audit_reads is True
            with pytest.raises(hush.InvalidArgument):
                await hush.aio.AsyncKeys(conn).rewrap()
    asyncio.run(main())


# -- exists_by_id, page sizes -----------------------------------------------------------

def test_exists_by_id(db: Any) -> None:
    with hush.connect(db.dsn("alice"), max_size=1) as client:
        acme = client.tenant("acme")
        saved = acme.save("k", "v")
        assert acme.exists_by_id(saved.id) and acme.exists_by_id(str(saved.id))
        assert not acme.exists_by_id(uuid.uuid4())
        acme.delete("k")
        assert not acme.exists_by_id(saved.id)
        acme.restore("k")
        with pytest.raises(hush.TenantAccessDenied):
            client.tenant("globex").exists_by_id(saved.id)
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'read'") == [(0,)]  # not audited

    async def main() -> None:
        async with await hush.aio.connect(db.dsn("rita"), max_size=1) as reader:
            assert await reader.tenant("acme").exists_by_id(saved.id)
            assert not await reader.tenant("acme").exists_by_id(uuid.uuid4())
    asyncio.run(main())


def test_pages_report_the_size_the_server_used(db: Any) -> None:
    with hush.connect(db.dsn("alice"), max_size=1) as client:
        acme = client.tenant("acme")
        acme.save_many({f"s{i:04}": "v" for i in range(1100)})
        page = acme.list(per_page=5000)
        assert (page.per_page, len(page), page.total, page.total_exact) == (1000, 1000, 1000, False)
        assert page.next_after == "s0999"  # there is more
        assert len(acme.list(per_page=300)) == 300 and acme.list(per_page=300).total_pages == 4
        assert acme.search("s0", per_page=2000).per_page == 1000
        # iter_all used to stop at the server's 1,000 when asked for more a page.
        assert sum(1 for _ in acme.iter_all(per_page=5000)) == 1100

    async def main() -> None:
        async with await hush.aio.connect(db.dsn("alice"), max_size=1) as aclient:
            assert (await aclient.tenant("acme").list(per_page=5000)).per_page == 1000
            assert len([m async for m in aclient.tenant("acme").iter_all(per_page=5000)]) == 1100
    asyncio.run(main())


def test_over_pools_you_have(db: Any, cluster: Any) -> None:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
    with ConnectionPool(db.dsn("adam"), min_size=1, max_size=1, open=True) as pool:  # not autocommit
        assert hush.Tenants(pool).configure("acme", recovery_days=5).recovery_days == 5
        assert {k.state for k in hush.Keys(pool).status()} == {"unregistered"}  # nothing sealed yet
        assert hush.Audit(pool).seal().seals_created == 1
        assert hush.Keys(pool).rewrap() == 0  # each run of a pool commits on its own

    async def main() -> None:
        async with AsyncConnectionPool(db.dsn("audrey"), min_size=1, max_size=1, open=False) as pool:
            audit = hush.aio.AsyncAudit(pool)
            assert [r.action for r in await audit.tail(1)] == ["configure_tenant"]
            assert (await audit.verify()).ok
    asyncio.run(main())


def test_async_sqlalchemy_session(db: Any, cluster: Any, keyfile_setting: Any) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    with db.connect("alice") as alice:
        hush.Secrets(alice, "acme").save("k", "v")
    keyfile_setting(cluster.base / "keys" / "missing.keys")

    async def main() -> None:
        eng = create_async_engine("postgresql+psycopg://", poolclass=sa.NullPool,
                                  async_creator=lambda: psycopg.AsyncConnection.connect(db.dsn("adam")))
        async with AsyncSession(eng) as session:
            st = await hush.aio.AsyncKeys(session).status()  # the driver's notices, under SQLAlchemy
            assert st.warnings and "missing.keys" in st.warnings[0]
            with pytest.raises(hush.InvalidArgument):  # a session is a transaction: rewrap is refused
                await hush.aio.AsyncKeys(session).rewrap()
            assert (await hush.aio.AsyncTenants(session).configure("acme", audit_reads=False)).audit_reads is False
            await session.rollback()
            assert [r.action for r in await hush.aio.AsyncAudit(session).tail(1)] == ["create"]
        await eng.dispose()
    asyncio.run(main())
