"""Login CSRF (RFC 6749 10.12, RFC 9700 4.7): an authorization is bound to the browser that
started it. start_authorization returns a binding the app keeps in that browser's session;
a callback completed with another browser's binding, or none, is refused with SH080 before
anything is consumed (the real owner can still complete it), recorded in the tenant's audit
trail, and the binding itself is in no table, audit row, error or log line. Against the
loopback authorization server; as non-superusers."""
from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import httpx2
import psycopg
import pytest

import hush
from helpers import raises_sqlstate
from oauth_helpers import browser, fresh_server, register, tenant_oauth
from test_cli import HUSH


def _pending(db: Any) -> int:
    return int(db.sql("SELECT count(*) FROM hush.oauth_pending")[0][0])


def _refusals(db: Any) -> list[dict]:
    return [r for (r,) in db.sql("SELECT detail FROM hush.audit_log WHERE action = 'oauth_callback_refused' "
                                 "ORDER BY id")]


def test_a_callback_completed_with_another_browsers_binding_is_refused(db: Any, cluster: Any,
                                                                        oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        # The attacker starts an authorization for its own app account and has the victim's
        # browser follow the URL; the victim's session holds a binding of its own (or none).
        attack = oa.start_authorization("idp", account="attacker-account")
        victims = oa.start_authorization("idp", account="victim-account")
        callback = browser(attack.url)  # the victim signs in at the provider: the victim's code
        with pytest.raises(hush.AuthorizationBindingMismatch) as ei:
            oa.complete_authorization(callback, binding=victims.binding)
        assert ei.value.code == "SH080" and "does not match" in ei.value.message
        assert srv.token_count() == 0 and oa.connections() == []  # no code exchanged, nothing stored
        assert _pending(db) == 2  # nothing consumed
        # The browser that started it completes it afterwards.
        tokens = oa.complete_authorization(callback, binding=attack.binding)
        assert tokens.account == "attacker-account" and srv.token_count("authorization_code") == 1
        assert _pending(db) == 1
    [refused] = _refusals(db)
    assert refused["account"] == "attacker-account" and refused["refused"] == "binding_mismatch"
    assert db.sql("SELECT secret_name, db_role FROM hush.audit_log WHERE action = 'oauth_callback_refused'") == [
        ("idp", "alice")]
    # The binding is in no table, audit row or log line; only its SHA-256 is kept.
    stored = "\n".join(r for (r,) in db.sql("SELECT t::text FROM hush.audit_log t UNION ALL "
                                            "SELECT t::text FROM hush.oauth_pending t"))
    db.sql("SELECT pg_sleep(0.2)")  # let the logger flush
    log = cluster.log.read_text(errors="replace")
    for b in (attack.binding, victims.binding):
        assert b not in stored and b not in log and b not in str(ei.value) and b not in repr(attack)
    assert "oauth_consume" in log  # statements were logged, never with a value


def test_a_callback_without_a_binding_is_refused(db: Any, oauth_server: Any) -> None:
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        request = oa.start_authorization("idp")
        callback = browser(request.url)
        with pytest.raises(hush.AuthorizationBindingMismatch, match="does not carry"):
            oa.complete_authorization(callback, binding=None)  # a browser with no cookie
        # The last character changed (to one it is not: a binding ends in "A" one time in 16).
        other_last = request.binding[:-1] + ("B" if request.binding.endswith("A") else "A")
        for malformed in ("", "x" * 42, request.binding + "+", "é" * 43, other_last):
            with pytest.raises(hush.AuthorizationBindingMismatch):
                oa.complete_authorization(callback, binding=malformed)
        with pytest.raises(TypeError):
            oa.complete_authorization(callback)  # type: ignore[call-arg]  # no default: the app must pass one
        assert srv.token_count() == 0 and _pending(db) == 1
        assert oa.complete_authorization(callback, binding=request.binding).account == "sub-alice"
    assert [d["refused"] for d in _refusals(db)] == ["binding_missing"] + ["binding_mismatch"] * 5


def test_sql_callers_must_bind_too(db: Any) -> None:
    """oauth_begin without a binding (the call of the signature before it) is refused with SH004
    saying what to pass; oauth_consume takes it as a second argument it cannot do without."""
    state, verifier, binding = "s" * 20, "v" * 43, "b" * 43
    with db.connect("alice") as a:
        a.execute("SELECT hush.oauth_save_provider('acme', 'idp', %s)", ['{"client_id": "app"}'])
        with raises_sqlstate("SH004") as ei:
            a.execute("SELECT hush.oauth_begin('acme', 'idp', %s, %s, NULL, 'https://app/cb', '{}')",
                      [state, verifier])
        assert "needs a binding" in str(ei.value) and "cookie" in ei.value.diag.message_hint
        assert _pending(db) == 0
        with raises_sqlstate("42883"):
            a.execute("SELECT * FROM hush.oauth_consume(%s)", [state])
        a.execute("SELECT hush.oauth_begin('acme', 'idp', %s, %s, NULL, 'https://app/cb', '{}', binding => %s)",
                  [state, verifier, binding])
        with raises_sqlstate("SH080"):
            a.execute("SELECT * FROM hush.oauth_consume(%s, %s)", [state, "c" * 43])
        with raises_sqlstate("SH080"):
            a.execute("SELECT * FROM hush.oauth_consume(%s, NULL)", [state])
        # Each refusal left the row as it was, and unlocked.
        assert a.execute("SELECT code_verifier FROM hush.oauth_consume(%s, %s)", [state, binding]).fetchone() == (
            verifier,)
    assert _pending(db) == 0


def test_a_grant_is_checked_before_the_binding(db: Any, oauth_server: Any) -> None:
    """A role not granted the tenant learns nothing of the binding (SH020, as before)."""
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        request = oa.start_authorization("idp")
    callback = browser(request.url)
    with tenant_oauth(db, user="bob", tenant="globex") as bob:
        for binding in (request.binding, "x" * 43):
            with pytest.raises(hush.TenantAccessDenied):
                bob.complete_authorization(callback, binding=binding)
    assert _refusals(db) == [] and _pending(db) == 1


def test_concurrent_callbacks_complete_once(db: Any, oauth_server: Any) -> None:
    """The pending row is locked while it is checked: of two callbacks with the right binding,
    the second waits for the first, then finds the state used."""
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        request = oa.start_authorization("idp")
    state = re.search(r"state=([^&]+)", request.url)[1]  # type: ignore[index]
    with db.connect("alice", autocommit=False) as first, db.connect("alice") as second:
        first.execute("SELECT * FROM hush.oauth_consume(%s, %s)", [state, request.binding])
        second.execute("SET lock_timeout = '200ms'")
        with raises_sqlstate("55P03"):  # waits on the first one's lock
            second.execute("SELECT * FROM hush.oauth_consume(%s, %s)", [state, request.binding])
        first.commit()
        with raises_sqlstate("SH073"):
            second.execute("SELECT * FROM hush.oauth_consume(%s, %s)", [state, request.binding])


def test_the_cli_login_refuses_a_redirect_of_another_authorization(db: Any, oauth_server: Any) -> None:
    """`hush oauth login` keeps its binding in memory: a redirect to its loopback listener that
    carries someone else's state (anything on the machine can send one) is refused, exit 4, and
    that authorization stays pending."""
    srv = fresh_server(oauth_server)
    with tenant_oauth(db) as oa:
        register(oa, srv)
        foreign = oa.start_authorization("idp", account="attacker-account")
        foreign_callback = browser(foreign.url)
    env = {**os.environ, "HUSH_DSN": db.dsn("alice")}
    proc = subprocess.Popen([HUSH, "oauth", "login", "acme", "idp", "--json", "--timeout", "60"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stderr is not None
    listening = re.search(r"waiting on (http://127\.0\.0\.1:(\d+)/callback)", proc.stderr.readline())
    assert listening
    proc.stderr.readline()
    query = foreign_callback.split("?", 1)[1]
    assert httpx2.get(f"{listening[1]}?{query}").status_code == 200
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert "binding" in err and foreign.binding not in err and out == ""
    assert srv.token_count() == 0 and _pending(db) == 2  # the CLI's own and the foreign one
    with tenant_oauth(db) as oa:
        assert oa.complete_authorization(foreign_callback, binding=foreign.binding).account == "attacker-account"
    assert [d["refused"] for d in _refusals(db)] == ["binding_mismatch"]


def test_a_refusal_in_the_callers_transaction_is_recorded_all_the_same(db: Any) -> None:
    """The refusal rolls the caller's transaction back; its audit row was committed apart."""
    state, binding = "t" * 20, "b" * 43
    with db.connect("alice") as a:
        a.execute("SELECT hush.oauth_save_provider('acme', 'idp', %s)", ['{"client_id": "app"}'])
        a.execute("SELECT hush.oauth_begin('acme', 'idp', %s, NULL, NULL, NULL, '{}', 'acct', 600, %s)",
                  [state, binding])
    with db.connect("alice", autocommit=False) as a:
        with pytest.raises(psycopg.Error):
            a.execute("SELECT * FROM hush.oauth_consume(%s, %s)", [state, "w" * 43])
        a.rollback()
    assert [d["account"] for d in _refusals(db)] == ["acct"] and _pending(db) == 1
