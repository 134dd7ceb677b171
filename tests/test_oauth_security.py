"""OAuth state at rest and across tenants: tokens, client secrets and PKCE
verifiers never in clear in the tables, the audit trail or the server log;
a role granted one tenant reaches nothing of another; sealed columns bound
to their row; root key rotation re-seals OAuth rows. Run as non-superusers
(superusers bypass row-level security); the superuser only inspects."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

import hush
from helpers import raises_sqlstate
from oauth_helpers import browser, fresh_server, login, register, stale_login, tenant_oauth, two_accounts
from test_keys import key_id

TABLES = ("oauth_providers", "oauth_pending", "oauth_connections", "audit_log")


def _everything_stored(db: Any) -> str:
    """Every row of the OAuth tables and the audit trail as text, bytea in hex and as raw bytes."""
    parts = []
    for table in TABLES:
        for (row,) in db.sql(f"SELECT t::text FROM hush.{table} t"):
            parts.append(row)
        for (blob,) in db.sql(f"SELECT string_agg(encode(b, 'escape'), ' ') FROM hush.{table} t, "
                              f"LATERAL (SELECT unnest(ARRAY[{_bytea_cols(db, table)}]) AS b) x"):
            parts.append(blob or "")
    return "\n".join(parts)


def _bytea_cols(db: Any, table: str) -> str:
    cols = [c for (c,) in db.sql("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                                 "AND atttypid = 'bytea'::regtype", [f"hush.{table}"])]
    return ", ".join(f"t.{c}" for c in cols) or "NULL::bytea"


def test_no_token_secret_or_verifier_in_clear_anywhere(db: Any, cluster: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        tokens = login(oa)
        refreshed = oa.refresh("idp")
        url, _, binding = oa.start_authorization("idp")  # left pending: its verifier is at rest
        password_tokens = oa.password_grant("idp", "bob", "bob-password")
    assert db.sql("SELECT count(*) FROM hush.oauth_pending") == [(1,)]
    pending_state = url.split("state=")[1].split("&")[0]
    verifier_rows = db.sql("SELECT (hush.oauth_consume(%s, %s)).code_verifier", [pending_state, binding],
                           user="alice")
    values = [tokens.access_token, tokens.refresh_token, tokens.id_token, refreshed.access_token,
              refreshed.refresh_token, password_tokens.access_token, "app-secret", "bob-password",
              verifier_rows[0][0], pending_state, binding]
    assert all(values)
    stored = _everything_stored(db)
    assert "oauth_token_read" in stored and "oauth_refresh" in stored  # the audit trail saw the reads...
    for v in values:
        assert v not in stored  # ...and no value
    db.sql("SELECT pg_sleep(0.2)")  # let the logger flush
    log = cluster.log.read_text(errors="replace")
    assert "hush.oauth_store_tokens" in log  # statements were logged (log_statement = all)...
    for v in values:
        assert v not in log  # ...never with a value


def test_another_tenant_reaches_nothing(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        login(oa)
        url, state, binding = oa.start_authorization("idp")
    callback = browser(url)
    with tenant_oauth(db, user="bob", tenant="acme") as bob_acme:
        for call in (lambda: bob_acme.access_token("idp"), bob_acme.providers, bob_acme.connections,
                     lambda: bob_acme.revoke("idp")):
            with pytest.raises(hush.TenantAccessDenied):
                call()
        # The callback spans tenants by state, but only for a caller granted the tenant that
        # started it: bob's attempt fails and leaves the state usable.
        with pytest.raises(hush.TenantAccessDenied):
            bob_acme.complete_authorization(callback, binding=binding)
    with tenant_oauth(db, user="bob", tenant="globex") as bob:
        assert bob.providers() == [] and bob.connections() == []
        with pytest.raises(hush.OAuthProviderNotFound):
            bob.access_token("idp")
    with tenant_oauth(db) as oa:
        assert oa.complete_authorization(callback, binding=binding).tenant == "acme"
    for user in ("alice", "bob", "rita"):
        for table in TABLES[:3]:
            with db.connect(user) as conn, raises_sqlstate("42501"):
                conn.execute(f"SELECT * FROM hush.{table}")


def test_the_callback_stores_in_the_tenant_that_started_it(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    db.sql("SELECT hush.grant_tenant('alice', 'globex')")
    with tenant_oauth(db, tenant="globex") as globex, tenant_oauth(db, tenant="acme") as acme:
        register(globex, srv)
        url, _, binding = globex.start_authorization("idp")
        # The app's one callback handler happens to hold the acme OAuth object.
        tokens = acme.complete_authorization(browser(url), binding=binding)
        assert tokens.tenant == "globex"
        assert [c.account for c in globex.connections()] == ["sub-alice"] and acme.connections() == []


def test_readers_read_and_refresh_tokens_but_change_nothing_else(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        old = stale_login(oa, srv)
    with tenant_oauth(db, user="rita") as rita:
        assert rita.access_token("idp") != old.access_token  # refreshed, by a reader
        assert srv.token_count("refresh_token") == 1
        for call in (lambda: register(rita, srv, name="mine"), lambda: rita.start_authorization("idp"),
                     lambda: rita.revoke("idp"), lambda: rita.remove_provider("idp")):
            with pytest.raises(hush.PermissionDenied):
                call()


def test_sealed_tokens_are_bound_to_their_row(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        two_accounts(oa, srv)
        # A superuser copies bob's sealed tokens onto alice's row: they do not open there.
        db.sql("""UPDATE hush.oauth_connections a SET key_id = b.key_id, wrapped_dek = b.wrapped_dek,
                         ciphertext = b.ciphertext
                    FROM hush.oauth_connections b WHERE a.account = 'sub-alice' AND b.account = 'sub-bob'""")
        with pytest.raises(hush.DecryptionFailed):
            oa.access_token("idp", "sub-alice")
        # Nor does a provider's sealed client secret moved into a connection.
        db.sql("""UPDATE hush.oauth_connections c SET key_id = p.key_id, wrapped_dek = p.wrapped_dek,
                         ciphertext = p.ciphertext, id = p.id, generation = p.generation
                    FROM hush.oauth_providers p WHERE c.account = 'sub-bob'""")
        with pytest.raises(hush.DecryptionFailed):
            oa.access_token("idp", "sub-bob")


def test_rotation_reseals_oauth_rows(db: Any, cluster: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    old_kid, new_kid = key_id(cluster.key_lines[0]), key_id(cluster.key_lines[1])
    with tenant_oauth(db) as oa:
        register(oa, srv)
        tokens = login(oa)
        oa.start_authorization("idp")
        with db.connect("adam") as adam:
            status = dict(adam.execute("SELECT key_id, data_keys FROM hush.root_key_status()").fetchall())
            assert status[old_kid] == 3  # the client secret, the pending authorization, the tokens
            adam.execute("SELECT hush.add_root_key(%s), hush.activate_root_key(%s)", [new_kid, new_kid])
            adam.execute("CALL hush.rewrap()")
            status = dict(adam.execute("SELECT key_id, data_keys FROM hush.root_key_status()").fetchall())
            assert status == {old_kid: 0, new_kid: 3}
            adam.execute("SELECT hush.retire_root_key(%s)", [old_kid])
        for table in TABLES[:3]:
            assert db.sql(f"SELECT DISTINCT key_id FROM hush.{table}") == [(new_kid,)]
        assert oa.access_token("idp") == tokens.access_token
        assert oa.refresh("idp").access_token != tokens.access_token  # the client secret opens too


def test_a_key_in_use_by_oauth_rows_cannot_be_retired(db: Any, cluster: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    old_kid, new_kid = key_id(cluster.key_lines[0]), key_id(cluster.key_lines[1])
    with tenant_oauth(db) as oa:
        register(oa, srv)
    with db.connect("adam") as adam:
        adam.execute("SELECT hush.add_root_key(%s), hush.activate_root_key(%s)", [new_kid, new_kid])
        with raises_sqlstate("SH032"):
            adam.execute("SELECT hush.retire_root_key(%s)", [old_kid])


def test_token_reads_in_a_read_only_transaction_are_served_and_recorded(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        login(oa)
    reads = "SELECT count(*) FROM hush.audit_log WHERE action = 'oauth_token_read'"
    before = db.sql(reads)[0][0]
    with db.connect("alice", autocommit=False) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        assert conn.execute("SELECT hush.oauth_token('acme', 'idp')").fetchone()[0]
        with raises_sqlstate("SH021"):  # a write is refused there with hush's code, not a raw 25006
            conn.execute("SELECT hush.oauth_disconnect('acme', 'idp', c.account) FROM hush.oauth_connections('acme') c")
        conn.rollback()
    assert db.sql(reads) == [(before + 1,)]


def test_over_a_callers_transaction_token_state_commits_on_its_own(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        old = stale_login(oa, srv)
    with psycopg.connect(db.dsn("alice")) as conn:  # not autocommit: the caller's transaction
        mine = hush.OAuth(conn, "acme")
        new = mine.access_token("idp")
        conn.rollback()  # the caller rolls back: the refresh, committed apart, survives
        mine.close()
    assert new != old.access_token
    with tenant_oauth(db) as oa:
        assert oa.access_token("idp") == new and srv.token_count("refresh_token") == 1
