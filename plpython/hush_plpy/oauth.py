"""OAuth2/OIDC storage: providers, pending authorizations, connections, and the
refresh lease (DESIGN.md section 6).

The database never speaks HTTP: the Python client does, with no transaction
open, and comes here before and after. What is secret (client secrets, PKCE
verifiers and nonces, tokens) is sealed like a secret value (crypto.seal_part)
and opened only in these functions; every opening and every store writes an
audit row (secret_name = the provider, detail.account = the account), never a
value. Single-flight refresh is a lease: claim() takes it in one committed
UPDATE, the client calls the token endpoint, finish() stores the result over
the generation it claimed and frees the lease, release() frees it on failure;
the lease is a credential, a random token only its claimer has (oauth_lease.py).

Every function's work is a privileged step (privileged.py) run as hush_owner
for the caller its ticket names, whose grant access.enter checks (for the
provider's name: oauth_grants.py); the worker's cross-tenant scan runs as
hush_refresher, confined to the connections whose provider that caller may
use (SERVES).
"""
from __future__ import annotations

import hashlib
import json
import uuid

from . import access, audit, crypto, errors, keyring, oauth_lease, privileged, validate
from . import oauth_grants, oauth_response
from .access import plan
from .errors import (DECRYPTION_FAILED, INVALID_ARGUMENT, OAUTH_ACCOUNT_AMBIGUOUS, OAUTH_BINDING_MISMATCH,
                     OAUTH_CONNECTION_NOT_FOUND, OAUTH_LEASE_LOST, OAUTH_REAUTH_REQUIRED,
                     OAUTH_STATE_INVALID, OAUTH_TOKEN_EXPIRING, TENANT_ACCESS_DENIED, Fail, api)
from .secret_writes import active_key
from .secrets import EQ, T

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
# What one authorization carries (README, "Limits"): the state as before; a PKCE verifier as
# RFC 7636 4.1 has it; the browser binding as the client makes it (secrets.token_urlsafe(32),
# 43 characters, or anything as random up to 128 of base64url); a nonce and a redirect URI
# as long as real providers need. A client secret up to 16 KiB: a private key in PEM (an
# RSA 4096 one is ~3.3 KB) for private_key_jwt fits. A provider's config nests at most
# 16 deep, names its client_id in at most 1,024 characters and at most 100 redirect URIs.
MIN_STATE_CHARS, MAX_STATE_CHARS = 16, 512
MIN_VERIFIER_CHARS, MAX_VERIFIER_CHARS = 43, 128
MIN_BINDING_CHARS, MAX_BINDING_CHARS = 43, 128
MAX_NONCE_CHARS = 512
MAX_REDIRECT_URI_CHARS = 2048
MAX_CLIENT_SECRET_BYTES = 16384
MAX_CONFIG_DEPTH = 16
MAX_CLIENT_ID_CHARS = 1024
MAX_REDIRECT_URIS = 100
OWNER, REFRESHER = privileged.OWNER, privileged.REFRESHER


# -- sealing -------------------------------------------------------------------

def _seal(key: tuple[str, bytes], part: bytes, tenant: str, row_id: str, generation: int,
          plain: bytes) -> tuple[str, bytes, bytes]:
    kid, root = key
    wrapped, ciphertext = crypto.seal_part(root, kid, part, tenant, row_id, generation, plain)
    return kid, wrapped, ciphertext


def _open(plpy: Any, part: bytes, tenant: str, row: dict, what: str) -> bytes:
    root = keyring.get(plpy, row["key_id"])
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
                 detail=oauth_grants.granted(who, {k: v for k, v in detail.items() if v is not None}) or None)


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
  FROM hush.oauth_providers p WHERE p.tenant_id {EQ} $1 AND {oauth_grants.visible("$1", "$2", "p.name")}
 ORDER BY p.name
"""
# The refreshes asked for its connections go too (no foreign key cascades to them: 18_oauth_requests.sql).
PROVIDER_DELETE_SQL = f"""
WITH asked AS (DELETE FROM hush.oauth_refresh_requests r WHERE r.tenant_id {EQ} $1 AND r.provider {EQ} $2)
DELETE FROM hush.oauth_providers p WHERE p.tenant_id {EQ} $1 AND p.name {EQ} $2 RETURNING p.id
"""


def _provider_row(plpy: Any, tenant: str, name: str) -> dict:
    rows = plpy.execute(plan(plpy, "oauth.provider", PROVIDER_SQL, [T, T]), [tenant, name])
    if not rows:
        raise oauth_grants.absent(tenant, name)
    return rows[0]


def _key_ids(*rows: dict) -> list:
    """The root keys that open these rows' sealed parts (checked before a read is recorded)."""
    return [r["key_id"] for r in rows if r["ciphertext"] is not None]


def _provider_secret(plpy: Any, tenant: str, name: str, row: dict) -> Any:
    if row["ciphertext"] is None:
        return None
    return _open(plpy, CLIENT_SECRET, tenant, row, "the client secret of OAuth provider %r" % name).decode()


@api
def save_provider(plpy: Any, tenant: str, name: Any, config: Any, client_secret: Any) -> dict:
    """Register a provider, or replace its configuration and client secret."""
    validate.tenant(tenant)
    name = validate.name(name, "provider name")
    conf = _json_object(config, "config", MAX_CONFIG_BYTES)
    if not isinstance(conf.get("client_id"), str) or not conf["client_id"]:
        raise Fail(INVALID_ARGUMENT, "config must name a client_id")
    _provider_limits(conf, client_secret)
    oauth_response.check_config(conf)
    return privileged.call(plpy, OWNER, _save_provider, tenant, name, config, client_secret)


def _provider_limits(conf: dict, client_secret: Any) -> None:
    """The sizes inside a provider's config, and its client secret's (before anything is sealed)."""
    if len(conf["client_id"]) > MAX_CLIENT_ID_CHARS:
        raise Fail(INVALID_ARGUMENT, "config's client_id is %d characters; the limit is %d"
                   % (len(conf["client_id"]), MAX_CLIENT_ID_CHARS))
    uris = conf.get("redirect_uris")
    if uris is not None:
        if not isinstance(uris, list) or len(uris) > MAX_REDIRECT_URIS:
            raise Fail(INVALID_ARGUMENT, "config's redirect_uris must be a list of at most %d URIs" % MAX_REDIRECT_URIS)
        for u in uris:
            validate.uri(u, "a redirect URI of config", MAX_REDIRECT_URI_CHARS)
    # Walked without recursion: whatever reads the config later (the client too) meets no
    # nesting deeper than this.
    todo = [(conf, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise Fail(INVALID_ARGUMENT, "config nests more than %d levels deep" % MAX_CONFIG_DEPTH)
        inner = node.values() if isinstance(node, dict) else node
        todo.extend((v, depth + 1) for v in inner if isinstance(v, (dict, list)))
    if client_secret is not None and (len(client_secret) > MAX_CLIENT_SECRET_BYTES
                                      or len(client_secret.encode("utf-8")) > MAX_CLIENT_SECRET_BYTES):
        raise Fail(INVALID_ARGUMENT, "client_secret is more than %d bytes of UTF-8" % MAX_CLIENT_SECRET_BYTES,
                   hint="A client secret, or a private key in PEM for private_key_jwt, fits in 16 KiB.")


@privileged.step(OWNER)
def _save_provider(plpy: Any, caller: str, tenant: str, name: str, config: str, client_secret: Any) -> dict:
    ctx = oauth_grants.manage(plpy, caller, tenant, name, write=True)
    old = plpy.execute(plan(plpy, "oauth.provider", PROVIDER_SQL, [T, T]), [tenant, name])
    row_id = str(old[0]["id"]) if old else str(uuid.uuid4())
    generation = old[0]["generation"] + 1 if old else 1
    sealed: tuple[Any, Any, Any] = (None, None, None)
    if client_secret is not None:
        secret = validate.value(client_secret, ctx["max_value_bytes"])
        sealed = _seal(active_key(plpy, ctx), CLIENT_SECRET, tenant, row_id, generation, secret)
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
    return list(plpy.execute(plan(plpy, "oauth.providers", PROVIDERS_SQL, [T, NM]), [tenant, caller]))


@api
def provider(plpy: Any, tenant: str, name: Any) -> dict:
    """A provider's configuration and client secret (audited as a read)."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _provider, tenant, validate.name(name, "provider name"))


@privileged.step(OWNER)
def _provider(plpy: Any, caller: str, tenant: str, name: str) -> dict:
    ctx = oauth_grants.manage(plpy, caller, tenant, name)
    row = _provider_row(plpy, tenant, name)
    if ctx["audit_reads"] and row["ciphertext"] is not None:
        audit.record_reads(plpy, caller, tenant,
                           [(row["id"], name, row["generation"], oauth_grants.granted(ctx, {}))],
                           [row["key_id"]], action="oauth_client_secret_read")
    secret = _provider_secret(plpy, tenant, name, row)
    return {"name": name, "config": row["config"], "client_secret": secret}


@api
def remove_provider(plpy: Any, tenant: str, name: Any) -> bool:
    """Remove a provider with its pending authorizations and connections (no revocation)."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _remove_provider, tenant, validate.name(name, "provider name"))


@privileged.step(OWNER)
def _remove_provider(plpy: Any, caller: str, tenant: str, name: str) -> bool:
    ctx = oauth_grants.manage(plpy, caller, tenant, name, audits=True)
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
                                wrapped_dek, ciphertext, expires_at, created_by, binding_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
        pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $11), $12, $13)
RETURNING expires_at
"""
# The row policies by_state_* show this one row whatever its tenant. It is locked and
# checked (grant, browser binding) before it is taken: a callback refused leaves it for
# the browser it belongs to. Deleting it is what makes a state single-use.
PENDING_FIND_SQL = f"""
SELECT p.tenant_id, p.id, p.generation, p.provider, p.account, p.redirect_uri, p.scopes, p.key_id,
       p.wrapped_dek, p.ciphertext, p.binding_hash, p.expires_at {LE} pg_catalog.now() AS expired
  FROM hush.oauth_pending p WHERE p.state_hash {EQ} $1
   FOR UPDATE
"""
PENDING_TAKE_SQL = f"""
DELETE FROM hush.oauth_pending p WHERE p.state_hash {EQ} $1
"""
SET_STATE_SQL = "SELECT pg_catalog.set_config('hush.oauth_state', $1, true)"


def _state_hash(state: Any) -> bytes:
    if not isinstance(state, str) or not MIN_STATE_CHARS <= len(state) <= MAX_STATE_CHARS:
        raise Fail(OAUTH_STATE_INVALID, "an OAuth state is %d to %d characters" % (MIN_STATE_CHARS, MAX_STATE_CHARS))
    return hashlib.sha256(state.encode()).digest()


def _binding_ok(binding: Any) -> bool:
    return validate.token_ok(binding, MIN_BINDING_CHARS, MAX_BINDING_CHARS, validate.BASE64URL)


def _pending_inputs(code_verifier: Any, nonce: Any, redirect_uri: Any, binding: Any) -> None:
    """An authorization's inputs, within their limits (README, "Limits"); none is ever echoed."""
    if code_verifier is not None and not validate.token_ok(code_verifier, MIN_VERIFIER_CHARS, MAX_VERIFIER_CHARS,
                                                           validate.UNRESERVED):
        raise Fail(INVALID_ARGUMENT, "code_verifier is %s; RFC 7636 has it %d to %d characters of A-Z a-z 0-9 - . _ ~"
                   % ("%d characters" % len(code_verifier) if isinstance(code_verifier, str) else
                      validate.show(code_verifier), MIN_VERIFIER_CHARS, MAX_VERIFIER_CHARS))
    if nonce is not None:
        validate.short_text(nonce, "nonce", MAX_NONCE_CHARS)
    if redirect_uri is not None:
        validate.uri(redirect_uri, "redirect_uri", MAX_REDIRECT_URI_CHARS)
    if binding is None:
        raise Fail(INVALID_ARGUMENT, "oauth_begin needs a binding: a random value the app keeps in the user's "
                   "browser session, which the callback must bring back (oauth_consume(state, binding))",
                   hint="E.g. Python's secrets.token_urlsafe(32), in an HttpOnly, Secure, SameSite=Lax cookie.")
    if not _binding_ok(binding):
        raise Fail(INVALID_ARGUMENT, "a binding is %d to %d characters of A-Z a-z 0-9 - _ (base64url), not %s"
                   % (MIN_BINDING_CHARS, MAX_BINDING_CHARS,
                      "%d characters" % len(binding) if isinstance(binding, str) else validate.show(binding)),
                   hint="E.g. Python's secrets.token_urlsafe(32), or 64 hex digits.")


@api
def begin(plpy: Any, tenant: str, provider_name: Any, state: Any, code_verifier: Any, nonce: Any,
          redirect_uri: Any, scopes: Any, account: Any, ttl_seconds: Any, binding: Any) -> Any:
    """Store a pending authorization: the hashes of its state and of the browser binding,
    the sealed PKCE verifier and nonce."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    digest = _state_hash(state)
    if account is not None:
        validate.name(account, "account")
    if not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= 86400:
        raise Fail(INVALID_ARGUMENT, "ttl_seconds must be between 1 and 86400")
    _pending_inputs(code_verifier, nonce, redirect_uri, binding)
    return privileged.call(plpy, OWNER, _begin, tenant, provider_name, digest, code_verifier, nonce, redirect_uri,
                           scopes, account, ttl_seconds, hashlib.sha256(binding.encode()).digest())


@privileged.step(OWNER)
def _begin(plpy: Any, caller: str, tenant: str, provider_name: str, digest: bytes, code_verifier: Any,
           nonce: Any, redirect_uri: Any, scopes: Any, account: Any, ttl_seconds: int, binding_hash: bytes) -> Any:
    ctx = oauth_grants.manage(plpy, caller, tenant, provider_name, write=True)
    _provider_row(plpy, tenant, provider_name)
    plpy.execute(plan(plpy, "oauth.pending_purge", PENDING_PURGE_SQL, [T]), [tenant])
    row_id = str(uuid.uuid4())
    plain = json.dumps({"code_verifier": code_verifier, "nonce": nonce}).encode()
    sealed = _seal(active_key(plpy, ctx), PENDING, tenant, row_id, 1, plain)
    p = plan(plpy, "oauth.pending_insert", PENDING_INSERT_SQL, [T, B, U, T, T, T, TA, T, B, B, I4, NM, B])
    expires = plpy.execute(p, [tenant, digest, row_id, provider_name, account, redirect_uri, list(scopes or []),
                               *sealed, ttl_seconds, ctx["caller"], binding_hash])[0]["expires_at"]
    _record(plpy, ctx, tenant, "oauth_authorize", row_id, provider_name, account=account)
    return expires


@api
def consume(plpy: Any, state: Any, binding: Any) -> dict:
    """The pending authorization a callback's state names, removed for good, with what the
    code exchange needs. Spans tenants; the caller must be granted the one it belongs to,
    and bring the binding of the browser that started it (SH080, and nothing taken, if not:
    login CSRF, where a victim's browser completes an attacker's authorization)."""
    digest = _state_hash(state)
    # A binding of another form can never match: it is not hashed (nor kept) at all.
    presented = hashlib.sha256(binding.encode()).digest() if _binding_ok(binding) else None
    return privileged.call(plpy, OWNER, _consume, digest, presented, binding is None)


def _by_state(plpy: Any, key: str, sql: str, digest: bytes) -> Any:
    """Run sql ($1: the state's hash) with the by_state_* row policies admitting that one row."""
    plpy.execute(plan(plpy, "oauth.set_state", SET_STATE_SQL, [T]), [digest.hex()])
    rows = plpy.execute(plan(plpy, key, sql, [B]), [digest])
    plpy.execute(plan(plpy, "oauth.set_state", SET_STATE_SQL, [T]), [""])
    return rows


@privileged.step(OWNER)
def _consume(plpy: Any, caller: str, digest: bytes, presented: Any, missing: bool) -> dict:
    from hmac import compare_digest  # loaded already: oauth_lease imports it
    rows = _by_state(plpy, "oauth.pending_find", PENDING_FIND_SQL, digest)
    if not rows:
        raise Fail(OAUTH_STATE_INVALID, "this OAuth state is unknown or was already used",
                   hint="Start the authorization again; a callback can be completed once.")
    row = rows[0]
    tenant = row["tenant_id"]
    # Nor a caller whose grants there do not let it manage the authorization's provider: the
    # state stays for a caller who may. The provider is not named: the state told it nothing.
    outside = Fail(TENANT_ACCESS_DENIED, "role %s may not complete this OAuth authorization of tenant %s: its "
                   "provider is outside the role's oauth_manage grants there" % (caller, tenant),
                   hint="hush.effective_access(role, tenant) shows what the role holds.")
    try:  # a caller without a grant there gets nothing, and nothing is consumed
        ctx = oauth_grants.manage(plpy, caller, tenant, row["provider"], missing=outside)
    except Fail as f:
        if f.code != TENANT_ACCESS_DENIED or f is outside:
            raise
        raise Fail(TENANT_ACCESS_DENIED, "role %s may not complete this OAuth authorization: it was started in a "
                   "tenant the role may not act on" % caller) from None  # nor learn which from the state
    if presented is None or not compare_digest(presented, bytes(row["binding_hash"])):
        _refused(plpy, ctx, tenant, row, "binding_missing" if missing else "binding_mismatch")
        raise Fail(OAUTH_BINDING_MISMATCH, "this OAuth callback %s the binding of the browser that started the "
                   "authorization, so it was refused; the authorization stays pending for that browser"
                   % ("does not carry" if missing else "does not match"),
                   hint="Complete a callback with the binding start_authorization returned, as kept in the "
                        "starting browser's session (a cookie): a callback arriving in another browser is "
                        "someone else's authorization (login CSRF).")
    access.still_granted(plpy, ctx)  # taking the authorization is a write
    _by_state(plpy, "oauth.pending_take", PENDING_TAKE_SQL, digest)
    out = {"tenant_id": tenant, "provider": row["provider"], "account": row["account"],
           "redirect_uri": row["redirect_uri"], "scopes": row["scopes"], "expired": row["expired"],
           "code_verifier": None, "nonce": None, "config": None, "client_secret": None}
    if row["expired"]:  # consumed all the same: an expired state is never any good again
        _record(plpy, ctx, tenant, "oauth_callback", row["id"], row["provider"], account=row["account"], expired=True)
        return out
    # The verifier and the client secret leave: recorded apart from the caller's transaction first.
    prov = _provider_row(plpy, tenant, row["provider"])
    audit.record_reads(plpy, caller, tenant,
                       [(row["id"], row["provider"], None, oauth_grants.granted(ctx, {"account": row["account"]}))],
                       _key_ids(row, prov), action="oauth_callback")
    pending = json.loads(_open(plpy, PENDING, tenant, row, "a pending OAuth authorization"))
    out.update(code_verifier=pending["code_verifier"], nonce=pending["nonce"], config=prov["config"],
               client_secret=_provider_secret(plpy, tenant, row["provider"], prov))
    return out


def _refused(plpy: Any, ctx: dict, tenant: str, row: dict, reason: str) -> None:
    """The audit row of a refused callback (never the binding), committed apart from the
    caller's transaction, which the refusal rolls back. Should it not be written (the
    recorder down, the tenant's audit rate reached), the refusal stands all the same: the
    recorder's own log line says why."""
    try:
        audit.record_reads(plpy, ctx["caller"], tenant,
                           [(row["id"], row["provider"], None,
                             oauth_grants.granted(ctx, {"account": row["account"], "refused": reason}))],
                           [], action="oauth_callback_refused")
    except Fail as f:
        plpy.log("hush: the refused OAuth callback of tenant %s could not be recorded (%s)" % (tenant, f.code))


# -- connections ---------------------------------------------------------------------------

CONN_COLS = """c.id, c.generation, c.account, c.grant_type, c.key_id, c.wrapped_dek, c.ciphertext, c.token_type,
       c.scopes, c.expires_at, c.status, c.lease_holder, c.lease_until, c.failures, c.lease_token_hash,
       c.has_refresh_token, c.fields,
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
# A store answers any refresh asked for the connection (oauth_lease.REQUEST_SQL), a disconnect
# makes it moot: its request goes (no foreign key cascades to it: 18_oauth_requests.sql).
ASKED_DONE = f"""WITH asked AS (DELETE FROM hush.oauth_refresh_requests r
                WHERE r.tenant_id {EQ} $1 AND r.provider {EQ} $2 AND r.account {EQ} $3)"""
CONN_INSERT_SQL = f"""{ASKED_DONE}
INSERT INTO hush.oauth_connections (tenant_id, provider, account, id, generation, grant_type, key_id, wrapped_dek,
                                    ciphertext, token_type, scopes, expires_at, has_refresh_token, created_by,
                                    refreshed_at, fields)
VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10,
        pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $11), $12, $14, pg_catalog.now(),
        $13)
ON CONFLICT (tenant_id, provider, account) DO NOTHING
RETURNING generation, expires_at
"""
# Every store (a new authorization or a refresh) replaces the sealed tokens,
# moves the generation on, clears any lease, error and needs_reauth.
CONN_UPDATE_SQL = f"""{ASKED_DONE}
UPDATE hush.oauth_connections c
   SET generation = $4 OPERATOR(pg_catalog.+) 1, grant_type = $5, key_id = $6, wrapped_dek = $7, ciphertext = $8,
       token_type = $9, scopes = $10,
       expires_at = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $11),
       has_refresh_token = $12, fields = $13, status = 'active', last_error = NULL, last_error_at = NULL,
       lease_holder = NULL, lease_until = NULL, lease_token_hash = NULL,
       failures = 0, next_attempt_at = NULL,
       refreshed_at = pg_catalog.now(), updated_at = pg_catalog.now()
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $4
RETURNING c.generation, c.expires_at
"""
# A new lease, under the caller's label ($4) and a new token's hash ($7): only when none is
# held or the one held has run out (whose token this then supersedes). A label is no claim
# to a lease: anyone who reads the audit trail knows it.
CLAIM_SQL = f"""
UPDATE hush.oauth_connections c
   SET lease_holder = $4, lease_until = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5),
       lease_token_hash = $7
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $6
   AND c.status {EQ} 'active'
   AND (c.lease_until IS NULL OR c.lease_until {LE} pg_catalog.now())
RETURNING {CONN_COLS}
"""
# The lease whose token's hash is $4, renewed for its holder (the worker's leases from
# oauth_worker_claim): still current even if it ran out, as long as nobody claimed since.
CLAIM_RENEW_SQL = f"""
UPDATE hush.oauth_connections c
   SET lease_until = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5)
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $6
   AND c.status {EQ} 'active' AND c.lease_token_hash {EQ} $4
RETURNING {CONN_COLS}
"""
# Without an error: only the lease goes (a worker stopping). With one: the
# failure is counted and the worker backs off until next_attempt_at: the
# provider's Retry-After when it gave one, else 30 s doubling up to an hour.
# $9: a reader reported invalid_grant, which only the worker or a writer may
# confirm: the connection is due for the worker at once instead (a refresh asked
# of it: oauth_lease.REQUEST_SQL; a failure since the last refresh makes it due at
# once). $5: the hash of the lease token, which must be the current one.
RELEASE_SQL = f"""
WITH asked AS (INSERT INTO hush.oauth_refresh_requests (tenant_id, provider, account, requested_at)
               SELECT $1, $2, $3, pg_catalog.statement_timestamp() WHERE $9
               ON CONFLICT DO NOTHING)
UPDATE hush.oauth_connections c
   SET lease_holder = NULL, lease_until = NULL, lease_token_hash = NULL,
       last_error = COALESCE($6, c.last_error),
       last_error_at = CASE WHEN $6 IS NULL THEN c.last_error_at ELSE pg_catalog.now() END,
       status = CASE WHEN $7 THEN 'needs_reauth' ELSE c.status END,
       failures = CASE WHEN $6 IS NULL THEN c.failures ELSE c.failures OPERATOR(pg_catalog.+) 1 END,
       next_attempt_at = CASE WHEN $9 THEN pg_catalog.now()
                              WHEN $6 IS NULL OR $7 THEN c.next_attempt_at
                              ELSE pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => COALESCE(
                                   $8, LEAST(pg_catalog.power(2, LEAST(c.failures, 7)) OPERATOR(pg_catalog.*) 30,
                                             3600))) END,
       updated_at = pg_catalog.now()
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3 AND c.generation {EQ} $4
   AND c.lease_token_hash {EQ} $5
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
       c.next_attempt_at, c.fields
  FROM hush.oauth_connections c
 WHERE c.tenant_id {EQ} $1 AND ($2 IS NULL OR c.provider {EQ} $2)
   AND {oauth_grants.visible("$1", "$3", "c.provider")}
 ORDER BY c.provider, c.account
"""
CONN_DELETE_SQL = f"""{ASKED_DONE}
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


def _tokens(plpy: Any, tenant: str, provider_name: str, row: dict) -> dict:
    return json.loads(_open(plpy, TOKENS, tenant, row, "the tokens of account %r at OAuth provider %r"
                            % (row["account"], provider_name)))


def _token_response(value: Any, refresh: bool = False) -> tuple[dict, dict]:
    """A token endpoint response -> (the sealed part, the clear columns), by the one rule of
    oauth_response.py; the scope is split in the step, with the provider's separator. A
    refresh's response is stored even past a limit, what is over it left out
    (oauth_response.token_response): the provider has issued those tokens."""
    if refresh and isinstance(value, str) and MAX_TOKEN_BYTES < len(value) <= errors.MAX_TEXT_CHARS:
        obj = json.loads(value)  # at most what any one text argument may be (errors.check_sizes)
        if isinstance(obj, dict):
            return oauth_response.token_response(obj, refresh=True, limit=MAX_TOKEN_BYTES)
    return oauth_response.token_response(_json_object(value, "tokens", MAX_TOKEN_BYTES), refresh)


def _store_values(plpy: Any, ctx: dict, tenant: str, provider_name: str, grant_type: str, sealed: dict,
                  clear: dict, old: Any, config: Any, refresh: bool) -> tuple[str, list]:
    """What _store writes: the row id and the columns from grant_type on, the tokens sealed
    (`sealed` and `clear` are completed in place). The worker's store of many refreshes at
    once (oauth_batch.py) writes the same."""
    conf = json.loads(config) if isinstance(config, str) else (config or {})  # jsonb arrives as its text
    clear["scopes"] = oauth_response.scopes(clear.pop("scope", None), conf.get("scope_separator"),
                                            clear.get("left_out") if refresh else None)
    if old is not None and ("refresh_token" not in sealed or refresh):
        before = _tokens(plpy, tenant, provider_name, old)
        if "refresh_token" not in sealed and before.get("refresh_token"):
            sealed["refresh_token"] = before["refresh_token"]
        if refresh:
            clear["fields"] = oauth_response.merged(json.loads(old["fields"]), clear["fields"],
                                                    oauth_response.MAX_FIELDS_BYTES)
            secret = oauth_response.merged(before.get("secret_fields"), sealed.get("secret_fields") or {},
                                           oauth_response.MAX_SECRET_FIELDS_BYTES)
            sealed.pop("secret_fields", None)
            if secret:
                sealed["secret_fields"] = secret
    if old is not None:  # RFC 6749 5.1: a response without scope was granted the scope asked for, the old one
        clear["scopes"] = clear["scopes"] or list(old["scopes"] or [])
        clear["token_type"] = clear["token_type"] or old["token_type"]
    row_id = str(old["id"]) if old is not None else str(uuid.uuid4())
    generation = old["generation"] + 1 if old is not None else 1
    sealed_cols = _seal(active_key(plpy, ctx), TOKENS, tenant, row_id, generation,
                        json.dumps(sealed).encode())
    common = [grant_type, *sealed_cols, clear["token_type"], clear["scopes"], clear["expires_in"],
              "refresh_token" in sealed, json.dumps(clear["fields"])]
    return row_id, common


def _store(plpy: Any, ctx: dict, tenant: str, provider_name: str, account: str, grant_type: str,
           sealed: dict, clear: dict, old: Any, config: Any = None, refresh: bool = False) -> dict:
    """Insert or replace the tokens of a connection; `old` is its locked current row or None,
    `config` its provider's. A response without a refresh token keeps the one stored (providers
    send it only once); a refresh's other fields go over the stored ones (oauth_response.merged)."""
    row_id, common = _store_values(plpy, ctx, tenant, provider_name, grant_type, sealed, clear, old, config,
                                   refresh)
    if old is None:
        p = plan(plpy, "oauth.conn_insert", CONN_INSERT_SQL, [T, T, T, U, T, T, B, B, T, TA, "pg_catalog.float8",
                                                              BOOL, J, NM])
        rows = plpy.execute(p, [tenant, provider_name, account, row_id, *common, ctx["caller"]])
    else:
        p = plan(plpy, "oauth.conn_update", CONN_UPDATE_SQL, [T, T, T, I4, T, T, B, B, T, TA, "pg_catalog.float8",
                                                              BOOL, J])
        rows = plpy.execute(p, [tenant, provider_name, account, old["generation"], *common])
    if not rows:
        raise Fail(OAUTH_LEASE_LOST, "the tokens of account %r at OAuth provider %r (tenant %s) were stored by "
                   "another call meanwhile" % (account, provider_name, tenant), hint="Read the token again.")
    return {"account": account, "generation": rows[0]["generation"], "expires_at": rows[0]["expires_at"],
            "scopes": clear["scopes"], "fields": json.dumps(clear["fields"]),
            "secret_fields": json.dumps(sealed.get("secret_fields") or {}), "row_id": row_id}


@api
def store_tokens(plpy: Any, tenant: str, provider_name: Any, account: Any, grant_type: Any,
                 tokens: Any) -> dict:
    """Store a token endpoint response as the connection (tenant, provider, account)."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    grant_type = validate.name(grant_type, "grant type")
    sealed, clear = _token_response(tokens)
    return privileged.call(plpy, OWNER, _store_tokens, tenant, provider_name, account, grant_type, sealed, clear)


@privileged.step(OWNER)
def _store_tokens(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, grant_type: str,
                  sealed: dict, clear: dict) -> dict:
    ctx = oauth_grants.manage(plpy, caller, tenant, provider_name, write=True)
    config = _provider_row(plpy, tenant, provider_name)["config"]
    oauth_response.require_grant(config, grant_type, tenant, provider_name)
    rows = plpy.execute(plan(plpy, "oauth.conn_lock", CONN_LOCK_SQL, [T, T, T]), [tenant, provider_name, account])
    out = _store(plpy, ctx, tenant, provider_name, account, grant_type, sealed, clear,
                 rows[0] if rows else None, config)
    _record(plpy, ctx, tenant, "oauth_token_store", out.pop("row_id"), provider_name, out["generation"], account=account,
            grant_type=grant_type)
    # a worker may need to plan this one's refresh
    plpy.execute(plan(plpy, "oauth.wakeup", WAKEUP_SQL, []))
    return out


def _audited_read(plpy: Any, caller: str, tenant: str, provider_name: Any, account: Any,
                  manages: bool = False) -> tuple[dict, str, dict]:
    """In a step, the prelude of a token read: checks (oauth_use, or oauth_manage when it
    `manages`), the account (named or the only one), its row, and the context (whose
    audit_reads says whether the read is recorded)."""
    ctx = (oauth_grants.manage if manages else oauth_grants.use)(plpy, caller, tenant, provider_name)
    account = _account(plpy, tenant, provider_name, account)
    return ctx, account, _connection(plpy, tenant, provider_name, account)


def _read_access_token(plpy: Any, caller: str, tenant: str, provider_name: str, account: Any,
                       min_valid_seconds: Any = None) -> tuple[dict, dict]:
    """In a step: a connection's row and its tokens (opened), the read recorded before the token
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
        audit.record_reads(plpy, caller, tenant,
                           [(row["id"], provider_name, row["generation"],
                             oauth_grants.granted(ctx, {"account": account}))],
                           [row["key_id"]], action="oauth_token_read")
    return row, _tokens(plpy, tenant, provider_name, row)


@api
def token(plpy: Any, tenant: str, provider_name: Any, account: Any) -> dict:
    """The stored access token of a connection with its expiry as the database sees it
    (valid_for, seconds). SH074 when the connection needs re-authorization."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _token, tenant, validate.name(provider_name, "provider name"), account)


@privileged.step(OWNER)
def _token(plpy: Any, caller: str, tenant: str, provider_name: str, account: Any) -> dict:
    row, tokens = _read_access_token(plpy, caller, tenant, provider_name, account)
    return {"account": row["account"], "access_token": tokens["access_token"], "token_type": row["token_type"],
            "scopes": row["scopes"], "expires_at": row["expires_at"], "valid_for": row["valid_for"],
            "generation": row["generation"], "grant_type": row["grant_type"], "lease_until": row["lease_until"],
            "fields": row["fields"], "secret_fields": json.dumps(tokens.get("secret_fields") or {})}


@api
def access_token_sql(plpy: Any, tenant: str, provider_name: Any, account: Any, min_valid_seconds: Any) -> str:
    """For SQL callers: the access token while it stays valid beyond min_valid_seconds, else
    SH076. It never refreshes (no HTTP in the database): the worker does, ahead of time."""
    if not isinstance(min_valid_seconds, int) or not 0 <= min_valid_seconds <= 86400:
        raise Fail(INVALID_ARGUMENT, "min_valid_seconds must be between 0 and 86400")
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _access_token, tenant, validate.name(provider_name, "provider name"),
                           account, min_valid_seconds)


@privileged.step(OWNER)
def _access_token(plpy: Any, caller: str, tenant: str, provider_name: str, account: Any,
                  min_valid_seconds: int) -> str:
    return _read_access_token(plpy, caller, tenant, provider_name, account, min_valid_seconds)[1]["access_token"]


EVENTS_SQL = f"""
SELECT e.id, e.at, e.provider, e.account, e.event, e.detail FROM hush.oauth_events e
 WHERE e.tenant_id {EQ} $1 AND ($2 IS NULL OR e.at OPERATOR(pg_catalog.>=) $2)
   AND {oauth_grants.visible("$1", "$4", "e.provider")}
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
    rows = [dict(r) for r in plpy.execute(plan(plpy, "oauth.events", EVENTS_SQL, [T, TS, I4, NM]),
                                          [tenant, since, max_rows, caller])]
    if rows:  # the table's ids count every tenant's events: each leaves as an opaque id of its own
        key = audit.cursor_key(plpy)
        for r in rows:
            r["id"] = audit.opaque_id(key, tenant, r["id"])
    return rows


# The connections a worker serves: those whose provider the role it runs as may use
# (oauth_use, granted directly, through a role whose privileges it has, or on '*'; a
# superuser acting as itself serves all). {caller} is the parameter holding that role.
SERVES = oauth_grants.SERVES
# When a connection falls due: `window` before it expires, or half its lifetime
# before when that is shorter (tokens that live less than twice the window are
# not refreshed round after round); with a keepalive, that long after its last
# refresh; when someone asked for one (oauth_request_refresh: at once, or once the
# connection's last refresh is a minute old; q is its row of hush.oauth_refresh_requests,
# oauth_lease.REQUESTS_JOIN). NULL: never (a token without expiry, no keepalive, no
# request). $1 = window, $2 = keepalive.
DUE_AT = f"""LEAST(c.expires_at OPERATOR(pg_catalog.-) LEAST(pg_catalog.make_interval(secs => $1),
                    (c.expires_at OPERATOR(pg_catalog.-) COALESCE(c.refreshed_at, c.created_at))
                    OPERATOR(pg_catalog./) 2),
              CASE WHEN $2 IS NOT NULL AND c.has_refresh_token
                   THEN COALESCE(c.refreshed_at, c.created_at)
                        OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $2) END,
              {oauth_lease.REQUESTED_AT})"""
REFRESHABLE = f"""c.status {EQ} 'active' AND (c.has_refresh_token OR c.grant_type {EQ} 'client_credentials')"""
# What the worker may lease now: refreshable, unleased, not backing off, due.
WORKER_DUE = f"""{REFRESHABLE}
     AND (c.lease_until IS NULL OR c.lease_until {LE} pg_catalog.now())
     AND (c.next_attempt_at IS NULL OR c.next_attempt_at {LE} pg_catalog.now())
     AND {DUE_AT} {LE} pg_catalog.now()"""
# Due connections of every tenant the calling worker serves, leased in one
# committed statement (SKIP LOCKED: workers side by side take different rows).
# Fair across tenants: each tenant's due connections are numbered (those a reader
# asked for, oauth_request_refresh, first: it is waiting; then by expiry), and a
# batch takes every tenant's first before anyone's second, so one tenant with
# thousands due (or whose provider never answers) cannot fill every batch. The
# numbering reads the snapshot; the locking scan checks WORKER_DUE again on the
# row it locks (a row another worker leased, or a caller refreshed, meanwhile is
# passed over), and LIMIT counts only rows it could lock.
# Run as hush_refresher, whose row policy shows it every tenant's connections:
# SERVES, keyed on the caller the step's ticket names, is what confines it.
WORKER_CLAIM_SQL = f"""
WITH ranked AS MATERIALIZED (
  SELECT c.tenant_id, c.provider, c.account,
         pg_catalog.row_number() OVER (PARTITION BY c.tenant_id
                                       ORDER BY q.requested_at IS NULL, c.expires_at NULLS LAST,
                                                c.provider, c.account) AS turn
    FROM hush.oauth_connections c {oauth_lease.REQUESTS_JOIN}
   WHERE {WORKER_DUE}
     AND {SERVES.format(caller="$6")}),
due AS (
  SELECT c.tenant_id, c.provider, c.account FROM hush.oauth_connections c
    JOIN ranked r ON c.tenant_id {EQ} r.tenant_id AND c.provider {EQ} r.provider AND c.account {EQ} r.account
    {oauth_lease.REQUESTS_JOIN}
   WHERE {WORKER_DUE}
   ORDER BY r.turn, q.requested_at IS NULL, c.expires_at NULLS LAST
   LIMIT $3
   FOR UPDATE OF c SKIP LOCKED)
UPDATE hush.oauth_connections c
   SET lease_holder = $4,
       lease_until = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $5)
  FROM due
 WHERE c.tenant_id {EQ} due.tenant_id AND c.provider {EQ} due.provider AND c.account {EQ} due.account
RETURNING c.tenant_id, c.provider, c.account, c.generation, c.expires_at
"""
# Each leased row gets a lease token of its own (oauth_lease.py), of which the row keeps the
# hash: a second statement of the same step, every row at once.
WORKER_TOKENS_SQL = f"""
UPDATE hush.oauth_connections c SET lease_token_hash = u.h
  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))
       AS u(t, p, a, h)
 WHERE c.tenant_id {EQ} u.t AND c.provider {EQ} u.p AND c.account {EQ} u.a
"""
# Seconds until the next connection the worker serves falls due (0 when one is
# due now, NULL when none ever will): how long the worker may sleep.
NEXT_DUE_SQL = f"""
SELECT GREATEST(0, pg_catalog.date_part('epoch', pg_catalog.min(d.at) OPERATOR(pg_catalog.-) pg_catalog.now()))
       AS seconds
  FROM (SELECT CASE WHEN {DUE_AT} IS NOT NULL THEN GREATEST({DUE_AT}, c.next_attempt_at, c.lease_until) END AS at
          FROM hush.oauth_connections c {oauth_lease.REQUESTS_JOIN}
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
    the caller serves; no token is read. Each row comes with its lease token."""
    _lease_args(holder, lease_seconds, required=True)
    _worker_args(window_seconds, keepalive_seconds)
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 10000:
        raise Fail(INVALID_ARGUMENT, "batch_size must be between 1 and 10000")
    return privileged.call(plpy, REFRESHER, _worker_claim, holder, batch_size, window_seconds, lease_seconds,
                           keepalive_seconds)


@privileged.step(REFRESHER)
def _worker_claim(plpy: Any, caller: str, holder: str, batch_size: int, window_seconds: int, lease_seconds: Any,
                  keepalive_seconds: Any) -> list:
    # SERVES sees the grants of the statement's snapshot, and the leases it writes take no
    # grant's row: in a snapshot older than a revoke, a revoked worker would lease (and stall)
    # connections it no longer serves. The worker runs each call in a transaction of its own.
    if plpy.execute(plan(plpy, "oauth.isolation", "SELECT %s AS snapshot" % access.SNAPSHOT, []))[0]["snapshot"]:
        raise Fail(INVALID_ARGUMENT, "oauth_worker_claim and oauth_worker_lease run in READ COMMITTED only",
                   hint="Call them in autocommit or in a READ COMMITTED transaction, as hush oauth-worker does.")
    p = plan(plpy, "oauth.worker_claim", WORKER_CLAIM_SQL, [I4, I4, I4, T, I4, NM])
    rows = [dict(r) for r in plpy.execute(p, [window_seconds, keepalive_seconds, batch_size, holder, lease_seconds,
                                              caller])]
    if rows:
        tokens = [oauth_lease.new_token() for _ in rows]
        p = plan(plpy, "oauth.worker_tokens", WORKER_TOKENS_SQL, [TA, TA, TA, "pg_catalog.bytea[]"])
        plpy.execute(p, [[r["tenant_id"] for r in rows], [r["provider"] for r in rows], [r["account"] for r in rows],
                         [h for _, h in tokens]])
        for r, (token, _) in zip(rows, tokens):
            r["lease_token"] = token
    return rows


def _lease_args(holder: Any, lease_seconds: Any, required: bool = False) -> None:
    # the holder may be a lease token: the message never shows it
    if not isinstance(holder, str) or not 1 <= len(holder) <= 200:
        raise Fail(INVALID_ARGUMENT, "a lease holder is 1 to 200 characters")
    if (lease_seconds is not None or required) and (not isinstance(lease_seconds, int)
                                                    or not 1 <= lease_seconds <= 3600):
        raise Fail(INVALID_ARGUMENT, "lease_seconds must be between 1 and 3600")


@api
def claim(plpy: Any, tenant: str, provider_name: Any, account: Any, holder: Any, lease_seconds: Any,
          seen_generation: Any) -> dict:
    """Take the refresh lease of a connection still at seen_generation. Outcomes:
    'claimed' (with the refresh token, the client's secret and the lease token: refresh
    now, then finish or release with the token), 'fresh' (another call stored new tokens
    since: read them), 'leased' (another call is refreshing: wait, then try again),
    'needs_reauth'. `holder` is a label for a new lease, or the token of a lease the caller
    holds (oauth_worker_claim's), which is renewed: SH075 once another claim superseded it."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    _lease_args(holder, lease_seconds, required=True)
    if not isinstance(seen_generation, int):
        raise Fail(INVALID_ARGUMENT, "seen_generation must be the generation last read")
    return privileged.call(plpy, OWNER, _claim, tenant, provider_name, account, holder, lease_seconds,
                           seen_generation)


@privileged.step(OWNER)
def _claim(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, holder: str,
           lease_seconds: Any, seen_generation: int) -> dict:
    ctx = oauth_grants.use(plpy, caller, tenant, provider_name, lease_account=account, audits=True)  # a lease is a write
    if not oauth_lease.rights(plpy, caller, tenant, provider_name, account):
        # Only a reader: a lease long enough for a refresh, not for keeping everyone else off.
        lease_seconds = min(lease_seconds, oauth_lease.READER_LEASE_SECONDS)
    renew = oauth_lease.is_token(holder)
    if renew:
        token, digest = holder, oauth_lease.digest(holder)
        p = plan(plpy, "oauth.claim_renew", CLAIM_RENEW_SQL, [T, T, T, B, I4, I4])
        rows = plpy.execute(p, [tenant, provider_name, account, digest, lease_seconds, seen_generation])
    else:
        token, digest = oauth_lease.new_token()
        p = plan(plpy, "oauth.claim", CLAIM_SQL, [T, T, T, T, I4, I4, B])
        rows = plpy.execute(p, [tenant, provider_name, account, holder, lease_seconds, seen_generation, digest])
    if not rows:
        row = _connection(plpy, tenant, provider_name, account)
        outcome = ("needs_reauth" if row["status"] == "needs_reauth" else
                   "fresh" if row["generation"] != seen_generation else "leased")
        if renew and outcome == "leased":
            raise lease_lost(tenant, provider_name, account)
        return {"outcome": outcome, "account": account, "generation": row["generation"],
                "lease_until": row["lease_until"], "grant_type": row["grant_type"], "scopes": row["scopes"],
                "refresh_token": None, "config": None, "client_secret": None, "lease_token": None}
    row = rows[0]
    prov = _provider_row(plpy, tenant, provider_name)
    if ctx["audit_reads"]:  # the refresh token and the client secret leave; the label, never the token
        audit.record_reads(plpy, caller, tenant,
                           [(row["id"], provider_name, row["generation"],
                             oauth_grants.granted(ctx, {"account": account, "holder": row["lease_holder"]}))],
                           _key_ids(row, prov), action="oauth_refresh_claim")
    refresh_token = _tokens(plpy, tenant, provider_name, row).get("refresh_token")
    return {"outcome": "claimed", "account": account, "generation": row["generation"],
            "lease_until": row["lease_until"], "grant_type": row["grant_type"], "scopes": row["scopes"],
            "refresh_token": refresh_token, "config": prov["config"],
            "client_secret": _provider_secret(plpy, tenant, provider_name, prov), "lease_token": token}


def lease_lost(tenant: str, provider_name: str, account: str) -> Fail:
    # One message whatever went: a wrong token, a superseded one, a generation moved on.
    return Fail(OAUTH_LEASE_LOST, "this call does not hold the refresh lease of account %r at OAuth provider %r "
               "(tenant %s): another call claimed it once it ran out, or stored tokens meanwhile"
               % (account, provider_name, tenant),
               hint="Read the token again; a lease is used with the lease_token its claim returned.")


@api
def finish(plpy: Any, tenant: str, provider_name: Any, account: Any, holder: Any, generation: Any,
           tokens: Any) -> dict:
    """Store a refresh's response over the generation claimed and free the lease (`holder`:
    its token); SH075 when it is not the current lease's (another call stored tokens since,
    or claimed the lease once it ran out: its result wins)."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    _lease_args(holder, None)
    sealed, clear = _token_response(tokens, refresh=True)
    return privileged.call(plpy, OWNER, _finish, tenant, provider_name, account, holder, generation, sealed, clear)


@privileged.step(OWNER)
def _finish(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, holder: str,
            generation: Any, sealed: dict, clear: dict) -> dict:
    ctx = oauth_grants.use(plpy, caller, tenant, provider_name, write=True, lease_account=account)
    oauth_lease.rights(plpy, caller, tenant, provider_name, account)
    row = _connection(plpy, tenant, provider_name, account, lock=True)
    # The current lease's token, even past lease_until: a slow provider's rotated tokens are kept.
    if row["generation"] != generation or not oauth_lease.holds(row, holder):
        raise lease_lost(tenant, provider_name, account)
    config = _provider_row(plpy, tenant, provider_name)["config"]
    out = _store(plpy, ctx, tenant, provider_name, account, row["grant_type"], sealed, clear, row, config,
                 refresh=True)
    # What the response had over a limit and was left out (names, never values): oauth_response.token_response.
    _record(plpy, ctx, tenant, "oauth_refresh", out.pop("row_id"), provider_name, out["generation"], account=account,
            holder=row["lease_holder"], left_out=clear.get("left_out") or None)
    if row["failures"]:
        _event(plpy, tenant, provider_name, account, "recovered", failures=row["failures"])
    return out


def _error_text(error: Any) -> Any:
    """Cut first: nothing else (controls, redaction, a ticket) ever handles more of it."""
    if error is None:
        return None
    return validate.without_controls(str(error)[:MAX_ERROR_CHARS])


def _event(plpy: Any, tenant: str, provider_name: str, account: str, event: str, **detail: Any) -> None:
    p = plan(plpy, "oauth.event", EVENT_SQL, [T, T, T, T, J])
    plpy.execute(p, [tenant, provider_name, account, event,
                     json.dumps({k: v for k, v in detail.items() if v is not None}, sort_keys=True)])


@api
def release(plpy: Any, tenant: str, provider_name: Any, account: Any, holder: Any, generation: Any, error: Any,
            needs_reauth: Any, retry_after: Any) -> bool:
    """Free a lease (`holder`: its token; SH075 if it is not the current one). With an error
    (a failed refresh): count it, back off (retry_after seconds when the provider said so),
    mark needs_reauth on invalid_grant (a reader's report makes the connection due for the
    worker instead), record the event."""
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    _lease_args(holder, None)
    if retry_after is not None and (not isinstance(retry_after, int) or not 0 <= retry_after <= 86400):
        raise Fail(INVALID_ARGUMENT, "retry_after_seconds must be between 0 and 86400")
    error = _error_text(error)
    return privileged.call(plpy, OWNER, _release, tenant, provider_name, account, holder, generation, error,
                           needs_reauth, retry_after)


@privileged.step(OWNER)
def _release(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, holder: str, generation: Any,
             error: Any, needs_reauth: Any, retry_after: Any) -> bool:
    ctx = oauth_grants.use(plpy, caller, tenant, provider_name, lease_account=account, audits=True)
    confirms = oauth_lease.rights(plpy, caller, tenant, provider_name, account)
    row = _connection(plpy, tenant, provider_name, account, lock=True)
    if row["generation"] != generation or not oauth_lease.holds(row, holder):
        raise lease_lost(tenant, provider_name, account)
    asked = bool(needs_reauth) and error is not None
    # A reader's word cannot strand a connection (anyone can say invalid_grant): the worker
    # or a writer confirms with an attempt of its own, which the reader's report brings forward.
    reauth, reported = asked and confirms, asked and not confirms
    if not confirms:  # a reader's Retry-After could keep the worker off for a day: the default backoff
        retry_after = None
    p = plan(plpy, "oauth.release", RELEASE_SQL, [T, T, T, I4, B, T, BOOL, I4, BOOL])
    rows = plpy.execute(p, [tenant, provider_name, account, generation, oauth_lease.digest(holder), error, reauth,
                            retry_after, reported])
    if rows and error is not None:
        _record(plpy, ctx, tenant, "oauth_refresh_failed", rows[0]["id"], provider_name, generation, account=account,
                holder=row["lease_holder"], error=error, needs_reauth=reauth or None,
                reauth_reported=reported or None)
        if reauth:
            _event(plpy, tenant, provider_name, account, "needs_reauth", error=error)
        elif rows[0]["failures"] == 1:  # the first failure of a streak; `recovered` ends it
            _event(plpy, tenant, provider_name, account, "refresh_failed", error=error,
                   reauth_reported=reported or None)
    if reported:  # the worker's attempt, now
        plpy.execute(plan(plpy, "oauth.wakeup", WAKEUP_SQL, []))
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
    return list(plpy.execute(plan(plpy, "oauth.connections", CONNECTIONS_SQL, [T, T, NM]),
                             [tenant, provider_name, caller]))


@api
def connection_tokens(plpy: Any, tenant: str, provider_name: Any, account: Any) -> dict:
    """Every token of a connection and the client's secret, for revocation (audited)."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _connection_tokens, tenant, validate.name(provider_name, "provider name"),
                           account)


@privileged.step(OWNER)
def _connection_tokens(plpy: Any, caller: str, tenant: str, provider_name: str, account: Any) -> dict:
    ctx, account, row = _audited_read(plpy, caller, tenant, provider_name, account, manages=True)
    prov = _provider_row(plpy, tenant, provider_name)
    if ctx["audit_reads"]:
        audit.record_reads(plpy, caller, tenant,
                           [(row["id"], provider_name, row["generation"],
                             oauth_grants.granted(ctx, {"account": account}))],
                           _key_ids(row, prov), action="oauth_tokens_read")
    tokens = _tokens(plpy, tenant, provider_name, row)
    return {"account": account, "access_token": tokens.get("access_token"),
            "refresh_token": tokens.get("refresh_token"), "id_token": tokens.get("id_token"),
            "config": prov["config"], "client_secret": _provider_secret(plpy, tenant, provider_name, prov)}


@api
def delete_connection(plpy: Any, tenant: str, provider_name: Any, account: Any) -> bool:
    validate.tenant(tenant)
    provider_name = validate.name(provider_name, "provider name")
    account = validate.name(account, "account")
    return privileged.call(plpy, OWNER, _delete_connection, tenant, provider_name, account)


@privileged.step(OWNER)
def _delete_connection(plpy: Any, caller: str, tenant: str, provider_name: str, account: str) -> bool:
    ctx = oauth_grants.manage(plpy, caller, tenant, provider_name, audits=True)
    rows = plpy.execute(plan(plpy, "oauth.conn_delete", CONN_DELETE_SQL, [T, T, T]), [tenant, provider_name, account])
    if rows:
        _record(plpy, ctx, tenant, "oauth_disconnect", rows[0]["id"], provider_name, account=account)
    return bool(rows)
