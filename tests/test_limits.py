"""Hostile input, as non-superuser roles (issue 19, items 1 and 9; docs/reference.md, "Limits").

Memory: one save_secrets call holds its values about twice (PostgreSQL's array and
Python's strings, freed as they are sealed) plus the shared buffers its ciphertexts fill,
never the 11 times it once took; arrays over their limits are refused (SH004) before
PL/Python converts them. Errors: every bad argument of every hush.* function gets a hush
SQLSTATE and a message of bounded length, whatever its size, depth or range."""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

import psycopg
import pytest

import hush
from helpers import get, raises_sqlstate, save

MiB = 1 << 20
CAP = 64 * MiB  # values per save_secrets call (sql/25_limits.sql)


def _counts(db: Any) -> tuple:
    return db.sql("SELECT (SELECT count(*) FROM hush.secrets), (SELECT count(*) FROM hush.secret_versions),"
                  " (SELECT count(*) FROM hush.audit_log)")[0]


def _hwm(pid: int) -> int:
    """The backend's peak resident size so far (tests run as root: any backend's status is readable)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _peak_rise(db: Any, query: str, params: Any = None, user: str = "alice") -> tuple[int, Any]:
    """The rise of a fresh backend's VmHWM over one statement (Python loaded first), and its error."""
    with db.connect(user) as conn:
        pid = conn.execute("SELECT pg_catalog.pg_backend_pid()").fetchone()[0]
        conn.execute("SELECT hush.secret_exists('acme', 'warm-up')")
        before = _hwm(pid)
        try:
            conn.execute(query, params)
            err = None
        except psycopg.Error as e:
            err = e
        return _hwm(pid) - before, err


@pytest.fixture
def big_values(db: Any) -> Any:
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.configure_tenant('acme', max_value_bytes => 1048576)")
    return db


# -- item 1: memory ----------------------------------------------------------------------

def test_save_secrets_peak_memory_is_within_3x_an_ascii_payload(big_values: Any) -> None:
    """64 MiB of ASCII values in one call: the backend's peak grows by at most 3 times that
    (it grew by 11 times before). The values are made by the statement itself: a bound
    parameter costs PostgreSQL up to 4 times its size while it receives it, before any
    function runs (docs/reference.md, "Limits"), which no function can change."""
    db = big_values
    before = _counts(db)
    rise, err = _peak_rise(db, """
        SELECT count(*) FROM hush.save_secrets('acme',
            ARRAY(SELECT 'bulk-' || i FROM pg_catalog.generate_series(1, 64) AS i),
            ARRAY(SELECT pg_catalog.repeat(pg_catalog.lpad(i::text, 8, '0'), 131072)
                    FROM pg_catalog.generate_series(1, 64) AS i))""")
    assert err is None, err
    assert rise <= 3 * CAP, f"peak rose by {rise / MiB:.0f} MiB for a 64 MiB payload"
    assert _counts(db)[1] == before[1] + 64
    with db.connect("alice") as a:
        assert get(a, "acme", "bulk-7")["value"] == "00000007" * 131072


def test_a_bound_payload_at_the_cap_stays_within_4x_the_cap_plus_64_mib(big_values: Any) -> None:
    """Any payload the cap admits, sent the way clients send it (a text-format parameter),
    here the worst case for Python (4 bytes a character): 64 MiB of emoji."""
    db = big_values
    values = ["\U0001F600" * (MiB // 4)] * 64  # 1 MiB of UTF-8 each: 64 MiB in all
    rise, err = _peak_rise(db, "SELECT count(*) FROM hush.save_secrets('acme', %s, %s)",
                           [[f"emoji-{i}" for i in range(64)], values])
    assert err is None, err
    assert rise <= 4 * CAP + 64 * MiB, f"peak rose by {rise / MiB:.0f} MiB"
    with db.connect("alice") as a:
        assert get(a, "acme", "emoji-63")["value"] == values[0]


def test_a_payload_over_the_cap_is_refused_before_python_holds_it(big_values: Any) -> None:
    db = big_values
    before = _counts(db)
    rise, err = _peak_rise(db, "SELECT count(*) FROM hush.save_secrets('acme', %s, %s)",
                           [[f"over-{i}" for i in range(65)], ["x" * MiB] * 65])
    assert err is not None and err.sqlstate == "SH004", err
    assert "67108864" in err.diag.message_primary
    assert rise <= 4 * CAP + 64 * MiB, f"peak rose by {rise / MiB:.0f} MiB"
    assert _counts(db) == before


def test_values_never_reach_a_temporary_file(big_values: Any) -> None:
    """64 MiB through save_secrets with work_mem at 4 MB: no temporary file (a function in
    FROM stores its rows in one past work_mem, and the size check once did, in clear)."""
    db = big_values
    query = "SELECT temp_files FROM pg_catalog.pg_stat_database WHERE datname = pg_catalog.current_database()"
    before = db.sql(query)
    with db.connect("alice") as a:
        a.execute("SET work_mem = '4MB'")
        a.execute("SELECT count(*) FROM hush.save_secrets('acme', %s, %s)",
                  [[f"t{i}" for i in range(64)], [f"{i:08d}" * (MiB // 8) for i in range(64)]])
        a.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
        a.execute("SELECT 1")  # idle in between: the backend reports its statistics
    time.sleep(0.5)
    assert db.sql(query) == before


def test_the_client_splits_save_many_by_size(big_values: Any) -> None:
    """Secrets.save_many keeps working past the cap: 70 MiB go in two calls, one transaction."""
    db = big_values
    items = {f"import-{i}": f"{i:08d}" * (MiB // 8) for i in range(70)}
    with hush.connect(db.dsn("alice"), max_size=1) as client:
        saved = client.tenant("acme").save_many(items)
        assert len(saved) == 70
        assert client.tenant("acme").get("import-69").value == items["import-69"]
    assert db.sql("SELECT count(DISTINCT txid) FROM hush.audit_log WHERE action = 'create'") == [(1,)]


@pytest.mark.parametrize("call,args", [
    # 100,000 names: over 10,000 elements, before PL/Python sees them
    ("SELECT * FROM hush.get_secrets('acme', %s)", [[f"n{i}" for i in range(100000)]]),
    ("SELECT * FROM hush.save_secrets('acme', %s, %s)", [[f"n{i}" for i in range(10001)], ["v"] * 10001]),
    # 16 MiB + 1 character, not all ASCII: 4 bytes a character is over 64 MiB
    ("SELECT * FROM hush.save_secrets('acme', %s, %s)", [["k"], ["é" * (16 * MiB + 1)]]),
    ("SELECT * FROM hush.save_secret('acme', 'k', 'v', tags => %s)", [[f"t{i}" for i in range(65)]]),
    ("SELECT * FROM hush.list_secrets('acme', tags => %s)", [["t" * 40000]]),
    ("SELECT hush.destroy_secret('acme', 'k', %s)", [list(range(1, 10002))]),
    # every other text argument: at most 1 MiB
    ("SELECT * FROM hush.search_secrets('acme', %s)", ["q" * (MiB + 1)]),
    ("SELECT * FROM hush.save_secret('acme', 'k', 'v', description => %s)", ["d" * (MiB + 1)]),
    ("SELECT * FROM hush.oauth_begin('acme', 'p', %s, 'v', 'n', 'https://x/cb', '{}')", ["s" * (MiB + 1)]),
])
def test_array_and_text_limits(db: Any, call: str, args: list) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    before = _counts(db)
    with db.connect("alice") as a, raises_sqlstate("SH004") as ei:
        a.execute(call, args)
    assert len(str(ei.value)) < 2000
    assert _counts(db) == before


def test_an_array_refused_by_its_domain_leaves_a_failure_line(db: Any, cluster: Any) -> None:
    app = f"limits-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db.dsn("alice") + f" application_name={app}", autocommit=True) as a:
        with raises_sqlstate("SH004"):
            a.execute("SELECT * FROM hush.get_secrets('acme', %s)", [[f"n{i}" for i in range(10001)]])
    for _ in range(50):
        lines = [json.loads(line.split("hush-failure ", 1)[1]) for line in cluster.log.read_text().splitlines()
                 if "hush-failure " in line and app in line]
        if lines:
            break
        time.sleep(0.1)
    assert lines == [{"action": "hush.secret_names", "application_name": app, "role": "alice",
                      "session_role": "alice", "sqlstate": "SH004", "tenant": None}]


def test_a_value_over_any_tenant_limit_is_sh003(db: Any) -> None:
    with db.connect("alice") as a, raises_sqlstate("SH003"):
        save(a, "acme", "k", "v" * (MiB + 1))


def test_the_exact_limits_are_accepted(big_values: Any) -> None:
    db = big_values
    with db.connect("alice") as a:
        got = a.execute("SELECT count(*) FROM hush.get_secrets('acme', %s)", [[]]).fetchone()[0]
        assert got == 0
        names = [f"n{i}" for i in range(10000)]
        assert a.execute("SELECT count(*) FROM hush.save_secrets('acme', %s, %s)",
                         [names, ["v"] * 10000]).fetchone()[0] == 10000
        assert a.execute("SELECT count(*) FROM hush.get_secrets('acme', %s)", [names]).fetchone()[0] == 10000
        save(a, "acme", "tagged", "v", tags=[f"{i:064d}" for i in range(64)])
        # 16 Mi characters 'é': 32 MiB of UTF-8, 64 MiB as counted
        assert a.execute("SELECT count(*) FROM hush.save_secrets('acme', %s, %s)",
                         [[f"e{i}" for i in range(32)], ["é" * (MiB // 2)] * 32]).fetchone()[0] == 32


def test_a_stored_array_is_measured_unpacked(db: Any) -> None:
    """A compressed array from a table is small as stored and large as converted: the check
    measures what PL/Python would hold."""
    with db.connect("alice") as a:
        a.execute("CREATE TEMP TABLE src AS SELECT ARRAY(SELECT 'n' || i FROM pg_catalog.generate_series(1, 100) i) AS n,"
                  " ARRAY(SELECT pg_catalog.repeat('a', 1000000) || i FROM pg_catalog.generate_series(1, 100) i) AS v")
        assert a.execute("SELECT pg_catalog.pg_column_size(v) < 10000000 FROM src").fetchone()[0]
        with raises_sqlstate("SH004"):
            a.execute("SELECT hush.save_secrets('acme', n, v) FROM src")


# -- item 9: every bad argument gets a hush SQLSTATE and a bounded message ------------------

DEEP_ARRAY = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000
BAD = {
    "text": [None, "", "x" * 300, "y" * (MiB + 1), "\u202e\ufeff\U0001F600\u00e9", "tab\there", "*", "\U0010FFFF"],
    "integer": [None, 0, -1, -2147483648, 2147483647],
    "bigint": [None, 0, -1, -9223372036854775808, 9223372036854775807],
    "text[]": [None, [], [None], [""], ["x" * 300], [f"n{i}" for i in range(100000)]],
    "integer[]": [None, [], [None], [0], [-1], [2147483647], list(range(1, 100001))],
    "jsonb": [None, "null", "[]", '"s"', "{}", "1e400", DEEP_ARRAY, DEEP_OBJECT, '{"a": 1e400}',
              json.dumps({f"k{i}": "v" * 100 for i in range(20000)}),
              '{"access_token": "t", "expires_in": 1e400}', '{"access_token": "t", "expires_in": -1e400}',
              '{"access_token": "t", "expires_in": 1e20}', '{"access_token": "t", "scope": ' + DEEP_ARRAY + '}',
              '{"client_id": "c", "token_endpoint": ' + DEEP_OBJECT + '}',
              '{"caller_txid": 1e400}', '{"caller_txid": "x"}', '{"caller_txid": -1}', '{"caller_txid": 1.5}'],
    "timestamp with time zone": [None, "infinity", "-infinity", "4713-01-01 00:00:00+00 BC",
                                 "294276-12-31 23:59:59+00"],
    "boolean": [None, True, False],
    "uuid": [None, str(uuid.UUID(int=1))],
    "name": [None, "", "nosuchrole", "postgres"],
}
GOOD = {
    "tenant": "acme", "name": "k", "value": "v", "names": ["k"], "values": ["v"], "provider": "p",
    "code_verifier": "c" * 43, "nonce": "n" * 16, "redirect_uri": "https://x/cb", "scopes": ["openid"],
    "account": "acct", "ttl_seconds": 600, "grant_type": "authorization_code",
    "tokens": '{"access_token": "t", "expires_in": 3600}',
    "config": '{"client_id": "c", "token_endpoint": "https://x/t"}', "holder": "h", "lease_seconds": 30,
    "seen_generation": 0, "generation": 1, "min_valid_seconds": 30, "max_rows": 10, "months_ahead": 1,
    "retention_days": 2555, "key_id": "nope", "batch_size": 10, "role": "alice", "page": 1, "per_page": 10,
    "query": "k", "detail": "{}", "window_seconds": 900, "include_deleted": False, "needs_reauth": False,
}
ROLE_OF = {"hush_reader": "alice", "hush_writer": "alice", "hush_admin": "adam", "hush_auditor": "audrey",
           "hush_oauth_worker": "wendy"}
MAX_TEXT = 1100  # errors.MAX_MESSAGE_CHARS and the note of how long the whole was

FUNCTIONS_SQL = """
SELECT p.proname,
       array(SELECT pg_catalog.format_type(a.t, NULL) FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, n) ORDER BY a.n),
       array(SELECT pg_catalog.format_type(COALESCE(NULLIF(ty.typbasetype, 0), ty.oid), NULL)
               FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, n) JOIN pg_type ty ON ty.oid = a.t ORDER BY a.n),
       p.proargnames,
       array(SELECT (x.a).grantee::regrole::text FROM (SELECT pg_catalog.aclexplode(p.proacl) AS a) AS x)
  FROM pg_proc p
 WHERE p.pronamespace = 'hush'::regnamespace AND p.prokind = 'f'
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
   AND (p.proname NOT LIKE '\\_%' OR p.proname = '_rewrap_batch') AND p.proname <> 'allow_drop'
 ORDER BY 1"""


def _problem(e: psycopg.Error | None, bad: Any) -> str | None:
    if e is None:
        return None
    d = e.diag
    texts = [d.message_primary or "", d.message_detail or "", d.message_hint or ""]
    wrong = []
    if not (e.sqlstate or "").startswith("SH"):
        wrong.append(f"SQLSTATE {e.sqlstate} ({type(e).__name__}: {str(e)[:200]})")
    if max(map(len, texts)) > MAX_TEXT:
        wrong.append(f"message lengths {[len(t) for t in texts]}")
    if isinstance(bad, str) and len(bad) > 100 and any(bad[:100] in t for t in texts):
        wrong.append("the argument echoed")
    return "; ".join(wrong) + ": " + texts[0][:150] if wrong else None


def test_every_function_gives_every_bad_argument_a_hush_sqlstate(db: Any) -> None:
    """Each parameter of each hush.* function in turn gets huge, negative, out-of-range,
    deep, odd-unicode and NULL values, the others staying good, as the non-superuser role
    the function is granted to. A call may succeed or fail; a failure must carry a hush
    SQLSTATE (or 42501 for a role without EXECUTE, which is PostgreSQL's) and a message of
    bounded length that does not echo the argument."""
    with db.connect("alice") as a:
        for v in ("v1", "v2", "v3"):
            GOOD["id"] = str(save(a, "acme", "k", v)["id"])
        a.execute("SELECT hush.oauth_save_provider('acme', 'p', %s::jsonb)", [GOOD["config"]])
        a.execute("SELECT hush.oauth_store_tokens('acme', 'p', 'acct', 'authorization_code', %s::jsonb)",
                  ['{"access_token": "t", "refresh_token": "r", "expires_in": 3600}'])
    functions = db.sql(FUNCTIONS_SQL)
    conns: dict[str, psycopg.Connection] = {}
    problems, calls, refused = [], 0, 0
    try:
        for proname, types, bases, argnames, grantees in functions:
            role = next((ROLE_OF[g] for g in grantees if g in ROLE_OF), None)
            assert role, f"hush.{proname} is granted to no role this test knows"
            conn = conns.get(role) or conns.setdefault(role, db.connect(role))
            names = list(argnames or [])[:len(types)]
            # count(*): a row may hold what Python cannot (an expires_at in the year 294276)
            sql = "SELECT count(*) FROM hush.%s(%s)" % (proname, ", ".join(f'"{n}" => %s::{t}' for n, t in zip(names, types)))
            for i, base in enumerate(bases):
                for bad in BAD.get(base, [None]):
                    args = [GOOD.get(n) if n != "state" else uuid.uuid4().hex for n in names]
                    args[i] = bad
                    calls += 1
                    try:
                        conn.execute(sql, args).fetchall()
                        err = None
                    except psycopg.Error as e:
                        err = e
                        refused += 1
                    # Asking what another role may do is refused with PostgreSQL's code for a
                    # refused privilege, as documented (hush.effective_access).
                    asked_about_another = (proname == "effective_access" and names[i] == "role"
                                           and err is not None and err.sqlstate == "42501")
                    p = None if asked_about_another else _problem(err, bad)
                    if p:
                        problems.append(f"hush.{proname}({names[i]} => {repr(bad)[:40]}) as {role}: {p}")
    finally:
        for c in conns.values():
            c.close()
    assert len(functions) >= 40 and calls > 1000 and refused > 300, (len(functions), calls, refused)
    assert not problems, "\n".join(problems)


def test_the_examples_of_the_issue(db: Any) -> None:
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
        # A page past int4's range of offsets: an empty page, not 22003.
        assert a.execute("SELECT * FROM hush.list_secrets('acme', page => 2147483647, per_page => 1000)").fetchall() == []
        assert a.execute("SELECT * FROM hush.search_secrets('acme', 'k', page => 2147483647)").fetchall() == []
        with raises_sqlstate("SH004") as ei:  # was 38000 (RecursionError)
            save(a, "acme", "k", "v", metadata='{"a":' * 2000 + "1" + "}" * 2000)
        assert "nested too deeply" in str(ei.value)
        a.execute("SELECT hush.oauth_save_provider('acme', 'p', '{\"client_id\": \"c\"}')")
        for tokens in ('{"access_token": "t", "expires_in": 1e400}',   # was 38000 (OverflowError)
                       '{"access_token": "t", "expires_in": 1e20}'):   # was 22008 (timestamp out of range)
            with raises_sqlstate("SH004"):
                a.execute("SELECT hush.oauth_store_tokens('acme', 'p', 'acct', 'authorization_code', %s)", [tokens])
        # A long versions array named in SH011: the first ten, and how many more (was 16 MB).
        with raises_sqlstate("SH011") as ei:
            a.execute("SELECT hush.destroy_secret('acme', 'k', %s)", [list(range(2, 10002))])
        assert "2, 3, 4, 5, 6, 7, 8, 9, 10, 11 (and 9990 more)" in str(ei.value)
        assert len(str(ei.value)) < 500
        # Not a transaction id: 'unknown', not 22003/22P02/22023.
        for detail in ('{"caller_txid": 1e400}', '{"caller_txid": "x"}', '{"caller_txid": -1}'):
            assert a.execute("SELECT hush.caller_xact(%s)", [detail]).fetchone()[0] == "unknown"


TWO_D = "{{a,b},{c,d}}"


@pytest.mark.parametrize("call", [
    "SELECT count(*) FROM hush.save_secrets('acme', %(a)s, '{{v,w},{x,y}}')",
    "SELECT count(*) FROM hush.get_secrets('acme', %(a)s)",
    "SELECT hush.destroy_secret('acme', 'k', '{{1,2},{3,4}}')",
    "SELECT count(*) FROM hush.save_secret('acme', 'k2', 'v', tags => %(a)s)",
    "SELECT count(*) FROM hush.list_secrets('acme', tags => %(a)s)",
    "SELECT count(*) FROM hush.update_secret('acme', 'k', tags => %(a)s)",
    "SELECT hush.oauth_begin('acme', 'p', repeat('s', 20), repeat('c', 43), 'nnnnnnnnnnnnnnnn', 'https://x/cb', %(a)s)",
])
def test_a_multi_dimensional_array_is_sh004_with_a_failure_line(db: Any, cluster: Any, call: str) -> None:
    # PL/Python hands a 2-D array over as nested lists: before, a raw 38000 with no log line
    # (or, for oauth_begin's scopes, accepted).
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
    before = _counts(db)
    app = f"flat-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db.dsn("alice") + f" application_name={app}", autocommit=True) as a:
        with raises_sqlstate("SH004"):
            a.execute(call, {"a": TWO_D})
    assert _counts(db) == before
    for _ in range(50):
        lines = [line for line in cluster.log.read_text().splitlines() if "hush-failure " in line and app in line]
        if lines:
            break
        time.sleep(0.1)
    assert len(lines) == 1 and '"SH004"' in lines[0]


@pytest.mark.parametrize("scopes", [[f"s{i}" for i in range(101)], ["s" * 70000], ["ab"] * 1_000_000])
def test_oauth_scopes_are_limited_before_python_holds_them(db: Any, scopes: list) -> None:
    with db.connect("alice") as a, raises_sqlstate("SH004") as ei:
        a.execute("SELECT hush.oauth_begin('acme', 'p', repeat('s', 20), repeat('c', 43), 'nnnnnnnnnnnnnnnn',"
                  " 'https://x/cb', %s)", [scopes])
    assert "oauth_scopes" in str(ei.value)  # the domain's check, not the Python code's
