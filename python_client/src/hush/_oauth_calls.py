"""The OAuth storage functions (hush.oauth_*) as Calls, like _calls.py: one
statement each, every value a bind parameter (tokens and client secrets never
in query text)."""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

from ._calls import Call, Rows
from ._oauth_models import Connection, OAuthEvent, Provider

LEASE_COLS = ("outcome", "account", "generation", "lease_until", "grant_type", "scopes", "refresh_token", "config",
              "client_secret", "lease_token")
DUE_COLS = ("tenant_id", "provider", "account", "generation", "expires_at", "lease_token")
ACCESS_COLS = ("account", "access_token", "token_type", "scopes", "expires_at", "valid_for", "generation",
               "grant_type", "lease_until", "fields", "secret_fields")
CALLBACK_COLS = ("tenant_id", "provider", "account", "redirect_uri", "scopes", "expired", "code_verifier", "nonce",
                 "config", "client_secret")
STORED_COLS = ("account", "generation", "expires_at", "scopes", "fields", "secret_fields")
CLIENT_COLS = ("name", "config", "client_secret")
TOKENS_COLS = ("account", "access_token", "refresh_token", "id_token", "config", "client_secret")


def _dict(cols: Sequence[str]) -> Callable[[Rows], dict[str, Any]]:
    return lambda rows: {c: rows[0][c] for c in cols}


class LeaseToken(str):
    """A refresh lease's token: the credential finish and release need. A str (it is sent as
    one), whose repr names no value: a lease or a worker's batch printed in a log or a
    traceback does not give the lease away."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LeaseToken(...)"


def _leased(row: Mapping[str, Any], cols: Sequence[str]) -> dict[str, Any]:
    out = {c: row[c] for c in cols}
    if out["lease_token"] is not None:
        out["lease_token"] = LeaseToken(out["lease_token"])
    return out


def _scalar(rows: Rows) -> Any:
    return rows[0]["result"]


def _fn(name: str, args: Mapping[str, str], cols: Sequence[str] | None) -> str:
    # args map to pg_catalog's type names (int4, bool), never to whatever the search_path finds (_calls.py).
    params = ", ".join(f"{k} => CAST(%({k})s AS pg_catalog.{t})" for k, t in args.items())
    if cols is None:
        return f"SELECT hush.{name}({params}) AS result"
    return f"SELECT {', '.join(cols)} FROM hush.{name}({params})"


def save_provider(tenant: str, provider: str, config: Mapping[str, Any], client_secret: str | None) -> Call[Any]:
    return Call(_fn("oauth_save_provider", {"tenant": "text", "provider": "text", "config": "jsonb",
                                            "client_secret": "text"}, ("name", "created", "generation")),
                {"tenant": tenant, "provider": provider, "config": json.dumps(config), "client_secret": client_secret},
                _dict(("name", "created", "generation")))


def providers(tenant: str) -> Call[list[Provider]]:
    return Call("SELECT name, config, has_client_secret, created_at, updated_at "
                "FROM hush.oauth_providers(CAST(%(tenant)s AS pg_catalog.text))",
                {"tenant": tenant}, lambda rows: [Provider.from_row(r) for r in rows], reads_only=True)


def provider(tenant: str, name: str) -> Call[dict[str, Any]]:
    return Call(_fn("oauth_provider", {"tenant": "text", "provider": "text"}, CLIENT_COLS),
                {"tenant": tenant, "provider": name}, _dict(CLIENT_COLS))


def remove_provider(tenant: str, name: str) -> Call[bool]:
    return Call(_fn("oauth_remove_provider", {"tenant": "text", "provider": "text"}, None),
                {"tenant": tenant, "provider": name}, _scalar)


def begin(tenant: str, provider: str, state: str, code_verifier: str | None, nonce: str | None,
          redirect_uri: str | None, scopes: Sequence[str], account: str | None, ttl_seconds: int,
          binding: str) -> Call[Any]:
    return Call(_fn("oauth_begin", {"tenant": "text", "provider": "text", "state": "text", "code_verifier": "text",
                                    "nonce": "text", "redirect_uri": "text", "scopes": "text[]", "account": "text",
                                    "ttl_seconds": "int4", "binding": "text"}, None),
                {"tenant": tenant, "provider": provider, "state": state, "code_verifier": code_verifier,
                 "nonce": nonce, "redirect_uri": redirect_uri, "scopes": list(scopes), "account": account,
                 "ttl_seconds": ttl_seconds, "binding": binding}, _scalar)


def consume(state: str, binding: str | None) -> Call[dict[str, Any]]:
    return Call(_fn("oauth_consume", {"state": "text", "binding": "text"}, CALLBACK_COLS),
                {"state": state, "binding": binding}, _dict(CALLBACK_COLS))


def store_tokens(tenant: str, provider: str, account: str, grant_type: str,
                 tokens: Mapping[str, Any]) -> Call[dict[str, Any]]:
    return Call(_fn("oauth_store_tokens", {"tenant": "text", "provider": "text", "account": "text",
                                           "grant_type": "text", "tokens": "jsonb"}, STORED_COLS),
                {"tenant": tenant, "provider": provider, "account": account, "grant_type": grant_type,
                 "tokens": json.dumps(dict(tokens))}, _dict(STORED_COLS))


def token(tenant: str, provider: str, account: str | None) -> Call[dict[str, Any]]:
    """Reads only; hush.OAuth sends it to the primary all the same where it must see the latest
    tokens (after a refresh, a lost lease, or to reuse client credentials)."""
    return Call(_fn("oauth_token", {"tenant": "text", "provider": "text", "account": "text"}, ACCESS_COLS),
                {"tenant": tenant, "provider": provider, "account": account}, _dict(ACCESS_COLS), reads_only=True)


def claim(tenant: str, provider: str, account: str, holder: str, lease_seconds: int,
          seen_generation: int) -> Call[dict[str, Any]]:
    return Call(_fn("oauth_claim_refresh", {"tenant": "text", "provider": "text", "account": "text",
                                            "holder": "text", "lease_seconds": "int4",
                                            "seen_generation": "int4"}, LEASE_COLS),
                {"tenant": tenant, "provider": provider, "account": account, "holder": holder,
                 "lease_seconds": lease_seconds, "seen_generation": seen_generation},
                lambda rows: _leased(rows[0], LEASE_COLS))


def finish(tenant: str, provider: str, account: str, holder: str, generation: int,
           tokens: Mapping[str, Any]) -> Call[dict[str, Any]]:
    return Call(_fn("oauth_finish_refresh", {"tenant": "text", "provider": "text", "account": "text",
                                             "holder": "text", "generation": "int4", "tokens": "jsonb"},
                    STORED_COLS),
                {"tenant": tenant, "provider": provider, "account": account, "holder": holder,
                 "generation": generation, "tokens": json.dumps(dict(tokens))}, _dict(STORED_COLS))


def release(tenant: str, provider: str, account: str, holder: str, generation: int, error: str | None,
            needs_reauth: bool, retry_after: int | None = None) -> Call[bool]:
    return Call(_fn("oauth_release_refresh", {"tenant": "text", "provider": "text", "account": "text",
                                              "holder": "text", "generation": "int4", "error": "text",
                                              "needs_reauth": "bool", "retry_after_seconds": "int4"}, None),
                {"tenant": tenant, "provider": provider, "account": account, "holder": holder,
                 "generation": generation, "error": error, "needs_reauth": needs_reauth,
                 "retry_after_seconds": retry_after}, _scalar)


def events(tenant: str, since: Any, max_rows: int) -> Call[list[OAuthEvent]]:
    return Call("SELECT id, at, provider, account, event, detail FROM hush.oauth_events("
                "CAST(%(tenant)s AS pg_catalog.text), CAST(%(since)s AS pg_catalog.timestamptz), "
                "CAST(%(max_rows)s AS pg_catalog.int4))",
                {"tenant": tenant, "since": since, "max_rows": max_rows},
                lambda rows: [OAuthEvent.from_row(r) for r in rows], reads_only=True)


def worker_claim(holder: str, batch_size: int, window_seconds: int, lease_seconds: int,
                 keepalive_seconds: int | None) -> Call[list[dict[str, Any]]]:
    """Each row with its own lease_token (a LeaseToken): refresh_leased and release_lease take it."""
    return Call(_fn("oauth_worker_claim", {"holder": "text", "batch_size": "int4", "window_seconds": "int4",
                                           "lease_seconds": "int4", "keepalive_seconds": "int4"}, DUE_COLS),
                {"holder": holder, "batch_size": batch_size, "window_seconds": window_seconds,
                 "lease_seconds": lease_seconds, "keepalive_seconds": keepalive_seconds},
                lambda rows: [_leased(r, DUE_COLS) for r in rows])


class OpenedLease(dict[str, Any]):
    """A lease as oauth_claim_refresh opens one (LEASE_COLS): the refresh token, the
    provider's config and client secret. A dict whose repr names no value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OpenedLease(...)"


OPENED_COLS = ("grant_type", "scopes", "refresh_token", "config", "client_secret")


def _opened(row: Mapping[str, Any]) -> dict[str, Any]:
    out = _leased(row, DUE_COLS)
    out["sqlstate"], out["message"] = row["sqlstate"], row["message"]
    out["lease"] = None if row["sqlstate"] else OpenedLease(
        outcome="claimed", account=row["account"], generation=row["generation"], lease_until=None,
        lease_token=out["lease_token"], **{c: row[c] for c in OPENED_COLS})
    return out


def worker_lease(holder: str, batch_size: int, window_seconds: int, lease_seconds: int,
                 keepalive_seconds: int | None) -> Call[list[dict[str, Any]]]:
    """worker_claim's rows, each with its lease opened (`lease`: an OpenedLease), or None and
    the SQLSTATE and message of why it could not be (its lease then runs out)."""
    return Call(_fn("oauth_worker_lease", {"holder": "text", "batch_size": "int4", "window_seconds": "int4",
                                           "lease_seconds": "int4", "keepalive_seconds": "int4"},
                    DUE_COLS + OPENED_COLS + ("sqlstate", "message")),
                {"holder": holder, "batch_size": batch_size, "window_seconds": window_seconds,
                 "lease_seconds": lease_seconds, "keepalive_seconds": keepalive_seconds},
                lambda rows: [_opened(r) for r in rows])


WORKER_STORED_COLS = ("item", *STORED_COLS, "sqlstate", "message")
# One refresh for worker_finish: tenant, provider, account, lease token, generation, token response.
Refreshed = tuple[str, str, str, str, int, Mapping[str, Any]]


def worker_finish(refreshes: Sequence[Refreshed]) -> Call[list[dict[str, Any]]]:
    """Many finish() at once: a row per refresh, in order, with what was stored, or the
    SQLSTATE and message of its refusal."""
    # The arrays as pg_catalog's types (the client's rule: _calls.py); PostgreSQL takes them as
    # the functions' size-checked domains over those types.
    return Call(f"SELECT {', '.join(WORKER_STORED_COLS)} FROM hush.oauth_worker_finish("
                "tenants => CAST(%(tenants)s AS pg_catalog.text[]), "
                "providers => CAST(%(providers)s AS pg_catalog.text[]), "
                "accounts => CAST(%(accounts)s AS pg_catalog.text[]), "
                "lease_tokens => CAST(%(lease_tokens)s AS pg_catalog.text[]), "
                "generations => CAST(%(generations)s AS pg_catalog.int4[]), "
                "responses => CAST(%(responses)s AS pg_catalog.jsonb[])) ORDER BY item",
                {"tenants": [r[0] for r in refreshes], "providers": [r[1] for r in refreshes],
                 "accounts": [r[2] for r in refreshes], "lease_tokens": [str(r[3]) for r in refreshes],
                 "generations": [r[4] for r in refreshes], "responses": [json.dumps(dict(r[5])) for r in refreshes]},
                lambda rows: [{c: r[c] for c in WORKER_STORED_COLS} for r in rows])


def request_refresh(tenant: str, provider: str, account: str) -> Call[dict[str, Any]]:
    """Ask the worker for a refresh (no token material): the generation it will move on from,
    and whether it was recorded (not within a minute of the last refresh)."""
    return Call(_fn("oauth_request_refresh", {"tenant": "text", "provider": "text", "account": "text"},
                    ("generation", "requested")),
                {"tenant": tenant, "provider": provider, "account": account}, _dict(("generation", "requested")))


def connections(tenant: str, provider: str | None) -> Call[list[Connection]]:
    return Call("SELECT provider, account, grant_type, status, token_type, scopes, expires_at, has_refresh_token, "
                "last_error, last_error_at, refreshed_at, lease_until, created_at, updated_at, failures, "
                "next_attempt_at, fields FROM hush.oauth_connections(CAST(%(tenant)s AS pg_catalog.text), "
                "CAST(%(provider)s AS pg_catalog.text))",
                {"tenant": tenant, "provider": provider}, lambda rows: [Connection.from_row(r) for r in rows],
                reads_only=True)


def connection_tokens(tenant: str, provider: str, account: str | None) -> Call[dict[str, Any]]:
    return Call(_fn("oauth_connection_tokens", {"tenant": "text", "provider": "text", "account": "text"},
                    TOKENS_COLS),
                {"tenant": tenant, "provider": provider, "account": account}, _dict(TOKENS_COLS))


def disconnect(tenant: str, provider: str, account: str) -> Call[bool]:
    return Call(_fn("oauth_disconnect", {"tenant": "text", "provider": "text", "account": "text"}, None),
                {"tenant": tenant, "provider": provider, "account": account}, _scalar)


def worker_next_due(window_seconds: int, keepalive_seconds: int | None) -> Call[float | None]:
    return Call(_fn("oauth_worker_next_due", {"window_seconds": "int4", "keepalive_seconds": "int4"}, None),
                {"window_seconds": window_seconds, "keepalive_seconds": keepalive_seconds}, _scalar)


def notify(channel: str) -> Call[None]:
    """The worker's own probe notification (OAuthWorker.listen): no payload, a channel of its own."""
    return Call("SELECT pg_catalog.pg_notify(CAST(%(channel)s AS pg_catalog.text), '')", {"channel": channel},
                lambda rows: None)


def egress_policy() -> Call[list[tuple[str, bool, bool]]]:
    """The admin's egress policy: (host, allow_http, allow_private) rows (_oauth_egress.py)."""
    return Call("SELECT host, allow_http, allow_private FROM hush.oauth_egress_policy()", {},
                lambda rows: [(r["host"], r["allow_http"], r["allow_private"]) for r in rows], reads_only=True)
