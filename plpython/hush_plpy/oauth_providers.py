"""OAuth providers of a tenant: save one (its config and client secret, sealed), list
them, read one (its client secret: an audited read), remove one. oauth_manage on the
provider's name allows each (oauth_grants.py); a listing keeps what oauth_use or
oauth_manage reaches."""
from __future__ import annotations

import uuid

from . import access, audit, oauth_grants, oauth_response, privileged, validate
from .access import plan
from .errors import INVALID_ARGUMENT, Fail, api
from .oauth_base import (B, CLIENT_SECRET, I4, J, MAX_CLIENT_ID_CHARS, MAX_CLIENT_SECRET_BYTES, MAX_CONFIG_BYTES,
                         MAX_CONFIG_DEPTH, MAX_REDIRECT_URI_CHARS, MAX_REDIRECT_URIS, NM, OWNER, PROVIDER_SQL, U,
                         json_object, provider_row, provider_secret, record, seal)
from .secret_writes import active_key
from .secrets import EQ, T

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a new connection's first call ~4 ms
    from typing import Any

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


@api
def save_provider(plpy: Any, tenant: str, name: Any, config: Any, client_secret: Any) -> dict:
    """Register a provider, or replace its configuration and client secret."""
    validate.tenant(tenant)
    name = validate.name(name, "provider name")
    conf = json_object(config, "config", MAX_CONFIG_BYTES)
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
        sealed = seal(active_key(plpy, ctx), CLIENT_SECRET, tenant, row_id, generation, secret)
    if old:
        p = plan(plpy, "oauth.provider_update", PROVIDER_UPDATE_SQL, [T, T, I4, J, T, B, B])
        rows = plpy.execute(p, [tenant, name, generation, config, *sealed])
    else:
        p = plan(plpy, "oauth.provider_insert", PROVIDER_INSERT_SQL, [T, T, U, J, T, B, B, NM])
        rows = plpy.execute(p, [tenant, name, row_id, config, *sealed, ctx["caller"]])
    if not rows:
        raise Fail(INVALID_ARGUMENT, "OAuth provider %r of tenant %s was changed by another call meanwhile"
                   % (name, tenant), hint="Retry.")
    record(plpy, ctx, tenant, "oauth_provider_save", row_id, name, generation)
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
    row = provider_row(plpy, tenant, name)
    if ctx["audit_reads"] and row["ciphertext"] is not None:
        audit.record_reads(plpy, caller, tenant,
                           [(row["id"], name, row["generation"], oauth_grants.granted(ctx, {}))],
                           [row["key_id"]], action="oauth_client_secret_read")
    secret = provider_secret(plpy, tenant, name, row)
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
        record(plpy, ctx, tenant, "oauth_provider_remove", rows[0]["id"], name)
    return bool(rows)
