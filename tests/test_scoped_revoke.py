"""A revoke bites at the role's next statement, in transactions already open too (issue
20), whatever their isolation level. A REPEATABLE READ or SERIALIZABLE transaction checks
grants in the snapshot it took before the revoke, so: a read of a value or a token is
checked again where its record commits (hush._record, in a transaction of its own:
SH020, no value, nothing recorded), and a write locks the grant that allowed it (40001
once a revoke committed after the snapshot; a revoke waits for a writer holding it).
Listings keep the transaction's snapshot (docs/access.md, "Access control"). Real server,
non-superuser roles; revokes made by adam (hush_admin) on a connection of their own."""
from __future__ import annotations

import json
from typing import Any, Iterator

import psycopg
import pytest

from helpers import raises_sqlstate, save
from oauth_helpers import fresh_server, register, tenant_oauth

ISOLATION = ["REPEATABLE READ", "SERIALIZABLE"]
VALUE = "value-7c1e-do-not-leak"


def narrow(db: Any, role: str, *grants: tuple[str, list[str]]) -> None:
    """Replace `role`'s grants on acme by these (prefix, capabilities)."""
    db.sql("SELECT hush.revoke_tenant(%s, 'acme')", [role], user="adam")
    for prefix, caps in grants:
        db.sql("SELECT hush.grant(%s, 'acme', %s, %s::text[])", [role, prefix, caps], user="adam")


def revoke(db: Any, role: str, prefix: str, caps: list[str]) -> None:
    db.sql("SELECT hush.revoke(%s, 'acme', %s, %s::text[])", [role, prefix, caps], user="adam")


@pytest.fixture
def tx(db: Any) -> Iterator[Any]:
    """open(user, isolation): a connection inside an explicit transaction, rolled back at the end."""
    conns: list[psycopg.Connection] = []

    def open_(user: str, isolation: str) -> psycopg.Connection:
        c = db.connect(user)
        conns.append(c)
        c.execute(f"BEGIN ISOLATION LEVEL {isolation}")
        return c
    yield open_
    for c in conns:
        c.close()


def attempt(c: psycopg.Connection, sql: str, params: Any = None) -> tuple[str | None, Any]:
    """(None, rows) or (SQLSTATE, message), inside a savepoint the failure is rolled back to:
    the transaction goes on, as a caller that catches the error would."""
    c.execute("SAVEPOINT attempt")
    try:
        got = c.execute(sql, params).fetchall()
    except psycopg.Error as e:
        c.execute("ROLLBACK TO SAVEPOINT attempt")
        return e.sqlstate, str(e)
    c.execute("RELEASE SAVEPOINT attempt")
    return None, got


def reads_recorded(db: Any, role: str, actions: tuple[str, ...] = ("read",)) -> int:
    return int(db.sql("SELECT count(*) FROM hush.audit_log WHERE db_role = %s AND action = ANY(%s)",
                      [role, list(actions)])[0][0])


def ident(db: Any, name: str) -> Any:
    return db.sql("SELECT id FROM hush.secrets WHERE tenant_id = 'acme' AND name = %s", [name])[0][0]


# -- reads of values ----------------------------------------------------------------------------

READS = {
    "get_secret": "SELECT value FROM hush.get_secret('acme', 'payments/stripe')",
    "get_secret_by_id": "SELECT value FROM hush.get_secret_by_id('acme', %(id)s)",
    "get_secrets": "SELECT value FROM hush.get_secrets('acme', ARRAY['payments/stripe', 'payments/adyen'])",
}


@pytest.mark.parametrize("isolation", ISOLATION)
@pytest.mark.parametrize("revoked", ["read", "every capability"])
def test_a_reader_revoked_mid_transaction_reads_no_value_and_records_nothing(db: Any, tx: Any, isolation: str,
                                                                            revoked: str) -> None:
    with db.connect("alice") as alice:
        for n in ("payments/stripe", "payments/adyen"):
            save(alice, "acme", n, VALUE)
    # Keeping list: the grant row is narrowed (UPDATE); without: it goes (DELETE).
    narrow(db, "rita", ("payments/", ["read"] if revoked == "every capability" else ["read", "list"]))
    params = {"id": ident(db, "payments/stripe")}
    rita = tx("rita", isolation)
    for sql in READS.values():
        assert attempt(rita, sql, params) == (None, [(VALUE,)] * (2 if "get_secrets" in sql else 1))
    before = reads_recorded(db, "rita")
    revoke(db, "rita", "payments/", ["read"])
    for fn, sql in READS.items():
        code, message = attempt(rita, sql, params)
        assert code == "SH020", (fn, code, message)
        assert "no longer read" in message and VALUE not in message, (fn, message)
    assert reads_recorded(db, "rita") == before
    # Listings keep the transaction's snapshot, like the rows they list (docs/access.md, "Access control").
    assert attempt(rita, "SELECT count(*) FROM hush.list_secrets('acme')") == (None, [(2,)])


@pytest.mark.parametrize("isolation", ISOLATION)
def test_a_revoke_of_another_grant_does_not_stop_the_reader(db: Any, tx: Any, isolation: str) -> None:
    with db.connect("alice") as alice:
        save(alice, "acme", "payments/stripe", VALUE)
    narrow(db, "rita", ("payments/", ["read"]), ("ci/", ["read"]), ("", ["list"]))
    rita = tx("rita", isolation)
    assert attempt(rita, READS["get_secret"]) == (None, [(VALUE,)])
    revoke(db, "rita", "ci/", ["read"])
    revoke(db, "rita", "", ["list"])  # list on '' went; read on payments/ still implies it there
    assert attempt(rita, READS["get_secret"]) == (None, [(VALUE,)])
    assert reads_recorded(db, "rita") == 2
    # The record names the grant that allowed the read where it committed.
    assert db.sql("SELECT DISTINCT detail->'grant' FROM hush.audit_log WHERE db_role = 'rita' AND action = 'read'"
                  ) == [({"tenant": "acme", "role": "rita", "prefix": "payments/"},)]


def test_read_committed_bites_at_the_next_statement(db: Any, tx: Any) -> None:
    with db.connect("alice") as alice:
        save(alice, "acme", "payments/stripe", VALUE)
    narrow(db, "rita", ("payments/", ["read", "list"]))
    narrow(db, "alice", ("payments/", ["write"]))
    rita = tx("rita", "READ COMMITTED")
    alice = tx("alice", "READ COMMITTED")
    assert attempt(rita, READS["get_secret"]) == (None, [(VALUE,)])
    assert attempt(alice, "SELECT version FROM hush.save_secret('acme', 'payments/stripe', 'v2')")[0] is None
    alice.execute("COMMIT")
    revoke(db, "rita", "payments/", ["read"])
    revoke(db, "alice", "payments/", ["write"])
    assert attempt(rita, READS["get_secret"])[0] == "SH020"
    alice.execute("BEGIN")
    code, message = attempt(alice, "SELECT version FROM hush.save_secret('acme', 'payments/stripe', 'v3')")
    assert code == "SH020" and "may not act on tenant" in message  # the grant is gone: a fresh check
    # With reads recorded or not (a tenant may switch it off: READ COMMITTED, nothing written).
    db.sql("SELECT hush.configure_tenant('acme', audit_reads => false)", user="adam")
    narrow(db, "rita", ("payments/", ["read"]))
    rita.execute("ROLLBACK")
    rita.execute("BEGIN")
    assert attempt(rita, READS["get_secret"]) == (None, [("v2",)])
    revoke(db, "rita", "payments/", ["read"])
    assert attempt(rita, READS["get_secret"])[0] == "SH020"


def test_the_recorder_stores_no_read_the_reader_may_not_make(db: Any) -> None:
    """hush._record asks the grants itself: a record signed by hush for a role without the
    grant (as a revoke leaves it) stores nothing, and says which rows."""
    from read_record_helpers import signed_body
    db.sql("CREATE ROLE rec3 LOGIN IN ROLE hush_recorder")
    count = "SELECT count(*) FROM hush.audit_log WHERE action = 'read'"
    before = db.sql(count)
    with db.connect("rec3") as r:
        body, mac, _ = signed_body(db, db_role="bob", session_role="bob")  # bob: globex only
        with raises_sqlstate("SH020") as ei:
            r.execute("SELECT hush._record(%s, %s)", [body, mac])
        assert ei.value.diag.message_detail == "1:1"
    assert db.sql(count) == before


# -- writes -------------------------------------------------------------------------------------

# The call on ci/a (id: its id), and the capability it needs.
WRITES = {
    "save_secret": ("write", "SELECT version FROM hush.save_secret('acme', 'ci/a', 'v2')"),
    "save_secret, new name": ("write", "SELECT version FROM hush.save_secret('acme', 'ci/new', 'v')"),
    "save_secret, check-and-set": ("write", "SELECT version FROM hush.save_secret('acme', 'ci/a', 'v2', "
                                            "expected_version => 1)"),
    "save_secrets": ("write", "SELECT version FROM hush.save_secrets('acme', ARRAY['ci/a', 'ci/n'], ARRAY['1', '2'])"),
    "update_secret": ("write", "SELECT version FROM hush.update_secret('acme', 'ci/a', 'v2')"),
    "update_secret, metadata": ("write", "SELECT version FROM hush.update_secret('acme', 'ci/a', tags => ARRAY['t'])"),
    "update_secret_by_id": ("write", "SELECT version FROM hush.update_secret_by_id('acme', %(id)s, 'v2')"),
    "delete_secret": ("delete", "SELECT hush.delete_secret('acme', 'ci/a')"),
    "delete_secret_by_id": ("delete", "SELECT hush.delete_secret_by_id('acme', %(id)s)"),
    "restore_secret": ("delete", "SELECT name FROM hush.restore_secret('acme', 'ci/gone')"),
    "destroy_secret": ("destroy", "SELECT hush.destroy_secret('acme', 'ci/a')"),
}


def secrets_state(db: Any) -> list[Any]:
    return db.sql("SELECT (SELECT count(*) FROM hush.audit_log), (SELECT string_agg(concat_ws(' ', s.name, "
                  "s.current_version, s.deleted_at IS NULL, s.tags::text), ',' ORDER BY s.name) FROM hush.secrets s), "
                  "(SELECT count(*) FROM hush.secret_versions WHERE ciphertext IS NOT NULL)")


@pytest.fixture
def ci(db: Any) -> dict:
    """ci/a and the deleted ci/gone, written by alice, who then holds write, delete and destroy on ci/."""
    with db.connect("alice") as alice:
        save(alice, "acme", "ci/a", "v1")
        save(alice, "acme", "ci/gone", "v1")
        alice.execute("SELECT hush.delete_secret('acme', 'ci/gone')")
    narrow(db, "alice", ("ci/", ["write", "delete", "destroy"]))
    return {"id": ident(db, "ci/a")}


@pytest.mark.parametrize("isolation", ISOLATION)
@pytest.mark.parametrize("fn", list(WRITES))
def test_a_writer_revoked_mid_transaction_writes_nothing(db: Any, tx: Any, ci: dict, isolation: str,
                                                         fn: str) -> None:
    cap, sql = WRITES[fn]
    alice = tx("alice", isolation)
    assert attempt(alice, "SELECT count(*) FROM hush.list_secrets('acme')") == (None, [(1,)])  # the snapshot
    revoke(db, "alice", "ci/", [cap])  # the grant keeps its other capabilities: an UPDATE of its row
    before = secrets_state(db)
    code, message = attempt(alice, sql, ci)
    assert code == "40001", (fn, code, message)
    alice.execute("COMMIT")  # what the call did was rolled back with its savepoint
    assert secrets_state(db) == before


@pytest.mark.parametrize("fn", ["save_secret", "delete_secret_by_id", "save_secrets"])
def test_a_writer_whose_grants_all_went_writes_nothing(db: Any, tx: Any, ci: dict, fn: str) -> None:
    alice = tx("alice", "SERIALIZABLE")
    alice.execute("SELECT 1")
    db.sql("SELECT hush.revoke_tenant('alice', 'acme')", user="adam")  # a DELETE of the grant row
    before = secrets_state(db)
    assert attempt(alice, WRITES[fn][1], ci)[0] == "40001"
    alice.execute("COMMIT")
    assert secrets_state(db) == before


@pytest.mark.parametrize("isolation", ISOLATION)
def test_a_writer_holds_up_no_revoke_and_another_grant_does_not_stop_it(db: Any, tx: Any, ci: dict,
                                                                        isolation: str) -> None:
    """No lock is taken on a grant: an open transaction that wrote through it (a reader or a
    writer, hostile or merely busy) cannot hold up the revoke, which bites at its next write."""
    narrow(db, "alice", ("ci/", ["write", "delete", "destroy"]), ("other/", ["write"]))
    alice = tx("alice", isolation)
    assert attempt(alice, WRITES["save_secret"][1])[0] is None
    with db.connect("adam") as adam:
        adam.execute("SET lock_timeout = '300ms'")
        adam.execute("SELECT hush.revoke('alice', 'acme', 'other/', ARRAY['write'])")
        assert attempt(alice, WRITES["update_secret"][1])[0] is None  # its own grant is untouched
        adam.execute("SELECT hush.revoke('alice', 'acme', 'ci/', ARRAY['write'])")  # does not wait
    assert attempt(alice, WRITES["update_secret"][1])[0] == "40001"
    alice.execute("COMMIT")  # the writes made before the revoke commit, as in READ COMMITTED
    assert db.sql("SELECT current_version FROM hush.secrets WHERE name = 'ci/a'") == [(3,)]


@pytest.mark.parametrize("isolation", ISOLATION)
def test_changes_that_leave_a_grant_as_it_was_do_not_fail_its_writers(db: Any, tx: Any, ci: dict,
                                                                      isolation: str) -> None:
    """A grant or revoke that changes nothing (and the lock that lets grant changes take turns)
    leaves the grant's row as it was: writers in an older snapshot go on."""
    alice = tx("alice", isolation)
    assert attempt(alice, "SELECT count(*) FROM hush.list_secrets('acme')")[0] is None  # the snapshot
    with db.connect("adam") as adam:
        adam.execute("SELECT hush.grant('alice', 'acme', 'ci/', ARRAY['write'])")  # held already
        adam.execute("SELECT hush.revoke('alice', 'acme', 'ci/', ARRAY['audit'])")  # not held
        adam.execute("BEGIN")
        adam.execute("SELECT hush.revoke('alice', 'acme', 'ci/', ARRAY['destroy'])")
        adam.execute("ROLLBACK")  # a revoke taken back changes nothing either
    assert attempt(alice, WRITES["save_secret"][1])[0] is None
    alice.execute("COMMIT")


@pytest.mark.parametrize("isolation", ISOLATION)
def test_the_worker_leases_in_read_committed_only(db: Any, tx: Any, isolation: str) -> None:
    """oauth_worker_claim writes leases on the grants of its statement's snapshot: in an older
    one a revoked worker would lease (and stall) connections it no longer serves."""
    wendy = tx("wendy", isolation)
    code, message = attempt(wendy, "SELECT * FROM hush.oauth_worker_claim('w', 10, 900, 60, NULL)")
    assert code == "SH004" and "READ COMMITTED" in message
    wendy.execute("ROLLBACK")
    with db.connect("wendy") as w:
        assert w.execute("SELECT count(*) FROM hush.oauth_worker_claim('w', 10, 900, 60, NULL)").fetchone() == (0,)


def test_a_superuser_acting_as_itself_holds_no_grant(db: Any) -> None:
    with db.connect("postgres") as su:
        save(su, "acme", "su/a", "v")  # the database's first key registered, outside the transaction
        su.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert su.execute("SELECT version FROM hush.save_secret('acme', 'su/a', 'v')").fetchone() == (2,)
        su.execute("COMMIT")


# -- OAuth --------------------------------------------------------------------------------------

@pytest.fixture
def github(db: Any, oauth_server: Any) -> Any:
    """The provider github in acme, with the account u1 connected (by alice, then narrowed)."""
    srv = fresh_server(oauth_server)
    with tenant_oauth(db, user="alice") as oa:
        register(oa, srv, name="github")
    db.sql("SELECT hush.oauth_store_tokens('acme', 'github', 'u1', 'authorization_code', %s)",
           [json.dumps(srv.mint("app", "u1", 3600))], user="alice")
    return srv


TOKEN_READS = {  # call -> (capability, action recorded, the call)
    "oauth_token": ("oauth_use", "oauth_token_read",
                    "SELECT access_token FROM hush.oauth_token('acme', 'github', 'u1')"),
    "oauth_access_token": ("oauth_use", "oauth_token_read",
                           "SELECT hush.oauth_access_token('acme', 'github', 'u1', 0)"),
    "oauth_connection_tokens": ("oauth_manage", "oauth_tokens_read",
                                "SELECT access_token FROM hush.oauth_connection_tokens('acme', 'github', 'u1')"),
    "oauth_provider": ("oauth_manage", "oauth_client_secret_read",
                       "SELECT client_secret FROM hush.oauth_provider('acme', 'github')"),
}


@pytest.mark.parametrize("isolation", ISOLATION)
@pytest.mark.parametrize("call", list(TOKEN_READS))
def test_a_token_read_revoked_mid_transaction_hands_out_nothing(db: Any, tx: Any, github: Any, isolation: str,
                                                                call: str) -> None:
    cap, action, sql = TOKEN_READS[call]
    who = "rita" if cap == "oauth_use" else "alice"
    narrow(db, who, ("git", [cap, "list"]))
    c = tx(who, isolation)
    code, got = attempt(c, sql)
    assert code is None and got[0][0], (call, got)
    before = reads_recorded(db, who, (action,))
    revoke(db, who, "git", [cap])
    code, message = attempt(c, sql)
    assert code == "SH020" and f"no longer {cap} 'gith...'" in message, (call, code, message)
    assert got[0][0] not in message
    assert reads_recorded(db, who, (action,)) == before


OAUTH_WRITES = {
    "oauth_disconnect": "SELECT hush.oauth_disconnect('acme', 'github', 'u1')",
    "oauth_store_tokens": "SELECT generation FROM hush.oauth_store_tokens('acme', 'github', 'u1', "
                          "'authorization_code', '{\"access_token\": \"x\", \"token_type\": \"Bearer\"}')",
    "oauth_remove_provider": "SELECT hush.oauth_remove_provider('acme', 'github')",
}


@pytest.mark.parametrize("call", list(OAUTH_WRITES))
def test_an_oauth_write_revoked_mid_transaction_writes_nothing(db: Any, tx: Any, github: Any, call: str) -> None:
    narrow(db, "alice", ("git", ["oauth_manage", "oauth_use"]))
    state = ("SELECT (SELECT count(*) FROM hush.audit_log), (SELECT string_agg(concat_ws(' ', provider, account, "
             "generation), ',') FROM hush.oauth_connections), (SELECT count(*) FROM hush.oauth_providers)")
    alice = tx("alice", "REPEATABLE READ")
    alice.execute("SELECT 1")
    revoke(db, "alice", "git", ["oauth_manage"])
    before = db.sql(state)
    assert attempt(alice, OAUTH_WRITES[call])[0] == "40001"
    alice.execute("COMMIT")
    assert db.sql(state) == before
