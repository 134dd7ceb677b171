"""OAuth2/OIDC storage: providers, pending authorizations, connections, and the
refresh lease (DESIGN.md section 6).

The database never speaks HTTP: the Python client does, with no transaction
open, and comes here before and after. What is secret (client secrets, PKCE
verifiers and nonces, tokens) is sealed like a secret value (crypto.seal_part)
and opened only in these functions; every opening and every store writes an
audit row (secret_name = the provider, detail.account = the account), never a
value. Single-flight refresh is a lease: claim() takes it in one committed
UPDATE, the client calls the token endpoint, finish() stores the result over
the generation it claimed and frees the lease, release() frees it on failure.

Every function's work is a privileged step (privileged.py) run as hush_owner
for the caller its ticket names, whose grant access.enter checks; the
worker's cross-tenant scan runs as hush_refresher, confined to the tenants
that caller may act on (SERVES).
"""
from __future__ import annotations

import hashlib
import json
import uuid

from . import access, audit, crypto, keyring, privileged, validate
from .access import may_act, plan
from .errors import (DECRYPTION_FAILED, INVALID_ARGUMENT, OAUTH_ACCOUNT_AMBIGUOUS,
                     OAUTH_CONNECTION_NOT_FOUND, OAUTH_LEASE_LOST, OAUTH_PROVIDER_NOT_FOUND, OAUTH_REAUTH_REQUIRED,
                     OAUTH_STATE_INVALID, OAUTH_TOKEN_EXPIRING, TENANT_ACCESS_DENIED, Fail, api)
from .secrets import EQ, T, active_key

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

J, I4, TS, U, B, NM, TA, BOOL = ("pg_catalog.jsonb", "pg_catalog.int4", "pg_catalog.timestamptz", "pg_catalog.uuid",
                                 "pg_catalog.bytea", "pg_catalog.name", "pg_catalog.text[]", "pg_catalog.bool")
LE = "OPERATOR(pg_catalog.<=)"
CLIENT_SECRET, PENDING, TOKENS = b"oauth-client-secret", b"oauth-pending", b"oauth-tokens"
MAX_CONFIG_BYTES = 65536
MAX_TOKEN_BYTES = 65536
MAX_ERROR_CHARS = 200
TOKEN_FIELDS = ("access_token", "refresh_token", "id_token")
OWNER, REFRESHER = privileged.OWNER, privileged.REFRESHER


# -- sealing -------------------------------------------------------------------

def _seal(key: tuple[str, bytes], part: bytes, tenant: str, row_id: str, generation: int,
          plain: bytes) -> tuple[str, bytes, bytes]:
    kid, root = key
    wrapped, ciphertext = crypto.seal_part(root, kid, part, tenant, row_id, generation, plain)
    return kid, wrapped, ciphertext


def _open(plpy: Any, GD: dict, part: bytes, tenant: str, row: dict, what: str) -> bytes:
    root = keyring.get(plpy, GD, row["key_id"])
    try:
        return crypto.open_part(root, row["key_id"], part, tenant, str(row["id"]), row["generation"],
                                row["wrapped_dek"], row["ciphertext"])
    except crypto.CryptoError:
        raise Fail(DECRYPTION_FAILED, "%s of tenant %s does not decrypt: its ciphertext or data key does not "
                   "belong to this row (tampered with or copied)" % (what, tenant)) from None


def _json_object(value: Any, what: str, limit: int) -> dict:
    if value is None:
        raise Fail(INVALID_ARGUMENT, "%s must not be NULL" % what)
    if len(value) > limit:
        raise Fail(INVALID_ARGUMENT, "%s is %d bytes; the limit is %d" % (what, len(value), limit))
    obj = json.loads(value)  # jsonb arrives as its text; it is valid JSON
    if not isinstance(obj, dict):
        raise Fail(INVALID_ARGUMENT, "%s must be a JSON object" % what)
    return obj


def _record(plpy: Any, who: dict, tenant: str, action: str, row_id: Any, provider: str, generation: Any = None,
            **detail: Any) -> None:
    audit.record(plpy, who, tenant, action, secret_id=row_id, secret_name=provider, version=generation,
                 detail={k: v for k, v in detail.items() if v is not None} or None)


# -- providers -------------------------------------------------------------------

PROVIDER_SQL = f"""
SELECT p.id, p.generation, p.config, p.key_id, p.wrapped_dek, p.ciphertext
  FROM hush.oauth_providers p WHERE p.tenant_id {EQ} $1 AND p.name {EQ} $2
"""
PROVIDER_INSERT_SQL = """
INSERT INTO hush.oauth_providers (tenant_id, name, id, generation, config, key_id, wrapped_dek, ciphertext, created_by)
VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, name) DO NOTHING
RETURNING id
"""
PROVIDER_UPDATE_SQL = f"""
UPDATE hush.oauth_providers p
   SET generation = $3, config = $4, key_id = $5, wrapped_dek = $6, ciphertext = $7, updated_at = pg_catalog.now()
 WHERE p.tenant_id {EQ} $1 AND p.name {EQ} $2 AND p.generation {EQ} ($3 OPERATOR(pg_catalog.-) 1)
RETURNING p.id
"""
PROVIDERS_SQL = f"""
SELECT p.name, p.config, p.ciphertext IS NOT NULL AS has_client_secret, p.created_at, p.updated_at
  FROM hush.oauth_providers p WHERE p.tenant_id {EQ} $1 ORDER BY p.name
"""
PROVIDER_DELETE_SQL = f"""
DELETE FROM hush.oauth_providers p WHERE p.tenant_id {EQ} $1 AND p.name {EQ} $2 RETURNING p.id
"""


def _provider_row(plpy: Any, tenant: str, name: str) -> dict:
    rows = plpy.execute(plan(plpy, "oauth.provider", PROVIDER_SQL, [T, T]), [tenant, name])
    if not rows:
        raise Fail(OAUTH_PROVIDER_NOT_FOUND, "OAuth provider %s is not registered in tenant %s"
                   % (validate.show(name), tenant),
                   hint="Register it with register_provider (hush oauth provider add).")
    return rows[0]


def _key_ids(*rows: dict) -> list:
    """The root keys that open these rows' sealed parts (checked before a read is recorded)."""
    return [r["key_id"] for r in rows if r["ciphertext"] is not None]


def _provider_secret(plpy: Any, GD: dict, tenant: str, name: str, row: dict) -> Any:
    if row["ciphertext"] is None:
        return None
    return _open(plpy, GD, CLIENT_SECRET, tenant, row, "the client secret of OAuth provider %r" % name).decode()


@api
def save_provider(plpy: Any, GD: dict, tenant: str, name: Any, config: Any, client_secret: Any) -> dict:
    """Register a provider, or replace its configuration and client secret."""
    validate.tenant(tenant)
    name = validate.name(name, "provider name")
    conf = _json_object(config, "config", MAX_CONFIG_BYTES)
    if not isinstance(conf.get("client_id"), str) or not conf["client_id"]:
        raise Fail(INVALID_ARGUMENT, "config must name a client_id")
    return privileged.call(plpy, OWNER, _save_provider, GD, tenant, name, config, client_secret)


@privileged.step(OWNER)
def _save_provider(plpy: Any, caller: str, GD: dict, tenant: str, name: str, config: str, client_secret: Any) -> dict:
    ctx = access.enter(plpy, caller, tenant, write=True)
    old = plpy.execute(plan(plpy, "oauth.provider", PROVIDER_SQL, [T, T]), [tenant, name])
    row_id = str(old[0]["id"]) if old else str(uuid.uuid4())
    generation = old[0]["generation"] + 1 if old else 1
    sealed: tuple[Any, Any, Any] = (None, None, None)
    if client_secret is not None:
        secret = validate.value(client_secret, ctx["max_value_bytes"])
        sealed = _seal(active_key(plpy, GD, ctx), CLIENT_SECRET, tenant, row_id, generation, secret)
    if old:
        p = plan(plpy, "oauth.provider_update", PROVIDER_UPDATE_SQL, [T, T, I4, J, T, B, B])
        rows = plpy.execute(p, [tenant, name, generation, config, *sealed])
    else:
        p = plan(plpy, "oauth.provider_insert", PROVIDER_INSERT_SQL, [T, T, U, J, T, B, B, NM])
        rows = plpy.execute(p, [tenant, name, row_id, config, *sealed, ctx["caller"]])
    if not rows:
        raise Fail(INVALID_ARGUMENT, "OAuth provider %r of tenant %s was changed by another call meanwhile"
                   % (name, tenant), hint="Retry.")
    _record(plpy, ctx, tenant, "oauth_provider_save", row_id, name, generation)
    return {"name": name, "created": not old, "generation": generation}


@api
def providers(plpy: Any, tenant: str) -> list:
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _providers, tenant)


@privileged.step(OWNER)
def _providers(plpy: Any, caller: str, tenant: str) -> list:
    access.enter(plpy, caller, tenant)
    return list(plpy.execute(plan(plpy, "oauth.providers", PROVIDERS_SQL, [T]), [tenant]))


@api
def provider(plpy: Any, GD: dict, tenant: str, name: Any) -> dict:
    """A provider's configuration and client secret (audited as a read)."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _provider, GD, tenant, validate.name(name, "provider name"))


@privileged.step(OWNER)
def _provider(plpy: Any, caller: str, GD: dict, tenant: str, name: str) -> dict:
    ctx = access.enter(plpy, caller, tenant)
    row = _provider_row(plpy, tenant, name)
    if ctx["audit_reads"] and row["ciphertext"] is not None:
        audit.record_reads(plpy, GD, caller, tenant, [(row["id"], name, row["generation"])], [row["key_id"]],
                           action="oauth_client_secret_read")
    secret = _provider_secret(plpy, GD, tenant, name, row)
    return {"name": name, "config": row["config"], "client_secret": secret}


@api
def remove_provider(plpy: Any, tenant: str, name: Any) -> bool:
    """Remove a provider with its pending authorizations and connections (no revocation)."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _remove_provider, tenant, validate.name(name, "provider name"))


@privileged.step(OWNER)
def _remove_provider(plpy: Any, caller: str, tenant: str, name: str) -> bool:
    ctx = access.enter(plpy, caller, tenant)
    rows = plpy.execute(plan(plpy, "oauth.provider_delete", PROVIDER_DELETE_SQL, [T, T]), [tenant, name])
    if rows:
        _record(plpy, ctx, tenant, "oauth_provider_remove", rows[0]["id"], name)
    return bool(rows)


# -- authorization code: begin and callback ------------------------------------------------

PENDING_PURGE_SQL = f"""
DELETE FROM hush.oauth_pending p WHERE p.tenant_id {EQ} $1 AND p.expires_at {LE} pg_catalog.now()
"""
PENDING_INSERT_SQL = """
INSERT INTO hush.oauth_pending (tenant_id, state_hash, id, provider, account, redirect_uri, scopes, key_id,
                                wrapped_dek, ciphertext, expires_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
        pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $11), $12)
RETURNING expires_at
"""
# The row policy by_state shows this one row whatever its tenant; deleting it
# is what makes a state single-use.
PENDING_TAKE_SQL = f"""
DELETE FROM hush.oauth_pending p WHERE p.state_hash {EQ} $1
RETURNING p.tenant_id, p.id, p.generation, p.provider, p.account, p.redirect_uri, p.scopes, p.key_id,
          p.wrapped_dek, p.ciphertext, p.expires_at {LE} pg_catalog.now() AS expired
"""
SET_STATE_SQL = "SELECT pg_catalog.set_config('hush.oauth_state', $1, true)"


def _state_hash(state: Any) -> bytes:
    if not isinstance(state, str) or not 16 <= len(state) <= 512:
        raise Fail(OAUTH_STATE_INVALID, "an OAuth state is 16 to 512 characters")
    return hashlib.sha256(state.encode()).digest()


@api
def begin(plpy: Any, GD: dict, tenant: str, provider_name: Any, state: Any, code_verifier: Any, nonce: Any,
          redirect_uri: Any, scopes: Any, account: Any, ttl_seconds: Any) -> Any:
    """Store a pending authorization: the state's hash, the sealed PKCE verifier and nonce."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    digest = _state_hash(state)
    if account is not None:
        validate.name(account, "account")
    if not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= 86400:
        raise Fail(INVALID_ARGUMENT, "ttl_seconds must be between 1 and 86400")
    return privileged.call(plpy, OWNER, _begin, GD, tenant, provider_name, digest, code_verifier, nonce, redirect_uri,
                           scopes, account, ttl_seconds)


@privileged.step(OWNER)
def _begin(plpy: Any, caller: str, GD: dict, tenant: str, provider_name: str, digest: bytes, code_verifier: Any,
           nonce: Any, redirect_uri: Any, scopes: Any, account: Any, ttl_seconds: int) -> Any:
    ctx = access.enter(plpy, caller, tenant, write=True)
    _provider_row(plpy, tenant, provider_name)
    plpy.execute(plan(plpy, "oauth.pending_purge", PENDING_PURGE_SQL, [T]), [tenant])
    row_id = str(uuid.uuid4())
    plain = json.dumps({"code_verifier": code_verifier, "nonce": nonce}).encode()
    sealed = _seal(active_key(plpy, GD, ctx), PENDING, tenant, row_id, 1, plain)
    p = plan(plpy, "oauth.pending_insert", PENDING_INSERT_SQL, [T, B, U, T, T, T, TA, T, B, B, I4, NM])
    expires = plpy.execute(p, [tenant, digest, row_id, provider_name, account, redirect_uri, list(scopes or []),
                               *sealed, ttl_seconds, ctx["caller"]])[0]["expires_at"]
    _record(plpy, ctx, tenant, "oauth_authorize", row_id, provider_name, account=account)
    return expires


@api
def consume(plpy: Any, GD: dict, state: Any) -> dict:
    """The pending authorization a callback's state names, removed for good, with what the
    code exchange needs. Spans tenants; the caller must be granted the one it belongs to."""
    return privileged.call(plpy, OWNER, _consume, GD, _state_hash(state))


@privileged.step(OWNER)
def _consume(plpy: Any, caller: str, GD: dict, digest: bytes) -> dict:
    plpy.execute(plan(plpy, "oauth.set_state", SET_STATE_SQL, [T]), [digest.hex()])
    rows = plpy.execute(plan(plpy, "oauth.pending_take", PENDING_TAKE_SQL, [B]), [digest])
    plpy.execute(plan(plpy, "oauth.set_state", SET_STATE_SQL, [T]), [""])
    if not rows:
        raise Fail(OAUTH_STATE_INVALID, "this OAuth state is unknown or was already used",
                   hint="Start the authorization again; a callback can be completed once.")
    row = rows[0]
    tenant = row["tenant_id"]
    try:  # a caller without a grant there gets nothing, and nothing is consumed
        ctx = access.enter(plpy, caller, tenant)
    except Fail as f:
        if f.code != TENANT_ACCESS_DENIED:
            raise
        raise Fail(TENANT_ACCESS_DENIED, "role %s may not complete this OAuth authorization: it was started in a "
                   "tenant the role may not act on" % caller) from None  # nor learn which from the state
    out = {"tenant_id": tenant, "provider": row["provider"], "account": row["account"],
           "redirect_uri": row["redirect_uri"], "scopes": row["scopes"], "expired": row["expired"],
           "code_verifier": None, "nonce": None, "config": None, "client_secret": None}
    if row["expired"]:  # consumed all the same: an expired state is never any good again
        _record(plpy, ctx, tenant, "oauth_callback", row["id"], row["provider"], account=row["account"], expired=True)
        return out
    # The verifier and the client secret leave: recorded apart from the caller's transaction first.
    prov = _provider_row(plpy, tenant, row["provider"])
    audit.record_reads(plpy, GD, caller, tenant, [(row["id"], row["provider"], None, {"account": row["account"]})],
                       _key_ids(row, prov), action="oauth_callback")
    pending = json.loads(_open(plpy, GD, PENDING, tenant, row, "a pending OAuth authorization"))
    out.update(code_verifier=pending["code_verifier"], nonce=pending["nonce"], config=prov["config"],
               client_secret=_provider_secret(plpy, GD, tenant, row["provider"], prov))
    return out


# -- connections ---------------------------------------------------------------------------

CONN_COLS = """c.id, c.generation, c.account, c.grant_type, c.key_id, c.wrapped_dek, c.ciphertext, c.token_type,
       c.scopes, c.expires_at, c.status, c.lease_holder, c.lease_until, c.failures,
       pg_catalog.date_part('epoch', c.expires_at OPERATOR(pg_catalog.-) pg_catalog.now()) AS valid_for"""
CONN_SQL = f"""
SELECT {CONN_COLS} FROM hush.oauth_connections c
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3
"""
CONN_LOCK_SQL = CONN_SQL + " FOR UPDATE"
ACCOUNTS_SQL = f"""
SELECT c.account FROM hush.oauth_connections c WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2
 ORDER BY c.account LIMIT 21
"""
CONN_INSERT_SQL = """
INSERT INTO hush.oauth_connections (tenant_id, provider, account, id, generation, grant_type, key_id, wrapped_dek,
                                    ciphertext, token_type, scopes, expires_at, has_refresh_token, created_by,
                                    refreshed_at)
VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10,
        pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $11), $12, $13, pg_catalog.now())
ON CONFLICT (tenant_id, provider, account) DO NOTHING
RETURNING generation, expires_at
"""
# Every store (a new authorization or a refresh) replaces the sealed tokens,
# moves the generation on, clears any lease, error and needs_reauth.
CONN_UPDATE_SQL = f"""
UPDATE hush.oauth_connections c
   SET generation = $4 OPERATOR(pg_catalog.+) 1, grant_type = $5, key_id = $6, wrapped_dek = $7, ciphertext = $8,
       token_type = $9, scopes = $10,
       expires_at = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $11),
       has_refresh_token = $12, status = 'active', last_error = NULL, last_error_at = NULL,
       lease_holder = NULL, lease_until = NULL, failures = 0, next_attempt_at = NULL,
       refreshed_at = pg_catalog.now(), updated_at = pg_catalog.now()
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $4
RETURNING c.generation, c.expires_at
"""
CLAIM_SQL = f"""
UPDATE hush.oauth_connections c
   SET lease_holder = $4, lease_until = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5)
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $6
   AND c.status {EQ} 'active'
   AND (c.lease_until IS NULL OR c.lease_until {LE} pg_catalog.now() OR c.lease_holder {EQ} $4)
RETURNING {CONN_COLS}
"""
# Without an error: only the lease goes (a worker stopping). With one: the
# failure is counted and the worker backs off until next_attempt_at: the
# provider's Retry-After when it gave one, else 30 s doubling up to an hour.
RELEASE_SQL = f"""
UPDATE hush.oauth_connections c
   SET lease_holder = NULL, lease_until = NULL,
       last_error = COALESCE($6, c.last_error),
       last_error_at = CASE WHEN $6 IS NULL THEN c.last_error_at ELSE pg_catalog.now() END,
       status = CASE WHEN $7 THEN 'needs_reauth' ELSE c.status END,
       failures = CASE WHEN $6 IS NULL THEN c.failures ELSE c.failures OPERATOR(pg_catalog.+) 1 END,
       next_attempt_at = CASE WHEN $6 IS NULL OR $7 THEN c.next_attempt_at
                              ELSE pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => COALESCE(
                                   $8, LEAST(pg_catalog.power(2, LEAST(c.failures, 7)) OPERATOR(pg_catalog.*) 30,
                                             3600))) END,
       updated_at = pg_catalog.now()
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $4
   AND c.lease_holder {EQ} $5
RETURNING c.id, c.failures
"""
# Any role may LISTEN, and NOTIFY, on any channel (PostgreSQL has no privileges on
# channels): hush's notifications carry no payload, only "look again" (an event's id
# would count every tenant's events). Events are announced each (one per failure streak of
# a connection: a listener must not miss one); a store of tokens wakes the worker up with
# the same empty NOTIFY, sent only if the storing transaction commits and once per
# transaction (PostgreSQL folds identical notifications). No pacing here: any role can
# NOTIFY the channel itself, so the worker coalesces wake-ups (one round a second at
# most), and a clock kept here would have to be non-transactional (setval), which a role
# storing and rolling back could keep fresh to silence every tenant's wake-ups.
EVENT_SQL = """
WITH e AS (INSERT INTO hush.oauth_events (tenant_id, provider, account, event, detail)
           VALUES ($1, $2, $3, $4, $5) RETURNING id)
SELECT pg_catalog.pg_notify('hush_oauth_events', '') FROM e
"""
WAKEUP_SQL = "SELECT pg_catalog.pg_notify('hush_oauth_wakeup', '')"
CONNECTIONS_SQL = f"""
SELECT c.provider, c.account, c.grant_type, c.status, c.token_type, c.scopes, c.expires_at, c.has_refresh_token,
       c.last_error, c.last_error_at, c.refreshed_at, c.lease_until, c.created_at, c.updated_at, c.failures,
       c.next_attempt_at
  FROM hush.oauth_connections c
 WHERE c.tenant_id {EQ} $1 AND ($2 IS NULL OR c.provider {EQ} $2)
 ORDER BY c.provider, c.account
"""
CONN_DELETE_SQL = f"""
DELETE FROM hush.oauth_connections c
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 RETURNING c.id
"""


def _account(plpy: Any, tenant: str, provider_name: str, account: Any) -> str:
    """The account named, or the provider's only one; SH072 lists them when there are several."""
    if account is not None:
        return validate.name(account, "account")
    found = [r["account"] for r in plpy.execute(plan(plpy, "oauth.accounts", ACCOUNTS_SQL, [T, T]),
                                                [tenant, provider_name])]
    if len(found) == 1:
        return str(found[0])
    if not found:
        _provider_row(plpy, tenant, provider_name)  # SH070 when the provider itself is missing
        raise Fail(OAUTH_CONNECTION_NOT_FOUND, "no account of tenant %s is connected to OAuth provider %r"
                   % (tenant, provider_name), hint="Authorize one first (start_authorization, hush oauth login).")
    listed = ", ".join(repr(a) for a in found[:20]) + (", ..." if len(found) > 20 else "")
    raise Fail(OAUTH_ACCOUNT_AMBIGUOUS, "tenant %s has several accounts at OAuth provider %r: %s; name one"
               % (tenant, provider_name, listed))


def _connection(plpy: Any, tenant: str, provider_name: str, account: str, lock: bool = False) -> dict:
    key = "oauth.conn_lock" if lock else "oauth.conn"
    rows = plpy.execute(plan(plpy, key, CONN_LOCK_SQL if lock else CONN_SQL, [T, T, T]),
                        [tenant, provider_name, account])
    if not rows:
        _provider_row(plpy, tenant, provider_name)
        raise Fail(OAUTH_CONNECTION_NOT_FOUND, "account %s of tenant %s is not connected to OAuth provider %r"
                   % (validate.show(account), tenant, provider_name))
    return rows[0]


def _tokens(plpy: Any, GD: dict, tenant: str, provider_name: str, row: dict) -> dict:
    return json.loads(_open(plpy, GD, TOKENS, tenant, row, "the tokens of account %r at OAuth provider %r"
                            % (row["account"], provider_name)))


def _token_response(value: Any) -> tuple[dict, dict]:
    """A token endpoint response -> (the sealed part, the clear columns)."""
    tokens = _json_object(value, "tokens", MAX_TOKEN_BYTES)
    if not isinstance(tokens.get("access_token"), str) or not tokens["access_token"]:
        raise Fail(INVALID_ARGUMENT, "tokens must hold an access_token")
    expires_in = tokens.get("expires_in")
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, (int, float))):
        raise Fail(INVALID_ARGUMENT, "expires_in must be a number of seconds")
    scope = tokens.get("scope")
    scopes = scope.split() if isinstance(scope, str) else [str(s) for s in scope] if isinstance(scope, list) else []
    sealed = {k: tokens.get(k) for k in TOKEN_FIELDS if isinstance(tokens.get(k), str)}
    clear = {"token_type": tokens.get("token_type"), "scopes": scopes,
             "expires_in": None if expires_in is None else float(expires_in)}
    return sealed, clear


def _store(plpy: Any, GD: dict, ctx: dict, tenant: str, provider_name: str, account: str, grant_type: str,
           sealed: dict, clear: dict, old: Any) -> dict:
    """Insert or replace the tokens of a connection; `old` is its locked current row or None.
    A response without a refresh token keeps the one stored (providers send it only once)."""
    if old is not None and "refresh_token" not in sealed:
        kept = _tokens(plpy, GD, tenant, provider_name, old).get("refresh_token")
        if kept:
            sealed["refresh_token"] = kept
    if old is not None:  # RFC 6749 5.1: a response without scope was granted the scope asked for, the old one
        clear["scopes"] = clear["scopes"] or list(old["scopes"] or [])
        clear["token_type"] = clear["token_type"] or old["token_type"]
    row_id = str(old["id"]) if old is not None else str(uuid.uuid4())
    generation = old["generation"] + 1 if old is not None else 1
    sealed_cols = _seal(active_key(plpy, GD, ctx), TOKENS, tenant, row_id, generation,
                        json.dumps(sealed).encode())
    common = [grant_type, *sealed_cols, clear["token_type"], clear["scopes"], clear["expires_in"],
              "refresh_token" in sealed]
    if old is None:
        p = plan(plpy, "oauth.conn_insert", CONN_INSERT_SQL, [T, T, T, U, T, T, B, B, T, TA, "pg_catalog.float8",
                                                              BOOL, NM])
        rows = plpy.execute(p, [tenant, provider_name, account, row_id, *common, ctx["caller"]])
    else:
        p = plan(plpy, "oauth.conn_update", CONN_UPDATE_SQL, [T, T, T, I4, T, T, B, B, T, TA, "pg_catalog.float8",
                                                              BOOL])
        rows = plpy.execute(p, [tenant, provider_name, account, old["generation"], *common])
    if not rows:
        raise Fail(OAUTH_LEASE_LOST, "the tokens of account %r at OAuth provider %r (tenant %s) were stored by "
                   "another call meanwhile" % (account, provider_name, tenant), hint="Read the token again.")
    return {"account": account, "generation": rows[0]["generation"], "expires_at": rows[0]["expires_at"],
            "row_id": row_id}


@api
def store_tokens(plpy: Any, GD: dict, tenant: str, provider_name: Any, account: Any, grant_type: Any,
                 tokens: Any) -> dict:
    """Store a token endpoint response as the connection (tenant, provider, account)."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    grant_type = validate.name(grant_type, "grant type")
    sealed, clear = _token_response(tokens)
    return privileged.call(plpy, OWNER, _store_tokens, GD, tenant, provider_name, account, grant_type, sealed, clear)


@privileged.step(OWNER)
def _store_tokens(plpy: Any, caller: str, GD: dict, tenant: str, provider_name: str, account: str, grant_type: str,
                  sealed: dict, clear: dict) -> dict:
    ctx = access.enter(plpy, caller, tenant, write=True)
    _provider_row(plpy, tenant, provider_name)
    rows = plpy.execute(plan(plpy, "oauth.conn_lock", CONN_LOCK_SQL, [T, T, T]), [tenant, provider_name, account])
    out = _store(plpy, GD, ctx, tenant, provider_name, account, grant_type, sealed, clear,
                 rows[0] if rows else None)
    _record(plpy, ctx, tenant, "oauth_token_store", out.pop("row_id"), provider_name, out["generation"], account=account,
            grant_type=grant_type)
    # a worker may need to plan this one's refresh
    plpy.execute(plan(plpy, "oauth.wakeup", WAKEUP_SQL, []))
    return out


def _audited_read(plpy: Any, caller: str, tenant: str, provider_name: Any, account: Any) -> tuple[dict, str, dict]:
    """In a step, the prelude of a token read: checks, the account (named or the only one),
    its row, and the context (whose audit_reads says whether the read is recorded)."""
    ctx = access.enter(plpy, caller, tenant)
    account = _account(plpy, tenant, provider_name, account)
    return ctx, account, _connection(plpy, tenant, provider_name, account)


def _read_access_token(plpy: Any, caller: str, GD: dict, tenant: str, provider_name: str, account: Any,
                       min_valid_seconds: Any = None) -> tuple[dict, str]:
    """In a step: a connection's row and its access token, the read recorded before the token
    is opened; SH074 when it needs re-authorization, SH076 (with min_valid_seconds) when it
    expires too soon: refusals first, so only a token that leaves is recorded."""
    ctx, account, row = _audited_read(plpy, caller, tenant, provider_name, account)
    if row["status"] == "needs_reauth":
        raise Fail(OAUTH_REAUTH_REQUIRED, "account %r of tenant %s at OAuth provider %r must authorize again "
                   "(its refresh token was refused)" % (account, tenant, provider_name),
                   hint="Run the authorization again; connections() shows the last error.")
    if min_valid_seconds is not None and row["valid_for"] is not None and row["valid_for"] <= min_valid_seconds:
        raise Fail(OAUTH_TOKEN_EXPIRING, "the access token of account %r of tenant %s at OAuth provider %r %s"
                   % (row["account"], tenant, provider_name,
                      "expired %d s ago" % -row["valid_for"] if row["valid_for"] < 0 else
                      "expires within %d s" % min_valid_seconds),
                   hint="hush oauth-worker refreshes tokens ahead of expiry; is it running and serving this "
                        "tenant? From Python, access_token() refreshes on demand.")
    if ctx["audit_reads"]:
        audit.record_reads(plpy, GD, caller, tenant,
                           [(row["id"], provider_name, row["generation"], {"account": account})], [row["key_id"]],
                           action="oauth_token_read")
    return row, _tokens(plpy, GD, tenant, provider_name, row)["access_token"]


@api
def token(plpy: Any, GD: dict, tenant: str, provider_name: Any, account: Any) -> dict:
    """The stored access token of a connection with its expiry as the database sees it
    (valid_for, seconds). SH074 when the connection needs re-authorization."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _token, GD, tenant, validate.name(provider_name, "provider name"), account)


@privileged.step(OWNER)
def _token(plpy: Any, caller: str, GD: dict, tenant: str, provider_name: str, account: Any) -> dict:
    row, access_token = _read_access_token(plpy, caller, GD, tenant, provider_name, account)
    return {"account": row["account"], "access_token": access_token, "token_type": row["token_type"],
            "scopes": row["scopes"], "expires_at": row["expires_at"], "valid_for": row["valid_for"],
            "generation": row["generation"], "grant_type": row["grant_type"], "lease_until": row["lease_until"]}


@api
def access_token_sql(plpy: Any, GD: dict, tenant: str, provider_name: Any, account: Any, min_valid_seconds: Any) -> str:
    """For SQL callers: the access token while it stays valid beyond min_valid_seconds, else
    SH076. It never refreshes (no HTTP in the database): the worker does, ahead of time."""
    if not isinstance(min_valid_seconds, int) or not 0 <= min_valid_seconds <= 86400:
        raise Fail(INVALID_ARGUMENT, "min_valid_seconds must be between 0 and 86400")
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _access_token, GD, tenant, validate.name(provider_name, "provider name"),
                           account, min_valid_seconds)


@privileged.step(OWNER)
def _access_token(plpy: Any, caller: str, GD: dict, tenant: str, provider_name: str, account: Any,
                  min_valid_seconds: int) -> str:
    return _read_access_token(plpy, caller, GD, tenant, provider_name, account, min_valid_seconds)[1]


EVENTS_SQL = f"""
SELECT e.id, e.at, e.provider, e.account, e.event, e.detail FROM hush.oauth_events e
 WHERE e.tenant_id {EQ} $1 AND ($2 IS NULL OR e.at OPERATOR(pg_catalog.>=) $2)
 ORDER BY e.id LIMIT $3
"""


@api
def events(plpy: Any, tenant: str, since: Any, max_rows: Any) -> list:
    """A tenant's OAuth events (refresh_failed, needs_reauth, recovered), oldest first."""
    validate.tenant(tenant)
    if not isinstance(max_rows, int) or not 1 <= max_rows <= 10000:
        raise Fail(INVALID_ARGUMENT, "max_rows must be between 1 and 10000")
    return privileged.call(plpy, OWNER, _events, tenant, since, max_rows)


@privileged.step(OWNER)
def _events(plpy: Any, caller: str, tenant: str, since: Any, max_rows: int) -> list:
    access.enter(plpy, caller, tenant)
    rows = [dict(r) for r in plpy.execute(plan(plpy, "oauth.events", EVENTS_SQL, [T, TS, I4]),
                                          [tenant, since, max_rows])]
    if rows:  # the table's ids count every tenant's events: each leaves as an opaque id of its own
        key = audit.cursor_key(plpy)
        for r in rows:
            r["id"] = audit.opaque_id(key, tenant, r["id"])
    return rows


# The tenants a worker serves: those the role it runs as may act on (granted
# directly, through a role whose privileges it has, or '*'; a superuser acting
# as itself serves all). {caller} is the parameter holding that role.
SERVES = may_act("c.tenant_id", "{caller}")
# When a connection falls due: `window` before it expires, or half its lifetime
# before when that is shorter (tokens that live less than twice the window are
# not refreshed round after round); with a keepalive, that long after its last
# refresh. NULL: never (a token without expiry, no keepalive). $1 = window, $2 = keepalive.
DUE_AT = """LEAST(c.expires_at OPERATOR(pg_catalog.-) LEAST(pg_catalog.make_interval(secs => $1),
                    (c.expires_at OPERATOR(pg_catalog.-) COALESCE(c.refreshed_at, c.created_at))
                    OPERATOR(pg_catalog./) 2),
              CASE WHEN $2 IS NOT NULL AND c.has_refresh_token
                   THEN COALESCE(c.refreshed_at, c.created_at)
                        OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $2) END)"""
REFRESHABLE = f"""c.status {EQ} 'active' AND (c.has_refresh_token OR c.grant_type {EQ} 'client_credentials')"""
# Due connections of every tenant the calling worker serves, leased in one
# committed statement (SKIP LOCKED: workers side by side take different rows).
# Run as hush_refresher, whose row policy shows it every tenant's connections:
# SERVES, keyed on the caller the step's ticket names, is what confines it.
WORKER_CLAIM_SQL = f"""
WITH due AS (
  SELECT c.tenant_id, c.provider, c.account FROM hush.oauth_connections c
   WHERE {REFRESHABLE}
     AND (c.lease_until IS NULL OR c.lease_until {LE} pg_catalog.now())
     AND (c.next_attempt_at IS NULL OR c.next_attempt_at {LE} pg_catalog.now())
     AND {DUE_AT} {LE} pg_catalog.now()
     AND {SERVES.format(caller="$6")}
   ORDER BY c.expires_at NULLS LAST
   LIMIT $3
   FOR UPDATE OF c SKIP LOCKED)
UPDATE hush.oauth_connections c
   SET lease_holder = $4,
       lease_until = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5)
  FROM due
 WHERE c.tenant_id {EQ} due.tenant_id AND c.provider {EQ} due.provider AND c.account {EQ} due.account
RETURNING c.tenant_id, c.provider, c.account, c.generation, c.expires_at
"""
# Seconds until the next connection the worker serves falls due (0 when one is
# due now, NULL when none ever will): how long the worker may sleep.
NEXT_DUE_SQL = f"""
SELECT GREATEST(0, pg_catalog.date_part('epoch', pg_catalog.min(d.at) OPERATOR(pg_catalog.-) pg_catalog.now()))
       AS seconds
  FROM (SELECT CASE WHEN {DUE_AT} IS NOT NULL THEN GREATEST({DUE_AT}, c.next_attempt_at, c.lease_until) END AS at
          FROM hush.oauth_connections c
         WHERE {REFRESHABLE} AND {SERVES.format(caller="$3")}) d
"""


def _worker_args(window_seconds: Any, keepalive_seconds: Any) -> None:
    for name, v, optional in (("window_seconds", window_seconds, False),
                              ("keepalive_seconds", keepalive_seconds, True)):
        if (v is not None or not optional) and (not isinstance(v, int) or not 1 <= v <= 31536000):
            raise Fail(INVALID_ARGUMENT, "%s must be between 1 and 31536000" % name)


@api
def worker_next_due(plpy: Any, window_seconds: Any, keepalive_seconds: Any) -> Any:
    """Seconds until a connection the caller serves falls due (0: now; NULL: none will)."""
    _worker_args(window_seconds, keepalive_seconds)
    return privileged.call(plpy, REFRESHER, _worker_next_due, window_seconds, keepalive_seconds)


@privileged.step(REFRESHER)
def _worker_next_due(plpy: Any, caller: str, window_seconds: int, keepalive_seconds: Any) -> Any:
    p = plan(plpy, "oauth.worker_next_due", NEXT_DUE_SQL, [I4, I4, NM])
    return plpy.execute(p, [window_seconds, keepalive_seconds, caller])[0]["seconds"]


@api
def worker_claim(plpy: Any, holder: Any, batch_size: Any, window_seconds: Any, lease_seconds: Any,
                 keepalive_seconds: Any) -> list:
    """Lease up to batch_size connections due for a refresh (expiring within window_seconds, or
    within half their lifetime if that is less; or idle for keepalive_seconds) in the tenants
    the caller serves; no token is read."""
    _lease_args(holder, lease_seconds)
    _worker_args(window_seconds, keepalive_seconds)
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 10000:
        raise Fail(INVALID_ARGUMENT, "batch_size must be between 1 and 10000")
    return privileged.call(plpy, REFRESHER, _worker_claim, holder, batch_size, window_seconds, lease_seconds,
                           keepalive_seconds)


@privileged.step(REFRESHER)
def _worker_claim(plpy: Any, caller: str, holder: str, batch_size: int, window_seconds: int, lease_seconds: Any,
                  keepalive_seconds: Any) -> list:
    p = plan(plpy, "oauth.worker_claim", WORKER_CLAIM_SQL, [I4, I4, I4, T, I4, NM])
    return list(plpy.execute(p, [window_seconds, keepalive_seconds, batch_size, holder, lease_seconds, caller]))


def _lease_args(holder: Any, lease_seconds: Any) -> None:
    if not isinstance(holder, str) or not 1 <= len(holder) <= 200:
        raise Fail(INVALID_ARGUMENT, "a lease holder is 1 to 200 characters")
    if lease_seconds is not None and (not isinstance(lease_seconds, int) or not 1 <= lease_seconds <= 3600):
        raise Fail(INVALID_ARGUMENT, "lease_seconds must be between 1 and 3600")


@api
def claim(plpy: Any, GD: dict, tenant: str, provider_name: Any, account: Any, holder: Any, lease_seconds: Any,
          seen_generation: Any) -> dict:
    """Take the refresh lease of a connection still at seen_generation. Outcomes:
    'claimed' (with the refresh token and the client's secret: refresh now, then finish
    or release), 'fresh' (another call stored new tokens since: read them), 'leased'
    (another call is refreshing: wait, then try again), 'needs_reauth'."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    _lease_args(holder, lease_seconds)
    if not isinstance(seen_generation, int):
        raise Fail(INVALID_ARGUMENT, "seen_generation must be the generation last read")
    return privileged.call(plpy, OWNER, _claim, GD, tenant, provider_name, account, holder, lease_seconds,
                           seen_generation)


@privileged.step(OWNER)
def _claim(plpy: Any, caller: str, GD: dict, tenant: str, provider_name: str, account: str, holder: str,
           lease_seconds: Any, seen_generation: int) -> dict:
    ctx = access.enter(plpy, caller, tenant)
    p = plan(plpy, "oauth.claim", CLAIM_SQL, [T, T, T, T, I4, I4])
    rows = plpy.execute(p, [tenant, provider_name, account, holder, lease_seconds, seen_generation])
    if not rows:
        row = _connection(plpy, tenant, provider_name, account)
        outcome = ("needs_reauth" if row["status"] == "needs_reauth" else
                   "fresh" if row["generation"] != seen_generation else "leased")
        return {"outcome": outcome, "account": account, "generation": row["generation"],
                "lease_until": row["lease_until"], "grant_type": row["grant_type"], "scopes": row["scopes"],
                "refresh_token": None, "config": None, "client_secret": None}
    row = rows[0]
    prov = _provider_row(plpy, tenant, provider_name)
    if ctx["audit_reads"]:  # the refresh token and the client secret leave
        audit.record_reads(plpy, GD, caller, tenant,
                           [(row["id"], provider_name, row["generation"], {"account": account, "holder": holder})],
                           _key_ids(row, prov), action="oauth_refresh_claim")
    refresh_token = _tokens(plpy, GD, tenant, provider_name, row).get("refresh_token")
    return {"outcome": "claimed", "account": account, "generation": row["generation"],
            "lease_until": row["lease_until"], "grant_type": row["grant_type"], "scopes": row["scopes"],
            "refresh_token": refresh_token, "config": prov["config"],
            "client_secret": _provider_secret(plpy, GD, tenant, provider_name, prov)}


@api
def finish(plpy: Any, GD: dict, tenant: str, provider_name: Any, account: Any, holder: Any, generation: Any,
           tokens: Any) -> dict:
    """Store a refresh's response over the generation claimed and free the lease; SH075
    when another call stored tokens since (its result wins)."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    _lease_args(holder, None)
    sealed, clear = _token_response(tokens)
    return privileged.call(plpy, OWNER, _finish, GD, tenant, provider_name, account, holder, generation, sealed, clear)


@privileged.step(OWNER)
def _finish(plpy: Any, caller: str, GD: dict, tenant: str, provider_name: str, account: str, holder: str,
            generation: Any, sealed: dict, clear: dict) -> dict:
    ctx = access.enter(plpy, caller, tenant, write=True)
    row = _connection(plpy, tenant, provider_name, account, lock=True)
    if row["generation"] != generation:
        raise Fail(OAUTH_LEASE_LOST, "the tokens of account %r at OAuth provider %r (tenant %s) were refreshed by "
                   "another call meanwhile" % (account, provider_name, tenant), hint="Read the token again.")
    out = _store(plpy, GD, ctx, tenant, provider_name, account, row["grant_type"], sealed, clear, row)
    _record(plpy, ctx, tenant, "oauth_refresh", out.pop("row_id"), provider_name, out["generation"], account=account,
            holder=holder)
    if row["failures"]:
        _event(plpy, tenant, provider_name, account, "recovered", failures=row["failures"])
    return out


def _error_text(error: Any) -> Any:
    if error is None:
        return None
    return validate.without_controls(str(error))[:MAX_ERROR_CHARS]


def _event(plpy: Any, tenant: str, provider_name: str, account: str, event: str, **detail: Any) -> None:
    p = plan(plpy, "oauth.event", EVENT_SQL, [T, T, T, T, J])
    plpy.execute(p, [tenant, provider_name, account, event,
                     json.dumps({k: v for k, v in detail.items() if v is not None}, sort_keys=True)])


@api
def release(plpy: Any, tenant: str, provider_name: Any, account: Any, holder: Any, generation: Any, error: Any,
            needs_reauth: Any, retry_after: Any) -> bool:
    """Free a lease. With an error (a failed refresh): count it, back off (retry_after seconds
    when the provider said so), mark needs_reauth on invalid_grant, record the event."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    _lease_args(holder, None)
    if retry_after is not None and (not isinstance(retry_after, int) or not 0 <= retry_after <= 86400):
        raise Fail(INVALID_ARGUMENT, "retry_after_seconds must be between 0 and 86400")
    return privileged.call(plpy, OWNER, _release, tenant, provider_name, account, holder, generation, error,
                           needs_reauth, retry_after)


@privileged.step(OWNER)
def _release(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, holder: str, generation: Any,
             error: Any, needs_reauth: Any, retry_after: Any) -> bool:
    ctx = access.enter(plpy, caller, tenant)
    error = _error_text(error)
    reauth = bool(needs_reauth) and error is not None
    p = plan(plpy, "oauth.release", RELEASE_SQL, [T, T, T, I4, T, T, BOOL, I4])
    rows = plpy.execute(p, [tenant, provider_name, account, generation, holder, error, reauth, retry_after])
    if rows and error is not None:
        _record(plpy, ctx, tenant, "oauth_refresh_failed", rows[0]["id"], provider_name, generation, account=account,
                holder=holder, error=error, needs_reauth=reauth or None)
        if reauth:
            _event(plpy, tenant, provider_name, account, "needs_reauth", error=error)
        elif rows[0]["failures"] == 1:  # the first failure of a streak; `recovered` ends it
            _event(plpy, tenant, provider_name, account, "refresh_failed", error=error)
    return bool(rows)


@api
def connections(plpy: Any, tenant: str, provider_name: Any) -> list:
    """Connections with status, expiry, scopes and last error; never a token."""
    validate.tenant(tenant)
    if provider_name is not None:
        validate.name(provider_name, "provider name")
    return privileged.call(plpy, OWNER, _connections, tenant, provider_name)


@privileged.step(OWNER)
def _connections(plpy: Any, caller: str, tenant: str, provider_name: Any) -> list:
    access.enter(plpy, caller, tenant)
    return list(plpy.execute(plan(plpy, "oauth.connections", CONNECTIONS_SQL, [T, T]), [tenant, provider_name]))


@api
def connection_tokens(plpy: Any, GD: dict, tenant: str, provider_name: Any, account: Any) -> dict:
    """Every token of a connection and the client's secret, for revocation (audited)."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _connection_tokens, GD, tenant, validate.name(provider_name, "provider name"),
                           account)


@privileged.step(OWNER)
def _connection_tokens(plpy: Any, caller: str, GD: dict, tenant: str, provider_name: str, account: Any) -> dict:
    ctx, account, row = _audited_read(plpy, caller, tenant, provider_name, account)
    prov = _provider_row(plpy, tenant, provider_name)
    if ctx["audit_reads"]:
        audit.record_reads(plpy, GD, caller, tenant, [(row["id"], provider_name, row["generation"], {"account": account})],
                           _key_ids(row, prov), action="oauth_tokens_read")
    tokens = _tokens(plpy, GD, tenant, provider_name, row)
    return {"account": account, "access_token": tokens.get("access_token"),
            "refresh_token": tokens.get("refresh_token"), "id_token": tokens.get("id_token"),
            "config": prov["config"], "client_secret": _provider_secret(plpy, GD, tenant, provider_name, prov)}


@api
def delete_connection(plpy: Any, tenant: str, provider_name: Any, account: Any) -> bool:
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    return privileged.call(plpy, OWNER, _delete_connection, tenant, provider_name, account)


@privileged.step(OWNER)
def _delete_connection(plpy: Any, caller: str, tenant: str, provider_name: str, account: str) -> bool:
    ctx = access.enter(plpy, caller, tenant)
    rows = plpy.execute(plan(plpy, "oauth.conn_delete", CONN_DELETE_SQL, [T, T, T]), [tenant, provider_name, account])
    if rows:
        _record(plpy, ctx, tenant, "oauth_disconnect", rows[0]["id"], provider_name, account=account)
    return bool(rows)
