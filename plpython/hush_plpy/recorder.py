"""The read record, committed apart from the caller's transaction.

A value is handed out only after the record of its read is durable on the
primary, whatever the caller's transaction then does (ROLLBACK, ROLLBACK TO a
savepoint, a killed session, a lost client): the reading step sends the
record over a connection of its own (libpq, one per backend, opened on first
use and kept) to hush._record() on the primary, waits until that statement
has committed (synchronous_commit = on), and fails closed (SH022) when it
cannot: nothing is handed out. The same path serves a READ ONLY transaction
and a hot standby, where the caller's transaction could write nothing.

Where the records go (the target, computed by the superuser-owned
hush._recorder_target(), which keeps it in this backend's memory and returns
nothing to SQL, since primary_conninfo may hold a password):
- on a primary, this server through its own socket, as the bootstrap
  superuser (peer authentication on the local socket as the server's OS user);
- on a standby, the primary named by primary_conninfo (its host, port, user,
  passfile and TLS settings; replication dropped, dbname this database);
- hush.recorder_conninfo, from the server configuration only, overrides either
  (e.g. a least-privilege login role in hush_recorder, or a pooler).

Whoever logs in there cannot forge records: hush._record() stores only what
carries a MAC keyed by the root keyring (BLAKE2b), which both nodes hold and
no role can read, made for this database in the last five minutes, and answers
with a receipt under the same key that the reader checks before any value
leaves. A recorder logged in as a superuser records nothing over a slot of
superuser_reserved_connections. libpq is called through ctypes (no driver to install); the
connection is non-blocking so that a dead primary costs at most the deadline
(hush.recorder_timeout_ms, default 2,000), since a call blocked in libpq would
ignore the caller's cancel and statement_timeout.
"""
from __future__ import annotations

import os
import time

from . import keyring, wire
from .errors import AUDIT_RATE_LIMITED, INSUFFICIENT_PRIVILEGE, RECORD_FAILED, TENANT_ACCESS_DENIED, Fail, api

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

try:  # BLAKE2 is built into CPython; hashlib's import (OpenSSL) costs ~1 ms
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - another Python
    from hashlib import blake2b

# What this backend remembers between calls (module state lasts as long as the backend):
# the conninfo keywords under TARGET, set by hush._recorder_target(); RECEIVER below.
_memo: dict = {}
TARGET = "hush recorder target"
DEFAULT_TIMEOUT_MS = 2000
MAC_PERSON = b"hush-read-record"
RECORD_SQL = b"SELECT hush._record($1, $2)"

_lib: Any = None
_conn: Any = None          # the PGconn of this backend, or None
_conn_key: Any = None      # the target it was opened for


# -- libpq through ctypes ------------------------------------------------------------------

def _libpq() -> Any:
    global _lib
    if _lib is None:
        import ctypes
        lib = ctypes.CDLL("libpq.so.5")
        P, I, S = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
        for name, res, args in (
                ("PQconnectStartParams", P, [ctypes.POINTER(S), ctypes.POINTER(S), I]),
                ("PQconnectPoll", I, [P]), ("PQsocket", I, [P]), ("PQstatus", I, [P]),
                ("PQerrorMessage", S, [P]), ("PQfinish", None, [P]), ("PQsetnonblocking", I, [P, I]),
                ("PQsendQueryParams", I, [P, S, I, P, ctypes.POINTER(S), P, P, I]), ("PQflush", I, [P]),
                ("PQconsumeInput", I, [P]), ("PQisBusy", I, [P]), ("PQgetResult", P, [P]),
                ("PQresultStatus", I, [P]), ("PQresultErrorField", S, [P, I]), ("PQclear", None, [P]),
                ("PQtransactionStatus", I, [P]), ("PQntuples", I, [P]), ("PQgetvalue", S, [P, I, I])):
            f = getattr(lib, name)
            f.restype, f.argtypes = res, args
        lib.ctypes = ctypes
        _lib = lib
    return _lib


POLLING_FAILED, POLLING_READING, POLLING_WRITING, POLLING_OK = 0, 1, 2, 3
CONNECTION_BAD = 1
PGRES_COMMAND_OK, PGRES_TUPLES_OK = 1, 2
PQTRANS_IDLE = 0
PG_DIAG_SQLSTATE, PG_DIAG_MESSAGE_PRIMARY, PG_DIAG_MESSAGE_DETAIL = ord("C"), ord("M"), ord("D")


class _Down(Exception):
    """The record could not be written; the message says why (never a value)."""

    def __init__(self, message: str, state: str = "", detail: str = ""):
        super().__init__(message)
        self.state = state
        self.detail = detail


class RateLimited(Exception):
    """hush._record refused the record: the tenant is at its audit rate limit (SH023)."""


class Revoked(Exception):
    """hush._record refused the record: the reader's grants, asked again there, no longer allow
    `count` of its rows, the first at `places` (from 1) (SH020; recheck.py)."""

    def __init__(self, detail: str):
        super().__init__()
        count, _, places = detail.partition(":")
        self.count = int(count) if count.isdigit() else 0
        self.places = [int(i) for i in places.split(",") if i.isdigit()]


def _wait(lib: Any, conn: Any, write: bool, deadline: float) -> None:
    import select
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Down("no answer within the deadline")
    poller = select.poll()
    poller.register(lib.PQsocket(conn), select.POLLOUT if write else select.POLLIN)
    if not poller.poll(left * 1000):
        raise _Down("no answer within the deadline")


def _connect(target: dict, deadline: float) -> Any:
    lib = _libpq()
    ct = lib.ctypes
    keys = [k.encode() for k in target] + [None]
    vals = [str(v).encode() for v in target.values()] + [None]
    conn = lib.PQconnectStartParams((ct.c_char_p * len(keys))(*keys), (ct.c_char_p * len(vals))(*vals), 0)
    if not conn:
        raise _Down("out of memory")
    try:
        if lib.PQstatus(conn) == CONNECTION_BAD:
            raise _Down(_first_line(lib.PQerrorMessage(conn)))
        state = POLLING_WRITING
        while state != POLLING_OK:
            if state == POLLING_FAILED:
                raise _Down(_first_line(lib.PQerrorMessage(conn)))
            _wait(lib, conn, state == POLLING_WRITING, deadline)  # the socket may change between hosts
            state = lib.PQconnectPoll(conn)
        if lib.PQsetnonblocking(conn, 1) != 0:
            raise _Down(_first_line(lib.PQerrorMessage(conn)))
        return conn
    except BaseException:
        lib.PQfinish(conn)
        raise


def _first_line(msg: Any) -> str:
    text = (msg or b"").decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "connection failed"


def _send(conn: Any, params: list[bytes], deadline: float, sql: bytes = RECORD_SQL) -> bytes:
    """Run the record statement (or `sql`) and read every result: its commit is done when none
    is left. Returns the statement's one value (hush._record's receipt)."""
    lib = _libpq()
    ct = lib.ctypes
    values = (ct.c_char_p * len(params))(*params)
    if not lib.PQsendQueryParams(conn, sql, len(params), None, values, None, None, 0):
        raise _Down(_first_line(lib.PQerrorMessage(conn)))
    while True:
        flushed = lib.PQflush(conn)
        if flushed == 0:
            break
        if flushed < 0:
            raise _Down(_first_line(lib.PQerrorMessage(conn)))
        _wait(lib, conn, True, deadline)
    failure, failed_state, failed_detail, value = None, "", "", None
    while True:
        while lib.PQisBusy(conn):
            _wait(lib, conn, False, deadline)
            if not lib.PQconsumeInput(conn):
                raise _Down(_first_line(lib.PQerrorMessage(conn)))
        res = lib.PQgetResult(conn)
        if not res:
            break
        status = lib.PQresultStatus(res)
        if status not in (PGRES_COMMAND_OK, PGRES_TUPLES_OK) and failure is None:
            failed_state = (lib.PQresultErrorField(res, PG_DIAG_SQLSTATE) or b"").decode()
            failed_detail = (lib.PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) or b"").decode("utf-8", "replace")
            failure = "%s %s" % (failed_state, _first_line(lib.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)))
        elif status == PGRES_TUPLES_OK and lib.PQntuples(res) == 1:
            value = lib.PQgetvalue(res, 0, 0)
        lib.PQclear(res)
    if failure is not None:
        raise _Down(failure, failed_state, failed_detail)
    if lib.PQtransactionStatus(conn) != PQTRANS_IDLE:
        raise _Down("the record's transaction did not end")
    return value or b""


def _drop() -> None:
    global _conn, _conn_key
    if _conn is not None:
        _libpq().PQfinish(_conn)
    _conn, _conn_key = None, None


# -- the record -----------------------------------------------------------------------------

def mac(key: bytes, payload: bytes) -> bytes:
    return blake2b(payload, key=key, digest_size=32, person=MAC_PERSON).digest()


def _mac_key(plpy: Any) -> tuple[str, bytes]:
    """A key both nodes hold: the keyring's first (the same keyring on every node)."""
    return next(iter(keyring.load(plpy).items()))


def _target(plpy: Any, who: dict) -> dict:
    """Where records go, worked out once per backend, and again after a promotion or a
    configuration reload (a standby re-pointed at a new primary, a new recorder_conninfo)."""
    target = _memo.get(TARGET)
    if target is None or target["recovery"] != bool(who["standby"]) or target["conf"] != who["conf"]:
        plpy.execute("SELECT hush._recorder_target()")
        target = _memo[TARGET]
    return target


def record(plpy: Any, payload: dict, who: dict) -> None:
    """Send one record (a tenant's rows, who, where) and wait for its commit; SH022 otherwise.
    A connection kept from an earlier read may have died since (the recorder's session ends
    after a minute idle): then one more try on a new one. A standby's first record on a
    connection also reports which root keys its keyring holds (ids only), for add_root_key's
    warning on the primary."""
    global _conn, _conn_key
    target = _target(plpy, who)
    params = target["params"]
    deadline = time.monotonic() + target["timeout_ms"] / 1000
    while True:
        fresh = _conn is None or _conn_key is not target
        try:
            if fresh:
                _drop()
                _conn, _conn_key = _connect(params, deadline), target
            body, proof, receipt = _signed(plpy, payload, target, fresh)
            if _send(_conn, [body, proof], deadline) != receipt:
                raise _Down("the recorder's answer does not carry this record's receipt")
            return
        except _Down as e:
            # A refusal (the rate limit, a grant revoked) leaves the connection idle: kept, so
            # that a tenant held at its limit does not cost the primary a new session per call.
            if e.state in (AUDIT_RATE_LIMITED, TENANT_ACCESS_DENIED) and _conn is not None \
                    and _libpq().PQtransactionStatus(_conn) == PQTRANS_IDLE:
                if e.state == TENANT_ACCESS_DENIED:
                    raise Revoked(e.detail) from None
                raise RateLimited() from None
            _drop()  # a failed statement can leave the connection unusable for every later read
            if fresh or time.monotonic() >= deadline:
                _refuse(plpy, str(e), params, who)


# -- the first root key, registered apart from the writer's transaction ----------------------------

REGISTER_SQL = b"SELECT hush._register_first_root_key()"
WHERE_SQL = """
SELECT pg_catalog.pg_is_in_recovery() AS standby, pg_catalog.pg_conf_load_time()::pg_catalog.text AS conf
"""


def register_first_key(plpy: Any) -> str | None:
    """Have the primary register the keyring's first key as the active one, in a transaction of
    its own, over a connection used for this alone (no slot kept): registered inside the first
    writer's transaction, the row would make every other writer's first write wait until that
    transaction ends. Returns the active key id committed there, or None when it could not be
    done (the server log says why), for the caller to register it in its own transaction."""
    conn, params = None, {}
    try:
        target = _target(plpy, plpy.execute(WHERE_SQL)[0])
        params = target["params"]
        deadline = time.monotonic() + target["timeout_ms"] / 1000
        conn = _connect(params, deadline)
        return _send(conn, [], deadline, REGISTER_SQL).decode() or None
    except (_Down, Fail, plpy.SPIError) as e:
        keyring.log_privately(plpy, "hush: the first root key could not be registered apart from the first "
                              "writer's transaction, so it is registered inside it: %s (%s)"
                              % (getattr(e, "message", None) or e, where(params) if params else "no recorder"))
        return None
    finally:
        if conn is not None:
            _libpq().PQfinish(conn)


def _refuse(plpy: Any, why: str, params: dict, who: dict) -> None:
    """SH022. Where it tried comes from primary_conninfo (superuser-only): a superuser reads it
    in the message, anyone else in the server log, which a client cannot ask to see (LOG
    lines reach a client that sets client_min_messages = log: not this one)."""
    told = "%s (%s)" % (why, where(params))
    if not who["superuser"]:
        was = plpy.execute("SELECT pg_catalog.current_setting('client_min_messages') AS v")[0]["v"]
        plpy.execute("SELECT pg_catalog.set_config('client_min_messages', 'error', true)")
        plpy.log("hush: the record of a read could not be written: " + told)
        plpy.execute(plpy.prepare("SELECT pg_catalog.set_config('client_min_messages', $1, true)",
                                  ["pg_catalog.text"]), [was])
        told = "the primary could not be reached or refused it (the server log says why)"
    raise Fail(RECORD_FAILED, "the record of this read could not be written, so no value is returned: " + told,
               hint="A read is recorded on the primary before its value leaves; check that it is up and that "
                    "hush.recorder_conninfo (or primary_conninfo) reaches it.")


def _signed(plpy: Any, payload: dict, target: dict, fresh: bool) -> tuple[bytes, bytes, bytes]:
    """The record's body, its MAC, and the receipt hush._record answers with once it holds it
    (a pooler or anything else in between cannot fake the answer)."""
    kid, key = _mac_key(plpy)
    nonce = os.urandom(16).hex()
    # db and at: a body replayed into another database, or later than RECENT_S, is refused.
    extra = {"key_id": kid, "nonce": nonce, "db": target["db"], "at": int(time.time())}
    if fresh and target.get("node"):
        extra["node"] = {"name": target["node"], "key_ids": sorted(keyring.load(plpy))}
    body = wire.dumps(dict(payload, **extra)).encode()
    return body, b"\\x" + mac(key, body).hex().encode(), receipt(key, nonce).hex().encode()


def receipt(key: bytes, nonce: str) -> bytes:
    return mac(key, b"recorded " + nonce.encode())


def where(params: dict) -> str:
    """The target without credentials, for messages."""
    host = params.get("host") or params.get("hostaddr") or "local socket"
    return "recorder at %s port %s as %s" % (host, params.get("port", "5432"), params.get("user", "?"))


# -- the target, worked out by the superuser-owned hush._recorder_target() ----------------------

SETTINGS_SQL = """
SELECT pg_catalog.pg_is_in_recovery() AS recovery, pg_catalog.current_setting('cluster_name') AS cluster_name,
       pg_catalog.pg_conf_load_time()::pg_catalog.text AS conf,
       pg_catalog.current_setting('primary_conninfo') AS primary_conninfo,
       pg_catalog.current_setting('unix_socket_directories') AS sockets,
       pg_catalog.current_setting('port') AS port, pg_catalog.current_database() AS dbname,
       (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) 10) AS superuser,
       (SELECT f.setting FROM pg_catalog.pg_file_settings f
         WHERE f.name OPERATOR(pg_catalog.=) 'hush.recorder_conninfo' AND f.error IS NULL
         ORDER BY f.seqno DESC LIMIT 1) AS override,
       (SELECT f.setting FROM pg_catalog.pg_file_settings f
         WHERE f.name OPERATOR(pg_catalog.=) 'hush.recorder_timeout_ms' AND f.error IS NULL
         ORDER BY f.seqno DESC LIMIT 1) AS timeout_ms
"""
# Of primary_conninfo, what reaches the primary as a client (replication itself is dropped).
KEPT = ("host", "hostaddr", "port", "user", "password", "passfile", "sslmode", "sslcert", "sslkey", "sslrootcert",
        "sslcrl", "sslcrldir", "sslpassword", "gssencmode", "krbsrvname", "target_session_attrs", "channel_binding",
        "requirepeer", "ssl_min_protocol_version", "ssl_max_protocol_version")


def parse(conninfo: str) -> dict:
    """libpq's own reading of a conninfo string or URI: only the keywords it sets."""
    lib = _libpq()
    ct = lib.ctypes

    class Option(ct.Structure):
        _fields_ = [("keyword", ct.c_char_p), ("envvar", ct.c_char_p), ("compiled", ct.c_char_p),
                    ("val", ct.c_char_p), ("label", ct.c_char_p), ("dispchar", ct.c_char_p), ("dispsize", ct.c_int)]
    lib.PQconninfoParse.restype = ct.POINTER(Option)
    lib.PQconninfoParse.argtypes = [ct.c_char_p, ct.POINTER(ct.c_char_p)]
    lib.PQconninfoFree.argtypes = [ct.POINTER(Option)]
    err = ct.c_char_p()
    opts = lib.PQconninfoParse(conninfo.encode(), ct.byref(err))
    if not opts:
        raise Fail(RECORD_FAILED, "a conninfo string of the recorder does not parse")  # never its text
    out = {}
    i = 0
    while opts[i].keyword:
        if opts[i].val is not None:
            out[opts[i].keyword.decode()] = opts[i].val.decode()
        i += 1
    lib.PQconninfoFree(opts)
    return out


def _timeout_ms(setting: Any) -> int:
    if not setting:
        return DEFAULT_TIMEOUT_MS
    if not setting.isdigit() or not 100 <= int(setting) <= 60000:
        raise Fail(RECORD_FAILED, "hush.recorder_timeout_ms must be a whole number of milliseconds from 100 to "
                   "60000, not %r" % setting[:40])
    return int(setting)


@api
def compute_target(plpy: Any) -> None:
    """Where this backend's records go, kept in its memory only (primary_conninfo and the
    override may hold a password)."""
    s = plpy.execute(SETTINGS_SQL)[0]
    if s["recovery"]:
        params = {k: v for k, v in parse(s["primary_conninfo"] or "").items() if k in KEPT}
        params["target_session_attrs"] = "read-write"  # of several hosts, the one that writes
    else:
        sockets = [d.strip() for d in (s["sockets"] or "").split(",") if d.strip()]
        params = {"host": sockets[0] if sockets else "localhost", "port": s["port"], "user": s["superuser"]}
    if s["override"]:
        override = parse(s["override"])
        if {"password", "sslpassword"} & set(override):
            raise Fail(RECORD_FAILED, "hush.recorder_conninfo holds a password, which every role can read with "
                       "SHOW: hush does not use it", hint="Authenticate the recorder with a passfile, a client "
                       "certificate or peer authentication (docs/audit.md, \"When a read is recorded\").")
        params.update(override)
    timeout_ms = _timeout_ms(s["timeout_ms"])
    # The reader's pid in the name: pg_stat_activity on the primary ties each recorder
    # connection to its backend (one per backend that read, opened on its first read).
    params.update(dbname=s["dbname"], application_name="hush recorder for %s" % os.getpid(),
                  connect_timeout=max(2, -(-timeout_ms // 1000)),
                  keepalives=1, keepalives_idle=10, keepalives_interval=2, keepalives_count=3,
                  tcp_user_timeout=timeout_ms,
                  options="-c synchronous_commit=on -c default_transaction_read_only=off "
                          "-c lock_timeout=%d -c statement_timeout=%d -c idle_in_transaction_session_timeout=0 "
                          # a reader gone quiet frees its recorder's slot; its next read reconnects
                          "-c idle_session_timeout=60000" % (min(timeout_ms, 1000), timeout_ms))
    _memo[TARGET] = {"params": params, "recovery": bool(s["recovery"]), "timeout_ms": timeout_ms, "conf": s["conf"],
                  "db": s["dbname"]}
    if s["recovery"]:  # how the primary names this standby in add_root_key's warning
        import socket
        _memo[TARGET]["node"] = "%s:%s%s" % (socket.gethostname(), s["port"],
                                          " (%s)" % s["cluster_name"] if s["cluster_name"] else "")


# -- the receiving end: hush._record() on the primary ----------------------------------------------

NODE_SQL = """
INSERT INTO hush.node_keyrings AS n (node, key_ids) VALUES ($1, $2)
    ON CONFLICT (node) DO UPDATE SET key_ids = excluded.key_ids, reported_at = pg_catalog.now()
"""


RECENT_S = 300   # how old (or, clocks differing, how new) a record's body may be
# Once per recorder session: this database, and whether a recorder logged in
# as a superuser (from this server, or from a standby's primary_conninfo) took
# a slot of superuser_reserved_connections. Then it records nothing and the
# reader drops the connection, so the DBA's reserve is held for one round trip
# at most. A session that got an ordinary slot keeps it: no later check needed.
RECEIVER = "hush recorder session"
SESSION_SQL = """
SELECT pg_catalog.current_database() AS db,
       CASE WHEN {superuser} THEN hush._recorder_room() ELSE true END AS room
"""


@api
def store(plpy: Any, body: Any, proof: Any) -> str:
    """hush._record(): verify the record's MAC, its database and its age, then insert its rows
    (as hush_owner, in the record's tenant, under owner_steps) if the reader's grants allow
    them now (recheck.py; SH020 otherwise) and answer with its receipt. Anything else is
    refused, and nothing is written. synchronous_commit is set by the INSERT too: a pooler in
    between may drop the recorder's start-up options."""
    from _operator import _compare_digest
    from . import access, recheck  # not at the top: hush._recorder_target() needs neither
    from .audit import check_rate
    try:
        payload = wire.loads(body)
        key = keyring.load(plpy).get(payload["key_id"])
        good = key is not None and _compare_digest(mac(key, body.encode()), bytes(proof))
    except (ValueError, KeyError, TypeError):
        good = False
    storable, cap = recheck.needs(payload.get("rows", [])) if good else (False, None)
    if not storable:
        raise Fail(INSUFFICIENT_PRIVILEGE, "hush._record stores only records that hush's own reads signed")
    here = _memo.get(RECEIVER)
    if here is None:
        here = plpy.execute(SESSION_SQL.format(superuser=access.superuser("SESSION_USER")))[0]
        if not here["room"]:
            raise Fail("53300", "a superuser recorder refuses to hold a slot of superuser_reserved_connections: "
                       "no other slot is free", hint="Raise max_connections, or record as a login role in "
                       "hush_recorder with a CONNECTION LIMIT (docs/audit.md, \"When a read is recorded\").")
        _memo[RECEIVER] = here
    if payload.get("db") != here["db"] or not isinstance(payload.get("at"), int) \
            or abs(time.time() - payload["at"]) > RECENT_S:
        raise Fail(INSUFFICIENT_PRIVILEGE, "hush._record refuses a record made for another database or more "
                   "than %d s away from now (a replay)" % RECENT_S)
    if payload.get("node"):
        node = payload["node"]
        plpy.execute(access.plan(plpy, "recorder.node", NODE_SQL, ["pg_catalog.text", "pg_catalog.text[]"]),
                     [node["name"], node["key_ids"]])
    limit = payload.get("audit_limit")
    if limit:  # before the rows: SH023 writes nothing; the reader hands out nothing
        # The tenant whose rows check_rate counts (recheck.STORE_SQL sets it again for its own).
        access.act_in(plpy, payload["tenant"])
        check_rate(plpy, payload["tenant"], limit)
    rows = payload["rows"]
    p = access.plan(plpy, "recorder.store", recheck.STORE_SQL, recheck.STORE_TYPES)
    done = plpy.execute(p, [payload["tenant"], payload["db_role"], payload["session_role"],
                            payload["application_name"], payload["client_addr"], [r[0] for r in rows],
                            [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                            [wire.dumps(r[4]) for r in rows], cap])[0]
    if done["refused"]:  # nothing was stored; the reader names what it may no longer read
        raise Fail(TENANT_ACCESS_DENIED, "hush._record refuses reads that the reader's grants no longer allow",
                   detail="%d:%s" % (len(done["refused"]), ",".join(str(i) for i in done["refused"][:10])))
    return receipt(key, payload["nonce"]).hex()  # text: no bytea_output setting can change it
