"""A value passed where a tenant or a name goes is never echoed in full.

An API key passed as the tenant by mistake is a well-formed tenant id; a token
passed as the secret's name is a valid name. Errors, hints and the failure log
line show a tenant the caller may not act on, and a name that was not found or
was refused, only by its first 4 characters and its length ('sk_l...' (32
chars)); SH020 reads the same whether or not the tenant exists. A name that
was found (a version conflict on a secret the caller can see) stays named.
The tests run as non-superusers and read the server log back."""
from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

import psycopg
import pytest

import hush
from helpers import raises_sqlstate, save

TAG = "hush-failure "


def masked(x: str) -> str:
    return "%r (%d chars)" % (x[:4] + "...", len(x))


def refused(conn: psycopg.Connection, code: str, sql: str, params: Any = None) -> str:
    """Everything the error carries (message, detail, hint, context), for a call refused with `code`."""
    with raises_sqlstate(code) as ei:
        conn.execute(sql, params)
    d = ei.value.diag
    return " | ".join(x for x in (d.message_primary, d.message_detail, d.message_hint, d.context) if x)


def failures(cluster: Any, app: str, count: int) -> list[dict]:
    found: list[dict] = []
    for _ in range(50):
        found = [json.loads(line.split(TAG, 1)[1]) for line in cluster.log.read_text(errors="replace").splitlines()
                 if TAG in line and f'"application_name": "{app}"' in line]
        if len(found) >= count:
            break
        time.sleep(0.1)
    return found


def test_an_api_key_passed_as_the_tenant_is_masked_in_errors_and_the_log(db: Any, cluster: Any) -> None:
    key = "sk_live_" + secrets.token_hex(12)  # 32 characters, a well-formed tenant id
    app = f"misplaced-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db.dsn("alice") + f" application_name={app}", autocommit=True) as a:
        for sql in ("SELECT hush.get_secret(%s, 'k')", "SELECT hush.save_secret(%s, 'k', 'v')",
                    "SELECT * FROM hush.list_secrets(%s)", "SELECT hush.oauth_provider(%s, 'p')"):
            text = refused(a, "SH020", sql, [key])
            assert f"role alice may not act on tenant {masked(key)}" in text and key not in text
        # Refused before the grant is checked (an empty name): the log line masks the tenant, even
        # alice's own (asking whether she may act on it would time the grant check).
        assert key not in refused(a, "SH001", "SELECT hush.save_secret(%s, '', 'v')", [key])
        refused(a, "SH001", "SELECT hush.save_secret('acme', '', 'v')")
    lines = failures(cluster, app, 6)
    assert [(f["sqlstate"], f["tenant"], f.get("tenant_masked")) for f in lines] == [
        *[("SH020", None, masked(key))] * 4,
        ("SH001", None, masked(key)),
        ("SH001", None, "'acm...' (4 chars)"),
    ]
    assert key not in cluster.log.read_text(errors="replace")


def test_sh020_is_the_same_whether_or_not_the_tenant_exists(db: Any, cluster: Any) -> None:
    def attempt() -> tuple[Any, ...]:
        with psycopg.connect(db.dsn("bob") + f" application_name={app}", autocommit=True) as b:
            with raises_sqlstate("SH020") as ei:
                b.execute("SELECT hush.get_secret('newco', 'k')")
        d = ei.value.diag
        return d.sqlstate, d.message_primary, d.message_detail, d.message_hint

    app = f"sh020-{uuid.uuid4().hex[:8]}"
    before = attempt()
    with db.connect("adam") as adam:
        adam.execute("SELECT hush.configure_tenant('newco', audit_reads => true)")
        adam.execute("SELECT hush.grant_tenant('alice', 'newco')")
    with db.connect("alice") as a:
        save(a, "newco", "k", "v")
    after = attempt()
    assert before == after
    assert before[1] == "hush: role bob may not act on tenant 'newc...' (5 chars)"
    first, second = failures(cluster, app, 2)
    assert first == second and first["tenant"] is None


def test_a_value_passed_as_a_name_is_masked(db: Any, cluster: Any) -> None:
    value = "ghp_" + secrets.token_urlsafe(30)  # a token where the name goes
    app = f"misplaced-{uuid.uuid4().hex[:8]}"
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
        a.execute("SELECT hush.oauth_save_provider('acme', 'prov', %s)",
                  [json.dumps({"client_id": "c", "token_endpoint": "https://idp.example/token"})])
    shown = masked(value)
    cases = [
        ("SH010", "SELECT hush.get_secret('acme', %s)", [value]),
        ("SH010", "SELECT * FROM hush.get_secrets('acme', ARRAY['k', %s])", [value]),
        ("SH010", "SELECT hush.update_secret('acme', %s, 'v')", [value]),
        ("SH013", "SELECT hush.update_secret('acme', %s, 'v', expected_version => 1)", [value]),
        ("SH010", "SELECT hush.delete_secret('acme', %s)", [value]),
        ("SH010", "SELECT hush.restore_secret('acme', %s)", [value]),
        ("SH010", "SELECT hush.destroy_secret('acme', %s)", [value]),
        ("SH010", "SELECT * FROM hush.secret_versions('acme', %s)", [value]),
        ("SH004", "SELECT * FROM hush.save_secrets('acme', ARRAY[%s, %s], ARRAY['a', 'b'])", [value, value]),
        ("SH004", "SELECT hush.save_secret('acme', 'k2', 'v', kind => %s)", [value]),
        ("SH070", "SELECT hush.oauth_provider('acme', %s)", [value]),
        ("SH071", "SELECT * FROM hush.oauth_token('acme', 'prov', %s)", [value]),
    ]
    with psycopg.connect(db.dsn("alice") + f" application_name={app}", autocommit=True) as a:
        for code, sql, params in cases:
            text = refused(a, code, sql, params)
            assert shown in text and value not in text, (sql, text)
        # A name that was found stays named: the caller can see that secret anyway.
        assert "secret 'k' of tenant acme is at version 1" in refused(
            a, "SH013", "SELECT hush.save_secret('acme', 'k', 'v', expected_version => 5)")
    with db.connect("adam") as adam:
        text = refused(adam, "SH004", "SELECT hush.grant_tenant(%s, 'acme')", [value])
        assert shown in text and value not in text
    # The tenant in full once the call passed its grant check; masked when it failed before (save_secrets'
    # duplicate names, an invalid kind, adam's refused role name): never asked again afterwards.
    logged = failures(cluster, app, len(cases) + 1)
    assert {(f["tenant"], f.get("tenant_masked")) for f in logged} <= {("acme", None), (None, "'acm...' (4 chars)")}
    assert [f["tenant"] for f in logged[:8]] == ["acme"] * 8
    assert value not in cluster.log.read_text(errors="replace")


def test_the_client_masks_a_provider_it_did_not_find(db: Any) -> None:
    value = "ya29." + secrets.token_urlsafe(30)
    with hush.connect(db.dsn("alice")) as client:
        with pytest.raises(hush.OAuthProviderNotFound) as ei:
            client.tenant("acme").oauth.provider(value)
    assert masked(value) in str(ei.value) and value not in str(ei.value)
