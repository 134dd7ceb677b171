"""The authorization code flow's two ends in the database: begin() keeps a pending
authorization under the hashes of its state and of the browser binding, with the PKCE
verifier and nonce sealed; consume() takes it back once, for a caller that may manage
its provider and brings the binding of the browser that started it."""
from __future__ import annotations

import hashlib
import json
import uuid

from . import access, audit, oauth_grants, privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, OAUTH_BINDING_MISMATCH, OAUTH_STATE_INVALID, TENANT_ACCESS_DENIED, Fail, api
from .oauth_base import (B, I4, LE, MAX_BINDING_CHARS, MAX_NONCE_CHARS, MAX_REDIRECT_URI_CHARS, MAX_STATE_CHARS,
                         MAX_VERIFIER_CHARS, MIN_BINDING_CHARS, MIN_STATE_CHARS, MIN_VERIFIER_CHARS, NM, OWNER,
                         PENDING, TA, U, key_ids, provider_row, provider_secret, record, seal, unseal)
from .secret_writes import active_key
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

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
    """An authorization's inputs, within their limits (docs/reference.md, "Limits"); none is ever echoed."""
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
    provider_row(plpy, tenant, provider_name)
    plpy.execute(plan(plpy, "oauth.pending_purge", PENDING_PURGE_SQL, [T]), [tenant])
    row_id = str(uuid.uuid4())
    plain = json.dumps({"code_verifier": code_verifier, "nonce": nonce}).encode()
    sealed = seal(active_key(plpy, ctx), PENDING, tenant, row_id, 1, plain)
    p = plan(plpy, "oauth.pending_insert", PENDING_INSERT_SQL, [T, B, U, T, T, T, TA, T, B, B, I4, NM, B])
    expires = plpy.execute(p, [tenant, digest, row_id, provider_name, account, redirect_uri, list(scopes or []),
                               *sealed, ttl_seconds, ctx["caller"], binding_hash])[0]["expires_at"]
    record(plpy, ctx, tenant, "oauth_authorize", row_id, provider_name, account=account)
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
        record(plpy, ctx, tenant, "oauth_callback", row["id"], row["provider"], account=row["account"], expired=True)
        return out
    # The verifier and the client secret leave: recorded apart from the caller's transaction first.
    prov = provider_row(plpy, tenant, row["provider"])
    audit.record_reads(plpy, caller, tenant,
                       [(row["id"], row["provider"], None, oauth_grants.granted(ctx, {"account": row["account"]}))],
                       key_ids(row, prov), action="oauth_callback")
    pending = json.loads(unseal(plpy, PENDING, tenant, row, "a pending OAuth authorization"))
    out.update(code_verifier=pending["code_verifier"], nonce=pending["nonce"], config=prov["config"],
               client_secret=provider_secret(plpy, tenant, row["provider"], prov))
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
