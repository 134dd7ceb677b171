"""What the OAuth modules (oauth.py) share: the limits of their inputs, the sealing of
what is secret in a provider, a pending authorization or a connection, the lookups
of a provider's and a connection's rows, their audit rows and notifications.

What is secret (client secrets, PKCE verifiers and nonces, tokens) is sealed like
a secret value (crypto.seal_part), bound to its tenant, row and generation, and
opened only in the OAuth steps.
"""
from __future__ import annotations

import json

from . import audit, crypto, keyring, oauth_grants, privileged, validate
from .access import plan
from .errors import DECRYPTION_FAILED, INVALID_ARGUMENT, OAUTH_CONNECTION_NOT_FOUND, Fail
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
# What one authorization carries (docs/reference.md, "Limits"): the state as before; a PKCE verifier as
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

def seal(key: tuple[str, bytes], part: bytes, tenant: str, row_id: str, generation: int,
         plain: bytes) -> tuple[str, bytes, bytes]:
    kid, root = key
    wrapped, ciphertext = crypto.seal_part(root, kid, part, tenant, row_id, generation, plain)
    return kid, wrapped, ciphertext


def unseal(plpy: Any, part: bytes, tenant: str, row: dict, what: str) -> bytes:
    root = keyring.get(plpy, row["key_id"])
    try:
        return crypto.open_part(root, row["key_id"], part, tenant, str(row["id"]), row["generation"],
                                row["wrapped_dek"], row["ciphertext"])
    except crypto.CryptoError:
        raise Fail(DECRYPTION_FAILED, "%s of tenant %s does not decrypt: its ciphertext or data key does not "
                   "belong to this row (tampered with or copied)" % (what, tenant)) from None


def json_object(value: Any, what: str, limit: int) -> dict:
    if value is None:
        raise Fail(INVALID_ARGUMENT, "%s must not be NULL" % what)
    if len(value) > limit:
        raise Fail(INVALID_ARGUMENT, "%s is %d bytes; the limit is %d" % (what, len(value), limit))
    obj = json.loads(value)  # jsonb arrives as its text; it is valid JSON
    if not isinstance(obj, dict):
        raise Fail(INVALID_ARGUMENT, "%s must be a JSON object" % what)
    return obj


def record(plpy: Any, who: dict, tenant: str, action: str, row_id: Any, provider: str, generation: Any = None,
           **detail: Any) -> None:
    audit.record(plpy, who, tenant, action, secret_id=row_id, secret_name=provider, version=generation,
                 detail=oauth_grants.granted(who, {k: v for k, v in detail.items() if v is not None}) or None)


# -- the rows ------------------------------------------------------------------------

PROVIDER_SQL = f"""
SELECT p.id, p.generation, p.config, p.key_id, p.wrapped_dek, p.ciphertext
  FROM hush.oauth_providers p WHERE p.tenant_id {EQ} $1 AND p.name {EQ} $2
"""
CONN_COLS = """c.id, c.generation, c.account, c.grant_type, c.key_id, c.wrapped_dek, c.ciphertext, c.token_type,
       c.scopes, c.expires_at, c.status, c.lease_holder, c.lease_until, c.failures, c.lease_token_hash,
       c.has_refresh_token, c.fields,
       pg_catalog.date_part('epoch', c.expires_at OPERATOR(pg_catalog.-) pg_catalog.now()) AS valid_for"""
CONN_SQL = f"""
SELECT {CONN_COLS} FROM hush.oauth_connections c
 WHERE c.tenant_id {EQ} $1 AND c.provider {EQ} $2 AND c.account {EQ} $3
"""
CONN_LOCK_SQL = CONN_SQL + " FOR UPDATE"
# A store answers any refresh asked for the connection (oauth_lease.REQUEST_SQL), a disconnect
# makes it moot: its request goes (no foreign key cascades to it: 18_oauth_requests.sql).
ASKED_DONE = f"""WITH asked AS (DELETE FROM hush.oauth_refresh_requests r
                WHERE r.tenant_id {EQ} $1 AND r.provider {EQ} $2 AND r.account {EQ} $3)"""


def provider_row(plpy: Any, tenant: str, name: str) -> dict:
    rows = plpy.execute(plan(plpy, "oauth.provider", PROVIDER_SQL, [T, T]), [tenant, name])
    if not rows:
        raise oauth_grants.absent(tenant, name)
    return rows[0]


def key_ids(*rows: dict) -> list:
    """The root keys that open these rows' sealed parts (checked before a read is recorded)."""
    return [r["key_id"] for r in rows if r["ciphertext"] is not None]


def provider_secret(plpy: Any, tenant: str, name: str, row: dict) -> Any:
    if row["ciphertext"] is None:
        return None
    return unseal(plpy, CLIENT_SECRET, tenant, row, "the client secret of OAuth provider %r" % name).decode()


def connection_row(plpy: Any, tenant: str, provider_name: str, account: str, lock: bool = False) -> dict:
    key = "oauth.conn_lock" if lock else "oauth.conn"
    rows = plpy.execute(plan(plpy, key, CONN_LOCK_SQL if lock else CONN_SQL, [T, T, T]),
                        [tenant, provider_name, account])
    if not rows:
        provider_row(plpy, tenant, provider_name)
        raise Fail(OAUTH_CONNECTION_NOT_FOUND, "account %s of tenant %s is not connected to OAuth provider %r"
                   % (validate.show(account), tenant, provider_name))
    return rows[0]


def open_tokens(plpy: Any, tenant: str, provider_name: str, row: dict) -> dict:
    return json.loads(unseal(plpy, TOKENS, tenant, row, "the tokens of account %r at OAuth provider %r"
                             % (row["account"], provider_name)))


# -- notifications -------------------------------------------------------------------

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


def announce(plpy: Any, tenant: str, provider_name: str, account: str, event: str, **detail: Any) -> None:
    p = plan(plpy, "oauth.event", EVENT_SQL, [T, T, T, T, J])
    plpy.execute(p, [tenant, provider_name, account, event,
                     json.dumps({k: v for k, v in detail.items() if v is not None}, sort_keys=True)])
