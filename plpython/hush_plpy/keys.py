"""Root key lifecycle (hush_admin): which keys exist, register, activate, retire.

Authority is EXECUTE on the API function (hush_admin); the work is a
privileged step (privileged.py) run as hush_keykeeper (BYPASSRLS): counting
the data keys a root key seals spans every tenant. The steps read key ids and
counts, never a value; rewrap re-seals data keys without opening a value.
Each change is audited under tenant '*', naming the role that called.

A database with no key registered gets its first one from its first write
(first_active, at the end): the keyring's first key, made active, committed
apart from that write's transaction.
"""
from __future__ import annotations

import re

from . import audit, crypto, keyring, privileged, recorder
from .access import plan
from .errors import (DECRYPTION_FAILED, INVALID_ARGUMENT, KEY_UNAVAILABLE, ROOT_KEY_IN_USE, ROOT_KEY_UNKNOWN,
                     Fail, api)
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

NE = "OPERATOR(pg_catalog.<>)"
KEYKEEPER = privileged.KEYKEEPER
KEY_ID = re.compile(r"[0-9a-f]{32}")

# Every table holding data keys sealed by a root key: (table, row id, generation).
# Each seals its data keys with associated data (tenant, row id, generation,
# key id), so one rewrap serves them all (crypto.rewrap).
SEALED = (("secret_versions", "secret_id", "version"),
          ("oauth_providers", "id", "generation"),
          ("oauth_pending", "id", "generation"),
          ("oauth_connections", "id", "generation"))
USES = " OPERATOR(pg_catalog.+) ".join(
    f"(SELECT pg_catalog.count(*) FROM hush.{t} v WHERE v.key_id {EQ} k.key_id)" for t, _, _ in SEALED)
STATUS_SQL = f"""
SELECT k.key_id, k.state, k.created_at, k.activated_at, {USES} AS data_keys
  FROM hush.root_keys k ORDER BY k.created_at, k.key_id
"""
STATE_SQL = f"SELECT k.state FROM hush.root_keys k WHERE k.key_id {EQ} $1"
ADD_SQL = f"""
INSERT INTO hush.root_keys AS k (key_id, state) VALUES ($1, 'decrypt_only')
ON CONFLICT (key_id) DO UPDATE SET state = 'decrypt_only' WHERE k.state {EQ} 'retired'
"""
DEMOTE_SQL = f"UPDATE hush.root_keys k SET state = 'decrypt_only' WHERE k.state {EQ} 'active' AND k.key_id {NE} $1"
PROMOTE_SQL = f"UPDATE hush.root_keys k SET state = 'active', activated_at = pg_catalog.now() WHERE k.key_id {EQ} $1"
IN_USE_SQL = f"SELECT {USES} AS n FROM (SELECT $1 AS key_id) k"
RETIRE_SQL = f"UPDATE hush.root_keys k SET state = 'retired' WHERE k.key_id {EQ} $1"


def _key_id(kid: Any) -> str:
    if not isinstance(kid, str) or not KEY_ID.fullmatch(kid):
        raise Fail(INVALID_ARGUMENT, "a root key id is 32 lowercase hex characters",
                   hint="hush.root_key_status() lists the key ids.")
    return kid


def _state(plpy: Any, kid: str) -> str | None:
    rows = plpy.execute(plan(plpy, "keys.state", STATE_SQL, [T]), [kid])
    return rows[0]["state"] if rows else None


def _in_keyring(plpy: Any, kid: str) -> None:
    if kid not in keyring.load(plpy, fresh=True, reveal=True):
        raise Fail(KEY_UNAVAILABLE, "root key %s is not in the server's keyring" % kid,
                   hint="Add it to the keyring file first (hush keygen --append), then retry.")


@api
def status(plpy: Any) -> list[dict]:
    """Registered keys with their state and data-key counts, then keyring keys not registered yet."""
    return privileged.call(plpy, KEYKEEPER, _status)


@privileged.step(KEYKEEPER)
def _status(plpy: Any, caller: str) -> list[dict]:
    try:  # admins only: the reason may name the keyring's file or program
        loaded = keyring.load(plpy, fresh=True, reveal=True)
    except Fail as f:  # still show what is registered, and say why nothing is loaded
        plpy.warning("hush: " + f.message)
        loaded = {}
    rows = [dict(r, loaded=r["key_id"] in loaded) for r in plpy.execute(plan(plpy, "keys.status", STATUS_SQL, []))]
    known = {r["key_id"] for r in rows}
    rows += [{"key_id": kid, "state": "unregistered", "loaded": True, "data_keys": 0, "created_at": None,
              "activated_at": None} for kid in loaded if kid not in known]
    return rows


@api
def add(plpy: Any, kid: Any) -> str:
    """Register a keyring key as decrypt_only (a retired key comes back as decrypt_only)."""
    return privileged.call(plpy, KEYKEEPER, _add, _key_id(kid))


@privileged.step(KEYKEEPER)
def _add(plpy: Any, caller: str, kid: str) -> str:
    _in_keyring(plpy, kid)
    plpy.execute(plan(plpy, "keys.add", ADD_SQL, [T]), [kid])
    state = _state(plpy, kid)
    audit.record(plpy, {"caller": caller}, "*", "add_root_key", detail={"key_id": kid, "state": state})
    _warn_standbys(plpy, kid)
    return str(state)


# A standby reports its keyring (ids) on each new recorder connection; reports
# older than a week are taken for nodes gone.
STANDBYS_SQL = """
WITH recent AS (SELECT n.node, n.key_ids, n.reported_at FROM hush.node_keyrings n
                 WHERE n.reported_at OPERATOR(pg_catalog.>)
                       (pg_catalog.now() OPERATOR(pg_catalog.-) '7 days'::pg_catalog.interval))
SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_replication) AS streaming,
       (SELECT pg_catalog.array_agg(pg_catalog.format('%s (reported %s)', r.node, r.reported_at) ORDER BY r.node)
          FROM recent r WHERE NOT $1 OPERATOR(pg_catalog.=) ANY (r.key_ids)) AS lacking,
       (SELECT pg_catalog.count(*) FROM recent) AS reported
"""


def _warn_standbys(plpy: Any, kid: str) -> None:
    """Every node decrypts with the same keyring: say which standbys lack this key (SH030 there
    for anything it seals), or that standbys stream whose keyrings hush cannot see."""
    row = plpy.execute(plan(plpy, "keys.standbys", STANDBYS_SQL, [T]), [kid])[0]
    if row["lacking"]:
        plpy.warning("hush: root key %s is not in the keyring of standby %s: add it to every node's keyring before "
                     "activating it, or reads there fail with SH030" % (kid, ", ".join(row["lacking"])))
    elif row["streaming"] > row["reported"]:  # some have not served an audited read lately
        plpy.warning("hush: %d standby(s) stream from this server and %d reported a keyring holding root key %s; "
                     "each needs it (on a standby, hush.root_key_status() shows loaded = false for a key it lacks)"
                     % (row["streaming"], row["reported"], kid))


@api
def activate(plpy: Any, kid: Any) -> str:
    """Make a registered key the one new data keys are sealed with; the old one decrypts only."""
    return privileged.call(plpy, KEYKEEPER, _activate, _key_id(kid))


@privileged.step(KEYKEEPER)
def _activate(plpy: Any, caller: str, kid: str) -> str:
    state = _state(plpy, kid)
    if state is None or state == "retired":
        raise Fail(ROOT_KEY_UNKNOWN, "root key %s is %s" % (kid, "retired" if state else "not registered"),
                   hint="Register it with hush.add_root_key first.")
    _in_keyring(plpy, kid)
    if state != "active":
        plpy.execute(plan(plpy, "keys.demote", DEMOTE_SQL, [T]), [kid])
        plpy.execute(plan(plpy, "keys.promote", PROMOTE_SQL, [T]), [kid])
        audit.record(plpy, {"caller": caller}, "*", "activate_root_key", detail={"key_id": kid})
    _warn_standbys(plpy, kid)
    return "active"


@api
def retire(plpy: Any, kid: Any) -> str:
    """Retire a key no data key needs any more; refused for the active key and keys in use."""
    return privileged.call(plpy, KEYKEEPER, _retire, _key_id(kid))


@privileged.step(KEYKEEPER)
def _retire(plpy: Any, caller: str, kid: str) -> str:
    state = _state(plpy, kid)
    if state is None:
        raise Fail(ROOT_KEY_UNKNOWN, "root key %s is not registered" % kid)
    if state == "active":
        raise Fail(ROOT_KEY_IN_USE, "root key %s is the active key" % kid,
                   hint="Activate another key first, then rewrap.")
    n = plpy.execute(plan(plpy, "keys.in_use", IN_USE_SQL, [T]), [kid])[0]["n"]
    if n:
        raise Fail(ROOT_KEY_IN_USE, "root key %s still seals %d data key(s)" % (kid, n),
                   hint="Re-seal them under the active key first (rewrap), or destroy those versions.")
    if state != "retired":
        plpy.execute(plan(plpy, "keys.retire", RETIRE_SQL, [T]), [kid])
        audit.record(plpy, {"caller": caller}, "*", "retire_root_key", detail={"key_id": kid})
    return "retired"


ACTIVE_SQL = f"SELECT k.key_id FROM hush.root_keys k WHERE k.state {EQ} 'active'"
# Rows still sealed by another registered key, found through the key_id index
# (a `<>` filter would rescan the already re-sealed rows on every batch); SKIP
# LOCKED lets two rewraps (or a destroy, or a token refresh) proceed side by side.
PICK_SQL = f"""
SELECT v.tenant_id, v.{{id}}::pg_catalog.text AS row_id, v.{{gen}} AS generation, v.key_id, v.wrapped_dek
  FROM hush.{{table}} v
 WHERE v.key_id IN (SELECT k.key_id FROM hush.root_keys k WHERE k.key_id {NE} $1)
 LIMIT $2 FOR UPDATE OF v SKIP LOCKED
"""
# One statement per batch, set-based: no subtransaction per row.
REWRAP_SQL = f"""
UPDATE hush.{{table}} v SET key_id = $1, wrapped_dek = u.w
  FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.text[]), pg_catalog.unnest($3::pg_catalog.uuid[]),
                  pg_catalog.unnest($4::pg_catalog.int4[]), pg_catalog.unnest($5::pg_catalog.text[]),
                  pg_catalog.unnest($6::pg_catalog.bytea[])) AS u(t, s, n, old, w)
 WHERE v.tenant_id {EQ} u.t AND v.{{id}} {EQ} u.s AND v.{{gen}} {EQ} u.n AND v.key_id {EQ} u.old
"""


def _pick(plpy: Any, new_kid: str, batch_size: int) -> tuple[tuple[str, str, str], list]:
    """The first sealed table with rows left to re-seal, and up to batch_size of them."""
    for table in SEALED:
        t, id_col, gen_col = table
        p = plan(plpy, "keys.pick." + t, PICK_SQL.format(table=t, id=id_col, gen=gen_col), [T, "pg_catalog.int4"])
        rows = list(plpy.execute(p, [new_kid, batch_size]))
        if rows:
            return table, rows
    return SEALED[0], []


@api
def rewrap_batch(plpy: Any, batch_size: Any) -> int:
    """Re-seal up to batch_size data keys from older root keys to the active one;
    returns how many (0 = done). The caller commits each batch."""
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 10000:
        raise Fail(INVALID_ARGUMENT, "batch_size must be between 1 and 10000")
    return privileged.call(plpy, KEYKEEPER, _rewrap_batch, batch_size)


@privileged.step(KEYKEEPER)
def _rewrap_batch(plpy: Any, caller: str, batch_size: int) -> int:
    active = plpy.execute(plan(plpy, "keys.active", ACTIVE_SQL, []))
    if not active:  # no key registered yet, so no data key either
        return 0
    new_kid = active[0]["key_id"]
    new_root = keyring.get(plpy, new_kid, reveal=True)
    (table, id_col, gen_col), rows = _pick(plpy, new_kid, batch_size)
    if not rows:
        return 0
    cols: tuple[list[Any], ...] = ([], [], [], [], [])
    for r in rows:
        old_root = keyring.get(plpy, r["key_id"], reveal=True)  # SH030 naming the key when it is missing
        try:
            wrapped = crypto.rewrap(old_root, r["key_id"], new_root, new_kid, r["tenant_id"], r["row_id"],
                                    r["generation"], r["wrapped_dek"])
        except crypto.CryptoError:
            raise Fail(DECRYPTION_FAILED, "the data key of %s row %s, generation %d (tenant %s) does not open "
                       "with root key %s; nothing in this batch was changed"
                       % (table, r["row_id"], r["generation"], r["tenant_id"], r["key_id"])) from None
        for col, v in zip(cols, (r["tenant_id"], r["row_id"], r["generation"], r["key_id"], wrapped)):
            col.append(v)
    p = plan(plpy, "keys.rewrap." + table, REWRAP_SQL.format(table=table, id=id_col, gen=gen_col),
             [T, "pg_catalog.text[]", "pg_catalog.uuid[]", "pg_catalog.int4[]", "pg_catalog.text[]",
              "pg_catalog.bytea[]"])
    plpy.execute(p, [new_kid, *cols])
    audit.record(plpy, {"caller": caller}, "*", "rewrap", detail={"key_id": new_kid, "data_keys": len(rows)})
    return len(rows)


# -- the first write of a database with no key registered ----------------------------------------

REGISTER_FIRST_SQL = """
INSERT INTO hush.root_keys (key_id, state, activated_at)
SELECT $1, 'active', pg_catalog.now() WHERE NOT EXISTS (SELECT 1 FROM hush.root_keys)
ON CONFLICT DO NOTHING
"""
FIRST_SQL = f"""
SELECT (SELECT k.key_id FROM hush.root_keys k WHERE k.state {EQ} 'active') AS active,
       EXISTS (SELECT 1 FROM hush.root_keys) AS registered,
       pg_catalog.current_setting('transaction_isolation') AS isolation
"""


def first_active(plpy: Any) -> str:
    """In a writing step that saw no active key: the keyring's first key becomes the active one
    when no key is registered at all. `hush init` does that before any write; else the first
    write has it registered in a transaction of its own (recorder.register_first_key), so that
    the row does not stay uncommitted, and every other writer waiting on it, for as long as the
    first writer's transaction lasts. Registered inside that transaction only when that fails."""
    row = plpy.execute(plan(plpy, "keys.first", FIRST_SQL, []))[0]
    if row["active"] is None and not row["registered"]:
        committed = recorder.register_first_key(plpy)
        row = plpy.execute(plan(plpy, "keys.first", FIRST_SQL, []))[0]
        if row["active"] is None and not row["registered"]:
            if committed is not None and row["isolation"] != "read committed":
                # Its data key would reference a row this transaction's snapshot does not show.
                raise Fail("40001", "the first root key of this database was registered just now, after this "
                           "transaction's snapshot was taken (%s): retry the transaction" % row["isolation"],
                           hint="`hush init` registers the key before any write.")
            plpy.execute(plan(plpy, "keys.register_first", REGISTER_FIRST_SQL, [T]),
                         [next(iter(keyring.load(plpy)))])
            row = plpy.execute(plan(plpy, "keys.first", FIRST_SQL, []))[0]
    if row["active"] is None:
        raise Fail(KEY_UNAVAILABLE, "no root key is active in this database",
                   hint="An admin activates a registered key (see docs/keys.md, \"Key rotation\").")
    return str(row["active"])


@api
def register_first(plpy: Any) -> Any:
    """hush._register_first_root_key(), on the primary, in the recorder connection's own
    transaction: the keyring's first key as the active one if no key is registered; returns
    the active key id (None: keys are registered, none active). Takes nothing from its caller."""
    plpy.execute(plan(plpy, "keys.register_first", REGISTER_FIRST_SQL, [T]), [next(iter(keyring.load(plpy)))])
    rows = plpy.execute(plan(plpy, "keys.active", ACTIVE_SQL, []))
    return rows[0]["key_id"] if rows else None
