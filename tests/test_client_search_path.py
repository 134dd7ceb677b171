"""The client's statements mean the same whatever the application's search_path.

An application role whose search_path puts a schema it can write ahead of
pg_catalog (evil_schema here) can define a domain named `text` there: every
unqualified CAST(... AS text) in a statement then casts to it, and the domain's
CHECK sees the value (it recorded a saved secret's value before the client
named pg_catalog.text). The same goes for jsonb, uuid and the rest, and for
functions and operators. The sync, async and SQLAlchemy paths run the same
Calls; each is tried here, and every Call the client can build is checked for
an unqualified type, function or operator."""
from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import pytest

import hush
import hush.aio
from hush import _admin_calls, _calls, _oauth_calls
from hush.cli import _secrets as cli_secrets

# pg_catalog's types that a client statement could name, and their array types.
TRAPPED = ("text", "jsonb", "uuid", "timestamptz", "int4", "int8", "bool", "name")

PLANT = "\n".join([
    "CREATE TABLE evil_schema.seen (type pg_catalog.text, seen pg_catalog.text)",
    ";CREATE FUNCTION evil_schema.saw(t pg_catalog.text, v pg_catalog.text) RETURNS pg_catalog.bool "
    "LANGUAGE sql AS $$INSERT INTO evil_schema.seen VALUES (t, v) RETURNING true$$",
    *(f";CREATE DOMAIN evil_schema.{t} AS pg_catalog.{t} "
      f"CHECK (evil_schema.saw('{t}', CAST(VALUE AS pg_catalog.text)))" for t in TRAPPED),
    ";CREATE FUNCTION evil_schema.pg_notify(c pg_catalog.text, p pg_catalog.text) RETURNS void "
    "LANGUAGE sql AS $$INSERT INTO evil_schema.seen VALUES ('pg_notify', c)$$",
    ";CREATE FUNCTION evil_schema.eq(a pg_catalog.text, b pg_catalog.text) RETURNS pg_catalog.bool "
    "LANGUAGE sql AS $$INSERT INTO evil_schema.seen VALUES ('=', b) RETURNING true$$",
    ";CREATE OPERATOR evil_schema.= (LEFTARG = pg_catalog.text, RIGHTARG = pg_catalog.text, "
    "FUNCTION = evil_schema.eq)",
])


@pytest.fixture
def hostile(db: Any) -> Iterator[Any]:
    """alice's search_path (in this database only) starts with a schema she writes to and has
    planted look-alikes of pg_catalog's types, pg_notify and the text `=` in."""
    with db.connect() as su:
        su.execute("CREATE SCHEMA evil_schema")
        su.execute("GRANT USAGE, CREATE ON SCHEMA evil_schema TO alice")
        su.execute(f"ALTER ROLE alice IN DATABASE {db.name} SET search_path = evil_schema, pg_catalog, public")
    with db.connect("alice") as a:
        a.execute(PLANT)
        # The trap springs for a statement that does not qualify its types.
        a.execute("SELECT CAST('probe' AS text)")
        assert a.execute("SELECT type, seen FROM evil_schema.seen").fetchall() == [("text", "probe")]
        a.execute("TRUNCATE evil_schema.seen")
    yield db


def seen(db: Any) -> list[tuple[str, str]]:
    return db.sql("SELECT type, seen FROM evil_schema.seen")


def secret_calls(s: Any, value: str) -> Iterator[Callable[[], Any]]:
    """Every Secrets method once (sync); the async test awaits the same list."""
    yield lambda: s.save("k", value, description="d", tags=["t"], metadata={"m": 1}, kind="generic",
                         expires_at=datetime(2999, 1, 1, tzinfo=timezone.utc))
    yield lambda: s.update("k", value + "-2", expected_version=1)
    yield lambda: s.save_many({"a": value + "-a", "b": value + "-b"}, kind="generic", tags=["t"], metadata={})
    yield lambda: s.get("k")
    yield lambda: s.get("k", version=1)
    yield lambda: s.get_many(["a", "b"])
    yield lambda: s.exists("k")
    yield lambda: s.versions("k")
    yield lambda: s.list(prefix="k", tags=["t"], per_page=10)
    yield lambda: s.search("k")
    yield lambda: s.delete("b")
    yield lambda: s.restore("b")
    yield lambda: s.destroy("a", [1])


def test_sync_calls_see_no_domain_of_the_search_path(hostile: Any) -> None:
    value = f"captured-{uuid.uuid4()}"
    with hush.connect(hostile.dsn("alice")) as client:
        s = client.tenant("acme")
        for call in secret_calls(s, value):
            call()
        sid = s.get("k").id
        s.get_by_id(sid)
        s.update_by_id(sid, value + "-3")
        s.exists_by_id(sid)
        s.delete_by_id(sid)
    assert seen(hostile) == []


def test_async_calls_see_no_domain_of_the_search_path(hostile: Any) -> None:
    value = f"captured-{uuid.uuid4()}"

    async def main() -> None:
        async with await hush.aio.connect(hostile.dsn("alice")) as client:
            s = client.tenant("acme")
            for call in secret_calls(s, value):
                await call()
            sid = (await s.get("k")).id
            await s.get_by_id(sid)
            await s.update_by_id(sid, value + "-3")
    asyncio.run(main())
    assert seen(hostile) == []


def test_sqlalchemy_calls_see_no_domain_of_the_search_path(hostile: Any) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.orm import Session

    value = f"captured-{uuid.uuid4()}"
    url = f"postgresql+psycopg://alice@/{hostile.name}?host={hostile.cluster.base}&port={hostile.cluster.port}"
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            for call in secret_calls(hush.Secrets(session, "acme"), value):
                call()
            session.commit()
    finally:
        engine.dispose()

    async def main() -> None:
        aengine = create_async_engine(url)
        try:
            async with AsyncSession(aengine) as session:
                s = hush.aio.AsyncSecrets(session, "acme")
                await s.save("async-k", value)
                await s.get("async-k")
                await s.save_many({"async-a": value})
                await session.commit()
        finally:
            await aengine.dispose()
    asyncio.run(main())
    assert seen(hostile) == []


def test_the_cli_state_query_sees_no_domain_of_the_search_path(hostile: Any) -> None:
    with hostile.connect("alice") as a:
        a.execute("SELECT hush.save_secret('acme', 'k', 'v')")
        metas = hush.Secrets(a, "acme").list().data
        assert cli_secrets.states(a, "acme", metas) == ["active"]
    assert seen(hostile) == []


# -- every statement the client can build ---------------------------------------------------

def _dummy(param: inspect.Parameter) -> Any:
    a = str(param.annotation)
    if param.name == "by":
        return "name"
    if param.name in ("id", "key"):
        return str(uuid.uuid4())
    if param.name == "after" and "tuple" in a:
        return (1, 2)
    if "datetime" in a:
        return datetime(2000, 1, 1, tzinfo=timezone.utc)
    if "timedelta" in a:
        return timedelta(days=1)
    for word, dummy in (("bool", True), ("int", 1), ("Mapping", {"k": "v"}), ("Iterable", ["x"]),
                        ("Sequence", ["x"]), ("list", ["x"])):
        if a.startswith(word) or f"{word}[" in a.split("|")[0]:
            return dummy
    return "x"


def all_statements() -> Iterator[tuple[str, str]]:
    for module in (_calls, _admin_calls, _oauth_calls):
        for fname, fn in vars(module).items():
            if fname.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
                continue
            sig = inspect.signature(fn)
            if "Call[" not in str(sig.return_annotation) and fname != "save_batches":
                continue
            args = {p.name: _dummy(p) for p in sig.parameters.values() if p.default is inspect.Parameter.empty}
            variants = [args]
            if fname == "root_key":
                variants = [dict(args, action=a) for a in _admin_calls.KEY_FUNCTIONS]
            elif fname == "maintenance_step":
                variants = [dict(args, step=s) for s in _admin_calls.MAINTENANCE_STEPS]
            elif fname == "update":
                variants = [dict(args, by=b) for b in ("name", "id")]
            elif fname == "worker_finish":
                variants = [dict(refreshes=[("t", "p", "a", "hush_lease_x", 1, {"access_token": "x"})])]
            elif fname == "audit_query":
                variants = [dict(args, tenant="t", since=datetime.now(timezone.utc),
                                 until=datetime.now(timezone.utc), action="a", secret_name="n", after=(1, 2),
                                 limit=5, newest=n) for n in (False, True)]
            for kw in variants:
                made = fn(**kw)
                for call in made if isinstance(made, list) else [made]:
                    yield f"{module.__name__}.{fname}", call.sql
    yield "cli._secrets.STATE_SQL", cli_secrets.STATE_SQL


CAST_TYPE = re.compile(r"\bAS\s+([\w.]+(?:\[\])?)\s*\)")
CALLED = re.compile(r"([\w.]+)\s*\(")
# Words followed by "(" that are syntax, not functions, and the aliases with column lists.
SYNTAX = {"CAST", "ARRAY", "FROM", "JOIN", "AND", "OR", "WHERE", "IN", "VALUES", "OPERATOR", "SELECT", "n"}


def test_every_statement_names_pg_catalog_types_functions_and_operators() -> None:
    statements = list(all_statements())
    assert len(statements) > 40
    for where, sql in statements:
        for t in CAST_TYPE.findall(sql):
            assert t.startswith("pg_catalog."), f"{where}: CAST(... AS {t}) resolves through the search_path"
        for f in CALLED.findall(sql.replace("AS n(name)", "")):
            assert f.startswith(("hush.", "pg_catalog.")) or f.upper() in SYNTAX or f in SYNTAX, \
                f"{where}: {f}() resolves through the search_path"
        bare = re.sub(r"OPERATOR\(pg_catalog\.[<>=!]+\)|=>|%\(\w+\)s|'[^']*'", "", sql)
        assert not re.search(r"[<>=!]", bare), f"{where}: an operator resolves through the search_path: {sql}"
        assert "::" not in sql, f"{where}: a :: cast"
