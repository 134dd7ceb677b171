"""What the refresh-lease tests share (test_oauth_lease.py, test_oauth_reader_refresh.py):
the lease's SQL calls (claim, finish, release) made as a given connection, a connection
stored with stand-in tokens, and its tokens and state read back."""
from __future__ import annotations

import json
from typing import Any

import psycopg

PROVIDER = json.dumps({"client_id": "c", "token_endpoint": "https://idp.example/token"})
FORGED = json.dumps({"access_token": "attacker-token", "refresh_token": "attacker-refresh", "expires_in": 3600})


def claim(conn: psycopg.Connection, holder: str, generation: int = 1, account: str = "user-1",
          tenant: str = "acme", lease_seconds: int = 60) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM hush.oauth_claim_refresh(%s, 'idp', %s, %s, %s, %s)",
                       [tenant, account, holder, lease_seconds, generation])
    return dict(zip([c.name for c in cur.description], cur.fetchone()))


def finish(conn: psycopg.Connection, holder: str, generation: int = 1, account: str = "user-1",
           tenant: str = "acme", tokens: str = FORGED) -> Any:
    return conn.execute("SELECT generation FROM hush.oauth_finish_refresh(%s, 'idp', %s, %s, %s, %s)",
                        [tenant, account, holder, generation, tokens]).fetchone()[0]


def release(conn: psycopg.Connection, holder: str, generation: int = 1, error: str | None = None,
            needs_reauth: bool = False, account: str = "user-1", tenant: str = "acme") -> bool:
    return bool(conn.execute("SELECT hush.oauth_release_refresh(%s, 'idp', %s, %s, %s, %s, %s)",
                             [tenant, account, holder, generation, error, needs_reauth]).fetchone()[0])


def connect_account(db: Any, tenant: str = "acme", user: str = "alice", account: str = "user-1",
                    tokens: dict[str, Any] | None = None) -> None:
    """A provider (unless there) and a connection whose tokens are `tokens` (or stand-ins)."""
    with db.connect(user) as conn:
        if not conn.execute("SELECT 1 FROM hush.oauth_providers(%s) WHERE name = 'idp'", [tenant]).fetchall():
            conn.execute("SELECT hush.oauth_save_provider(%s, 'idp', %s)", [tenant, PROVIDER])
        conn.execute("SELECT hush.oauth_store_tokens(%s, 'idp', %s, 'authorization_code', %s)",
                     [tenant, account, json.dumps(tokens or {"access_token": "at-1", "refresh_token": "rt-1",
                                                             "expires_in": 3600})])


def stored(db: Any, tenant: str = "acme", account: str = "user-1") -> tuple[Any, ...]:
    """The connection's tokens and state, read as a writer of its tenant."""
    user = "alice" if tenant == "acme" else "bob"
    with db.connect(user) as conn:
        tokens = conn.execute("SELECT access_token, refresh_token FROM hush.oauth_connection_tokens(%s, 'idp', %s)",
                              [tenant, account]).fetchone()
        state = conn.execute("SELECT status, failures FROM hush.oauth_connections(%s, 'idp') WHERE account = %s",
                             [tenant, account]).fetchone()
    return (*tokens, *state)
