"""The Python client's entry points against the real server, as non-superuser
roles: the pooled client, a caller's psycopg connection, a SQLAlchemy
session/connection, and the asyncio twin. Each runs the same methods and
joins (or not) the caller's transaction as documented."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import hush
import hush.aio
import psycopg
import pytest
import sqlalchemy as sa
from psycopg.rows import dict_row
from sqlalchemy.orm import Session

from docs_text import blocks, page_of, section


@pytest.fixture
def client(db: Any) -> Iterator[hush.Client]:
    with hush.connect(db.dsn("alice"), max_size=2) as c:
        yield c


def engine(db: Any, user: str) -> sa.Engine:
    return sa.create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(db.dsn(user)),
                            poolclass=sa.NullPool)


def audit_count(db: Any, name: str, action: str | None = None) -> int:
    """Audit rows about this secret name (of one action, or any)."""
    return int(db.sql("SELECT count(*) FROM hush.audit_log WHERE secret_name = %s AND action = COALESCE(%s, action)",
                      [name, action])[0][0])


def test_pooled_client_every_method(client: hush.Client) -> None:
    acme = client.tenant("acme")
    saved = acme.save("stripe", "sk_live_1", description="Stripe key", tags=["payments", "prod"],
                      metadata={"owner": "billing"}, kind="api_key")
    assert isinstance(saved, hush.SavedSecret) and saved.version == 1 and saved.tenant_id == "acme"
    s = acme.get("stripe")
    assert isinstance(s, hush.Secret)
    assert (s.value, s.kind, s.tags, s.metadata, s.description) == (
        "sk_live_1", "api_key", ["payments", "prod"], {"owner": "billing"}, "Stripe key")
    assert s.id == saved.id and acme.get_by_id(saved.id).value == "sk_live_1"
    assert acme.update("stripe", "sk_live_2").version == 2
    assert acme.get("stripe", version=1).value == "sk_live_1"
    assert acme.update_by_id(str(saved.id), description="new").version == 2
    assert acme.get("stripe").description == "new" and acme.get("stripe").kind == "api_key"
    assert acme.exists("stripe") and not acme.exists("nope")
    assert [v.version for v in acme.versions("stripe")] == [1, 2]
    assert [x.value for x in acme.get_many(["stripe"])] == ["sk_live_2"]
    acme.delete("stripe")
    assert not acme.exists("stripe")
    assert acme.restore("stripe").name == "stripe"
    assert acme.destroy("stripe", [1]) == 1
    with pytest.raises(hush.VersionDestroyed):
        acme.get("stripe", version=1)
    acme.delete_by_id(saved.id)
    with pytest.raises(hush.SecretNotFound):
        acme.get("stripe")


def test_pages_carry_totals_and_keyset_cursor(client: hush.Client) -> None:
    acme = client.tenant("acme")
    acme.save_many({f"k{i:02d}": f"v{i}" for i in range(12)}, tags=["bulk"])
    acme.save("other", "x", description="needle here")
    first = acme.list(per_page=5, tags=["bulk"])
    assert isinstance(first, hush.Page)
    assert [m.name for m in first.data] == ["k00", "k01", "k02", "k03", "k04"]
    assert (first.page, first.per_page, first.total, first.total_pages, first.total_exact) == (1, 5, 12, 3, True)
    assert first.next_after == "k04"
    second = acme.list(per_page=5, tags=["bulk"], after=first.next_after)
    assert [m.name for m in second.data] == ["k05", "k06", "k07", "k08", "k09"]
    last = acme.list(page=3, per_page=5, tags=["bulk"])
    assert [m.name for m in last.data] == ["k10", "k11"] and last.next_after is None
    assert [m.name for m in acme.list(prefix="k1").data] == ["k10", "k11"]
    assert [m.name for m in acme.iter_all(per_page=5)] == sorted([f"k{i:02d}" for i in range(12)] + ["other"])
    found = acme.search("NEEDLE")
    assert [m.name for m in found.data] == ["other"] and found.total == 1
    assert not hasattr(found.data[0], "value")


def test_save_many_is_all_or_nothing_across_statements(client: hush.Client, db: Any) -> None:
    acme = client.tenant("acme")
    items = [(f"n{i}", "v") for i in range(25)] + [("", "bad name")]
    seen: list[tuple[int, int]] = []
    with pytest.raises(hush.InvalidName):
        acme.save_many(items, batch_size=10, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(10, 26), (20, 26)]  # two statements ran, then the third failed...
    assert acme.list().total == 0  # ...and the transaction took the first two back
    saved = acme.save_many(items[:-1], batch_size=10)
    assert len(saved) == 25 and acme.list().total == 25


def test_caller_psycopg_connection_joins_its_transaction(db: Any) -> None:
    with db.connect("alice", autocommit=False, row_factory=dict_row) as conn:  # any row factory
        s = hush.Secrets(conn, "acme")
        s.save("a", "1")
        assert s.get("a").value == "1"  # visible inside the transaction
        conn.rollback()
        assert not s.exists("a")
        s.save("b", "2")
        conn.commit()
    assert db.sql("SELECT count(*) FROM hush.secrets WHERE name = 'a'") == [(0,)]
    assert audit_count(db, "a", "create") == 0  # the write's audit row went with the rollback...
    assert audit_count(db, "a", "read") == 1  # ...the record of the value that left did not
    assert audit_count(db, "b") == 1  # its create


def test_module_helpers_mirror_the_seed(db: Any) -> None:
    with db.connect("alice") as conn:
        assert hush.save_secret(conn, "acme", "k", "v1", tags=["t"]).version == 1
        assert hush.update_secret(conn, "acme", "k", "v2").version == 2
        assert hush.get_secret(conn, "acme", "k").value == "v2"
        assert hush.get_secret(conn, "acme", "k", 1).value == "v1"
        assert [m.name for m in hush.list_secrets(conn, "acme").data] == ["k"]
        assert hush.search_secrets(conn, "acme", "k").total == 1
        hush.delete_secret(conn, "acme", "k")
        with pytest.raises(hush.SecretNotFound):
            hush.get_secret(conn, "acme", "k")


def test_sqlalchemy_session_joins_and_rolls_back(db: Any) -> None:
    eng = engine(db, "alice")
    with Session(eng) as session:
        s = hush.Secrets(session, "acme")
        s.save("kept", "v", metadata={"a": 1})
        session.commit()
        s.save("dropped", "v")
        assert s.get("dropped").value == "v"
        session.rollback()
    with eng.connect() as conn:  # a Connection works too
        s2 = hush.Secrets(conn, "acme")
        assert s2.get("kept").metadata == {"a": 1}
        assert not s2.exists("dropped")
        with pytest.raises(hush.SecretNotFound):
            s2.get("dropped")
    assert audit_count(db, "dropped", "create") == 0 and audit_count(db, "dropped", "read") == 1


def test_sqlalchemy_errors_are_unwrapped_but_serialization_failures_are_not(db: Any) -> None:
    eng = engine(db, "alice")
    with Session(eng) as session:
        with pytest.raises(hush.TenantAccessDenied) as ei:
            hush.Secrets(session, "globex").get("x")
        assert ei.value.code == "SH020" and ei.value.__cause__ is not None  # the driver's error, kept
        session.rollback()
    with db.connect("alice") as conn:
        hush.Secrets(conn, "acme").save("hot", "v0")
    with Session(eng) as s1, Session(eng) as s2:
        for s in (s1, s2):
            s.connection(execution_options={"isolation_level": "SERIALIZABLE"})
        a, b = hush.Secrets(s1, "acme"), hush.Secrets(s2, "acme")
        a.get("hot"), b.get("hot")
        a.update("hot", "v1")
        s1.commit()
        with pytest.raises(sa.exc.OperationalError) as ei:
            b.update("hot", "v2")
        assert ei.value.orig.sqlstate == "40001"  # untouched, for the caller's retry logic


def test_async_client_and_connection(db: Any) -> None:
    async def main() -> None:
        async with await hush.aio.connect(db.dsn("alice"), max_size=2) as client:
            acme = client.tenant("acme")
            assert (await acme.save("a", "1", tags=["x"])).version == 1
            assert (await acme.get("a")).value == "1"
            assert (await acme.update("a", "2")).version == 2
            assert [m.name for m in (await acme.list()).data] == ["a"]
            assert (await acme.search("a")).total == 1
            assert await acme.exists("a")
            assert len(await acme.versions("a")) == 2
            assert len(await acme.save_many({"b": "1", "c": "2"})) == 2
            assert [s.value for s in await acme.get_many(["b", "c"])] == ["1", "2"]
            with pytest.raises(hush.SecretNotFound):
                await acme.get("zzz")
            async with client.transaction() as conn:
                await hush.aio.AsyncSecrets(conn, "acme").save("in-tx", "v")
        async with await psycopg.AsyncConnection.connect(db.dsn("alice")) as conn:
            s = hush.aio.AsyncSecrets(conn, "acme")
            await s.save("rolled-back", "v")
            await conn.rollback()
            assert not await s.exists("rolled-back")
            assert (await s.get("in-tx")).value == "v"
            await s.delete("a")
            assert (await s.restore("a")).version == 2
            assert await s.destroy("a") == 2
    asyncio.run(main())


def test_repr_and_errors_never_show_the_value(client: hush.Client) -> None:
    acme = client.tenant("acme")
    acme.save("pw", "hunter2-value")
    s = acme.get("pw")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "***" in repr(s)
    assert "hunter2" not in repr([s]) and "hunter2" not in f"{s}"
    with pytest.raises(hush.VersionConflict) as ei:
        acme.save("pw", "hunter2-value-2", expected_version=7)
    assert "hunter2" not in str(ei.value) and "hunter2" not in repr(ei.value)
    assert ei.value.code == "SH013" and "version" in str(ei.value)


def test_values_stay_out_of_query_text_and_the_log(db: Any, cluster: Any) -> None:
    canary = f"client-canary-{uuid.uuid4()}"
    with hush.connect(db.dsn("alice"), max_size=1) as client:
        acme = client.tenant("acme")
        acme.save("a", canary)
        acme.update("a", canary + "u")
        acme.save_many({"b": canary + "b"})
    with Session(engine(db, "alice")) as session:
        hush.Secrets(session, "acme").save("c", canary + "c")
        session.commit()
    with psycopg.connect(db.dsn("alice"), application_name="hush-canary") as conn:
        hush.Secrets(conn, "acme").save("d", canary + "d")
        with psycopg.connect(db.dsn()) as su:  # the superuser sees every session's query text
            texts = [r[0] for r in su.execute("SELECT query FROM pg_catalog.pg_stat_activity "
                                              "WHERE application_name = 'hush-canary'").fetchall()]
        conn.commit()
    assert any("hush.save_secret" in (t or "") for t in texts)  # the session's last statement is visible...
    assert not any(canary in (t or "") for t in texts)  # ...without its value
    db.sql("SELECT pg_catalog.pg_sleep(0.2)")  # let the logger flush
    log = cluster.log.read_text(errors="replace")
    assert "hush.save_secrets" in log and canary not in log


def test_expiry_and_check_and_set(client: hush.Client) -> None:
    acme = client.tenant("acme")
    acme.save("tok", "v", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    with pytest.raises(hush.SecretExpired):
        acme.get("tok")
    with pytest.raises(hush.VersionConflict):
        acme.save("tok", "v2", expected_version=0)
    assert acme.save("tok", "v2", expected_version=1, expires_at=datetime.now(timezone.utc) + timedelta(days=1)) \
        .version == 2
    assert acme.get("tok").value == "v2"


def test_unknown_connection_type_is_refused() -> None:
    with pytest.raises(TypeError, match="psycopg Connection"):
        hush.Secrets(object(), "acme")


def test_readme_quick_start_runs(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    [code] = [b for b in blocks(section("Quick start"), "python") if "hush.connect()" in b]
    for var, value in (("HUSH_DSN", db.dsn("alice")), ("STRIPE_KEY", "sk_1"), ("NEW_STRIPE_KEY", "sk_2")):
        monkeypatch.setenv(var, value)
    scope: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), scope)
    scope["client"].close()
    with db.connect("alice") as conn:
        key = hush.Secrets(conn, "acme").get("stripe_api_key")
    assert (key.value, key.version, key.kind) == ("sk_2", 2, "api_key")


def test_async_sqlalchemy_session(db: Any) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def main() -> None:
        eng = create_async_engine("postgresql+psycopg://", poolclass=sa.NullPool,
                                  async_creator=lambda: psycopg.AsyncConnection.connect(db.dsn("alice")))
        async with AsyncSession(eng) as session:
            s = hush.aio.AsyncSecrets(session, "acme")
            await s.save("a", "1")
            await session.commit()
            await s.save("b", "2")
            await session.rollback()
            assert (await s.get("a")).value == "1" and not await s.exists("b")
            with pytest.raises(hush.TenantAccessDenied):
                await hush.aio.AsyncSecrets(session, "globex").get("a")
        await eng.dispose()
    asyncio.run(main())


def test_readme_fastapi_example_runs(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    title = "asyncio (FastAPI, Starlette)"
    [code] = [compile(b, page_of(title), "exec") for b in blocks(section(title), "python")]
    with db.connect("alice") as conn:
        hush.Secrets(conn, "acme").save("stripe_api_key", "sk_1")

    def app(user: str) -> Any:
        monkeypatch.setenv("HUSH_DSN", db.dsn(user))
        scope: dict[str, Any] = {}
        exec(code, scope)
        app = scope["app"]

        @app.post("/rotate/{tenant}")  # a write beside the documented read, for the check-and-set status
        async def rotate(tenant: str, expected_version: int) -> dict[str, int]:
            saved = await app.state.hush.tenant(tenant).update("stripe_api_key", "sk_2",
                                                               expected_version=expected_version)
            return {"version": saved.version}
        return app

    def status(resp: Any) -> tuple[int, str | None]:
        return resp.status_code, resp.json().get("code")

    with TestClient(app("alice")) as http:  # runs the lifespan: the pool opens and closes
        assert http.get("/charge/acme").json() == {"ok": True}
        assert status(http.get("/charge/globex")) == (403, "SH020")   # a tenant alice is not granted
        assert status(http.get("/charge/-acme")) == (422, "SH002")    # not a tenant id
        assert status(http.post("/rotate/acme?expected_version=7")) == (409, "SH013")
        assert http.post("/rotate/acme?expected_version=1").json() == {"version": 2}
        with db.connect("alice") as conn:
            hush.Secrets(conn, "acme").delete("stripe_api_key")
        missing = http.get("/charge/acme")
        assert status(missing) == (404, "SH010") and missing.json()["detail"] == "Not Found"
        assert "stripe_api_key" not in missing.text  # the message stays on the server
    with TestClient(app("otto")) as http:  # a role without any hush role
        assert status(http.get("/charge/acme")) == (403, "42501")
    assert db.sql("SELECT count(*) FROM hush.audit_log WHERE action = 'read' AND db_role = 'alice'") == [(1,)]
