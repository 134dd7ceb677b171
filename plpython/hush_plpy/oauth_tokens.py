"""A connection's tokens: stored from a token endpoint's response (a new authorization,
or a refresh: oauth_refresh.py, oauth_batch.py), read back (the access token, or every
token for revocation), each read recorded before a token leaves."""
from __future__ import annotations

import json
import uuid

from . import audit, errors, oauth_grants, oauth_response, privileged, validate
from .access import plan
from .errors import (INVALID_ARGUMENT, OAUTH_ACCOUNT_AMBIGUOUS, OAUTH_CONNECTION_NOT_FOUND, OAUTH_LEASE_LOST,
                     OAUTH_REAUTH_REQUIRED, OAUTH_TOKEN_EXPIRING, Fail, api)
from .oauth_base import (ASKED_DONE, B, BOOL, CONN_LOCK_SQL, I4, J, MAX_TOKEN_BYTES, NM, OWNER, TA, TOKENS, U,
                         WAKEUP_SQL, connection_row, json_object, key_ids, open_tokens, provider_row, provider_secret,
                         record, seal)
from .secret_writes import active_key
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

ACCOUNTS_SQL = f"""
SELECT c.account FROM hush.oauth_connections c WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2
 ORDER BY c.account LIMIT 21
"""
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


def _account(plpy: Any, tenant: str, provider_name: str, account: Any) -> str:
    """The account named, or the provider's only one; SH072 lists them when there are several."""
    if account is not None:
        return validate.name(account, "account")
    found = [r["account"] for r in plpy.execute(plan(plpy, "oauth.accounts", ACCOUNTS_SQL, [T, T]),
                                                [tenant, provider_name])]
    if len(found) == 1:
        return str(found[0])
    if not found:
        provider_row(plpy, tenant, provider_name)  # SH070 when the provider itself is missing
        raise Fail(OAUTH_CONNECTION_NOT_FOUND, "no account of tenant %s is connected to OAuth provider %r"
                   % (tenant, provider_name), hint="Authorize one first (start_authorization, hush oauth login).")
    listed = ", ".join(repr(a) for a in found[:20]) + (", ..." if len(found) > 20 else "")
    raise Fail(OAUTH_ACCOUNT_AMBIGUOUS, "tenant %s has several accounts at OAuth provider %r: %s; name one"
               % (tenant, provider_name, listed))


def split_response(value: Any, refresh: bool = False) -> tuple[dict, dict]:
    """A token endpoint response -> (the sealed part, the clear columns), by the one rule of
    oauth_response.py; the scope is split in the step, with the provider's separator. A
    refresh's response is stored even past a limit, what is over it left out
    (oauth_response.token_response): the provider has issued those tokens."""
    if refresh and isinstance(value, str) and MAX_TOKEN_BYTES < len(value) <= errors.MAX_TEXT_CHARS:
        obj = json.loads(value)  # at most what any one text argument may be (errors.check_sizes)
        if isinstance(obj, dict):
            return oauth_response.token_response(obj, refresh=True, limit=MAX_TOKEN_BYTES)
    return oauth_response.token_response(json_object(value, "tokens", MAX_TOKEN_BYTES), refresh)


def store_values(plpy: Any, ctx: dict, tenant: str, provider_name: str, grant_type: str, sealed: dict,
                 clear: dict, old: Any, config: Any, refresh: bool) -> tuple[str, list]:
    """What store writes: the row id and the columns from grant_type on, the tokens sealed
    (`sealed` and `clear` are completed in place). The worker's store of many refreshes at
    once (oauth_batch.py) writes the same."""
    conf = json.loads(config) if isinstance(config, str) else (config or {})  # jsonb arrives as its text
    clear["scopes"] = oauth_response.scopes(clear.pop("scope", None), conf.get("scope_separator"),
                                            clear.get("left_out") if refresh else None)
    if old is not None and ("refresh_token" not in sealed or refresh):
        before = open_tokens(plpy, tenant, provider_name, old)
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
    sealed_cols = seal(active_key(plpy, ctx), TOKENS, tenant, row_id, generation,
                       json.dumps(sealed).encode())
    common = [grant_type, *sealed_cols, clear["token_type"], clear["scopes"], clear["expires_in"],
              "refresh_token" in sealed, json.dumps(clear["fields"])]
    return row_id, common


def store(plpy: Any, ctx: dict, tenant: str, provider_name: str, account: str, grant_type: str,
          sealed: dict, clear: dict, old: Any, config: Any = None, refresh: bool = False) -> dict:
    """Insert or replace the tokens of a connection; `old` is its locked current row or None,
    `config` its provider's. A response without a refresh token keeps the one stored (providers
    send it only once); a refresh's other fields go over the stored ones (oauth_response.merged)."""
    row_id, common = store_values(plpy, ctx, tenant, provider_name, grant_type, sealed, clear, old, config,
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
    sealed, clear = split_response(tokens)
    return privileged.call(plpy, OWNER, _store_tokens, tenant, provider_name, account, grant_type, sealed, clear)


@privileged.step(OWNER)
def _store_tokens(plpy: Any, caller: str, tenant: str, provider_name: str, account: str, grant_type: str,
                  sealed: dict, clear: dict) -> dict:
    ctx = oauth_grants.manage(plpy, caller, tenant, provider_name, write=True)
    config = provider_row(plpy, tenant, provider_name)["config"]
    oauth_response.require_grant(config, grant_type, tenant, provider_name)
    rows = plpy.execute(plan(plpy, "oauth.conn_lock", CONN_LOCK_SQL, [T, T, T]), [tenant, provider_name, account])
    out = store(plpy, ctx, tenant, provider_name, account, grant_type, sealed, clear,
                rows[0] if rows else None, config)
    record(plpy, ctx, tenant, "oauth_token_store", out.pop("row_id"), provider_name, out["generation"], account=account,
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
    return ctx, account, connection_row(plpy, tenant, provider_name, account)


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
    return row, open_tokens(plpy, tenant, provider_name, row)


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


@api
def connection_tokens(plpy: Any, tenant: str, provider_name: Any, account: Any) -> dict:
    """Every token of a connection and the client's secret, for revocation (audited)."""
    validate.tenant(tenant)
    return privileged.call(plpy, OWNER, _connection_tokens, tenant, validate.name(provider_name, "provider name"),
                           account)


@privileged.step(OWNER)
def _connection_tokens(plpy: Any, caller: str, tenant: str, provider_name: str, account: Any) -> dict:
    ctx, account, row = _audited_read(plpy, caller, tenant, provider_name, account, manages=True)
    prov = provider_row(plpy, tenant, provider_name)
    if ctx["audit_reads"]:
        audit.record_reads(plpy, caller, tenant,
                           [(row["id"], provider_name, row["generation"],
                             oauth_grants.granted(ctx, {"account": account}))],
                           key_ids(row, prov), action="oauth_tokens_read")
    tokens = open_tokens(plpy, tenant, provider_name, row)
    return {"account": account, "access_token": tokens.get("access_token"),
            "refresh_token": tokens.get("refresh_token"), "id_token": tokens.get("id_token"),
            "config": prov["config"], "client_secret": provider_secret(plpy, tenant, provider_name, prov)}
