"""Version retention on save (issue 21): a secret keeps its newest max_versions versions and
those younger than destroy_versions_after, its own settings (save_secret / update_secret
arguments) or else its tenant's (configure_tenant). Older versions are destroyed by hush as
destroy_secret destroys (ciphertext and data key erased, the row, its metadata and its audit
rows kept), audited as 'destroy' with the rule; a writer needs no `destroy` capability for
retention to apply to its saves, but does to set a secret's own max_versions or
destroy_versions_after. The versions staged current, pending or previous, and every version
of a soft-deleted secret, stay. Real server, non-superuser roles (alice writes acme, adam administers); the
superuser only inspects or sets created_at back."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Iterator

import psycopg
import pytest

from helpers import cluster_roles, get, last_audit_id, raises_sqlstate, rows, save


@pytest.fixture
def alice(db: Any) -> Iterator[psycopg.Connection]:
    with db.connect("alice") as conn:
        yield conn


def versions(db: Any, name: str, tenant: str = "acme") -> dict[int, bool]:
    """version -> whether it still has its ciphertext, as the superuser sees the rows."""
    got = db.sql("SELECT v.version, v.ciphertext IS NOT NULL FROM hush.secret_versions v "
                 "JOIN hush.secrets s ON s.tenant_id = v.tenant_id AND s.id = v.secret_id "
                 "WHERE s.tenant_id = %s AND s.name = %s ORDER BY 1", [tenant, name])
    return dict(got)


def live(db: Any, name: str, tenant: str = "acme") -> list[int]:
    return [v for v, kept in versions(db, name, tenant).items() if kept]


def destroyed_rows(db: Any, name: str) -> list[tuple]:
    """The destroyed versions' rows: every key and ciphertext column NULL, destroyed_at set."""
    return db.sql("SELECT v.version, v.ciphertext IS NULL AND v.wrapped_dek IS NULL AND v.key_id IS NULL, "
                  "v.destroyed_at IS NOT NULL, v.created_by FROM hush.secret_versions v "
                  "JOIN hush.secrets s ON s.tenant_id = v.tenant_id AND s.id = v.secret_id "
                  "WHERE s.tenant_id = 'acme' AND s.name = %s AND v.destroyed_at IS NOT NULL ORDER BY 1", [name])


def destroy_audit(db: Any, name: str) -> list[tuple]:
    return db.sql("SELECT version, db_role, detail FROM hush.audit_log WHERE action = 'destroy' "
                  "AND secret_name = %s ORDER BY version", [name])


def configure(db: Any, tenant: str = "acme", **kw: Any) -> None:
    args = "".join(f", {k} => %({k})s" for k in kw)
    db.sql(f"SELECT FROM hush.configure_tenant(%(t)s{args})", {"t": tenant, **kw}, user="adam")


def test_max_versions_on_a_secret_destroys_the_oldest_on_save(db: Any, alice: Any) -> None:
    save(alice, "acme", "k", "v1", max_versions=2)
    for v in ("v2", "v3", "v4", "v5"):
        save(alice, "acme", "k", v)
    # Kept: the newest two (current and previous).
    assert versions(db, "k") == {1: False, 2: False, 3: False, 4: True, 5: True}
    # The rows stay with their metadata; the key and the ciphertext are gone.
    assert destroyed_rows(db, "k") == [(1, True, True, "alice"), (2, True, True, "alice"), (3, True, True, "alice")]
    listed = alice.execute("SELECT version, destroyed, stage FROM hush.secret_versions('acme', 'k')").fetchall()
    assert listed == [(1, True, None), (2, True, None), (3, True, None), (4, False, "previous"), (5, False, "current")]
    with raises_sqlstate("SH015"):
        get(alice, "acme", "k", 1)
    assert get(alice, "acme", "k")["value"] == "v5" and get(alice, "acme", "k", 4)["value"] == "v4"
    # Audited as the writer, naming the rule and the grant the save relied on; the versions'
    # own audit rows stay.
    audit = destroy_audit(db, "k")
    assert [(v, r) for v, r, _ in audit] == [(1, "alice"), (2, "alice"), (3, "alice")]
    assert all(d["retention"] == {"max_versions": 2} and d["grant"]["role"] == "alice" for _, _, d in audit)
    assert db.sql("SELECT action, version FROM hush.audit_log WHERE secret_name = 'k' "
                  "AND action IN ('create', 'new_version') ORDER BY id") == [
        ("create", 1), ("new_version", 2), ("new_version", 3), ("new_version", 4), ("new_version", 5)]
    # Destroyed once: a later save destroys the next one only.
    save(alice, "acme", "k", "v6")
    assert live(db, "k") == [5, 6] and len(destroy_audit(db, "k")) == 4


def test_the_tenants_max_versions_applies_to_secrets_without_their_own(db: Any, alice: Any) -> None:
    for v in ("v1", "v2", "v3"):
        save(alice, "acme", "k", v)
    save(alice, "acme", "own", "o1", max_versions=10)
    for v in ("o2", "o3", "o4"):
        save(alice, "acme", "own", v)
    configure(db, max_versions=1)
    save(alice, "acme", "k", "v4")
    save(alice, "acme", "own", "o5")
    # Keeps current and previous (staged) only; the secret's own setting wins over the tenant's.
    assert live(db, "k") == [3, 4]
    assert live(db, "own") == [1, 2, 3, 4, 5]
    assert [d["retention"] for _, _, d in destroy_audit(db, "k")] == [{"max_versions": 1}] * 2
    # Another tenant's setting is not acme's.
    with db.connect("bob") as bob:
        for v in ("g1", "g2", "g3"):
            save(bob, "globex", "k", v)
    assert live(db, "k", "globex") == [1, 2, 3]


def test_zero_on_a_secret_follows_the_tenant_and_null_keeps(db: Any, alice: Any) -> None:
    configure(db, max_versions=1)
    save(alice, "acme", "k", "v1", max_versions=10, destroy_versions_after="30 days", rotate_every="90 days")
    for v in ("v2", "v3", "v4"):
        save(alice, "acme", "k", v)
    assert live(db, "k") == [1, 2, 3, 4]
    def meta() -> dict:
        return rows(alice, "SELECT max_versions, destroy_versions_after, rotate_every "
                           "FROM hush.list_secrets('acme')")[0]

    # NULL (left out) kept every setting through those saves.
    assert meta() == {"max_versions": 10, "destroy_versions_after": timedelta(days=30),
                      "rotate_every": timedelta(days=90)}
    # 0 stores NULL: retention follows the tenant's again, applied by this very call; '0' clears the schedule.
    alice.execute("SELECT hush.update_secret('acme', 'k', max_versions => 0, destroy_versions_after => '0', "
                  "rotate_every => '0')")
    assert meta() == {"max_versions": None, "destroy_versions_after": None, "rotate_every": None}
    assert live(db, "k") == [3, 4]


def test_staged_versions_are_never_destroyed(db: Any, alice: Any) -> None:
    save(alice, "acme", "k", "v1", max_versions=1)
    save(alice, "acme", "k", "v2")
    assert live(db, "k") == [1, 2]  # 1 is previous
    save(alice, "acme", "k", "p3", stage="pending")
    assert live(db, "k") == [1, 2, 3]  # current, previous, pending
    save(alice, "acme", "k", "p4", stage="pending")
    assert live(db, "k") == [1, 2, 4]  # 3 no longer staged
    save(alice, "acme", "k", "v5")  # supersedes the pending 4: current 5, previous 2
    assert live(db, "k") == [2, 5]
    assert get(alice, "acme", "k", 2)["stage"] == "previous"


def test_destroy_versions_after_destroys_what_is_older(db: Any, alice: Any) -> None:
    for v in ("v1", "v2", "v3"):
        save(alice, "acme", "k", v)
    db.sql("UPDATE hush.secret_versions SET created_at = now() - interval '2 days' WHERE tenant_id = 'acme' "
           "AND version IN (1, 2)")
    save(alice, "acme", "k", "v4", destroy_versions_after="1 day")
    # 1 is old; 2 is as old, but a fresh version 3 is previous now and 4 current: only 1 and 2 go.
    assert live(db, "k") == [3, 4]
    assert [d["retention"] for _, _, d in destroy_audit(db, "k")] == [{"destroy_versions_after": "1 day"}] * 2
    # The tenant's applies to a secret without its own.
    for v in ("a1", "a2", "a3"):
        save(alice, "acme", "t", v)
    db.sql("UPDATE hush.secret_versions v SET created_at = now() - interval '3 hours' FROM hush.secrets s "
           "WHERE s.id = v.secret_id AND s.name = 't' AND v.version = 1")
    configure(db, destroy_versions_after="2 hours")
    save(alice, "acme", "t", "a4")
    assert live(db, "t") == [2, 3, 4]


def test_a_soft_deleted_secret_keeps_its_versions(db: Any, alice: Any) -> None:
    for v in ("v1", "v2", "v3", "v4"):
        save(alice, "acme", "gone", v)
    alice.execute("SELECT hush.delete_secret('acme', 'gone')")
    configure(db, max_versions=1)
    save(alice, "acme", "other", "x")
    alice.execute("SELECT count(*) FROM hush.save_secrets('acme', ARRAY['other', 'more'], ARRAY['y', 'z'])")
    with raises_sqlstate("SH014"):
        save(alice, "acme", "gone", "v5", max_versions=1)
    with raises_sqlstate("SH014"):
        alice.execute("SELECT hush.update_secret('acme', 'gone', max_versions => 1)")
    assert live(db, "gone") == [1, 2, 3, 4]
    alice.execute("SELECT hush.restore_secret('acme', 'gone')")
    save(alice, "acme", "gone", "v5")
    assert live(db, "gone") == [4, 5]


def test_bulk_saves_apply_retention_once_for_the_secrets_that_have_it(db: Any, alice: Any) -> None:
    save(alice, "acme", "a", "a1", max_versions=1)
    names = ["a", "b"]
    for i in range(3):
        alice.execute("SELECT count(*) FROM hush.save_secrets('acme', %s, %s)", [names, [f"v{i}"] * 2])
    # a keeps its current and previous; b has no retention.
    assert live(db, "a") == [3, 4] and live(db, "b") == [1, 2, 3]
    row = db.sql("SELECT current_version, previous_version, pending_version FROM hush.secrets WHERE name = 'a'")
    assert row == [(4, 3, None)]
    details = [d for _, _, d in destroy_audit(db, "a")]
    assert [d["retention"] for d in details] == [{"max_versions": 1}] * 2
    assert all(d["grant"]["role"] == "alice" for d in details)
    configure(db, max_versions=2)
    alice.execute("SELECT count(*) FROM hush.save_secrets('acme', %s, %s)", [names, ["w", "w"]])
    assert live(db, "a") == [4, 5] and live(db, "b") == [3, 4]
    # A bulk save after a staged rotation numbers past the pending version and supersedes it.
    save(alice, "acme", "b", "p", stage="pending")
    alice.execute("SELECT count(*) FROM hush.save_secrets('acme', ARRAY['b'], ARRAY['x'])")
    assert db.sql("SELECT current_version, previous_version, pending_version FROM hush.secrets "
                  "WHERE name = 'b'") == [(6, 4, None)]
    assert live(db, "b") == [4, 5, 6]


def test_bad_settings_are_refused_with_nothing_written(db: Any, alice: Any) -> None:
    save(alice, "acme", "k", "v1")
    before = (db.sql("SELECT * FROM hush.secrets ORDER BY id"), db.sql("SELECT count(*) FROM hush.secret_versions"),
              last_audit_id(db))
    bad = [{"max_versions": -1}, {"max_versions": 10001}, {"destroy_versions_after": "-1 day"},
           {"destroy_versions_after": "101 years"}, {"rotate_every": "-1 hour"}, {"rotate_every": "100 years 1 day"},
           {"destroy_versions_after": "1 mon -40 days"}]
    for kw in bad:
        for name in ("k", "new"):
            with raises_sqlstate("SH004"):
                save(alice, "acme", name, "v2", **kw)
        with raises_sqlstate("SH004"):
            arg, val = next(iter(kw.items()))
            alice.execute(f"SELECT hush.update_secret('acme', 'k', {arg} => %s)", [val])
    assert (db.sql("SELECT * FROM hush.secrets ORDER BY id"), db.sql("SELECT count(*) FROM hush.secret_versions"),
            last_audit_id(db)) == before
    # The bounds themselves are allowed.
    save(alice, "acme", "k", "v2", max_versions=10000, destroy_versions_after="100 years", rotate_every="100 years")
    assert db.sql("SELECT max_versions, destroy_versions_after = '100 years', rotate_every = '100 years' "
                  "FROM hush.secrets WHERE name = 'k'") == [(10000, True, True)]


def test_intervals_in_another_interval_style(db: Any, alice: Any) -> None:
    alice.execute("SET IntervalStyle = 'iso_8601'")
    save(alice, "acme", "k", "v1", destroy_versions_after="P2D", rotate_every="PT12H")
    with raises_sqlstate("SH004"):
        save(alice, "acme", "k", "v2", rotate_every="P-1D")
    assert db.sql("SELECT destroy_versions_after, rotate_every FROM hush.secrets WHERE name = 'k'") == [
        (timedelta(days=2), timedelta(hours=12))]
    configure(db, destroy_versions_after="0")  # nothing for the tenant, in any style
    save(alice, "acme", "k", "v2", destroy_versions_after="0")
    assert live(db, "k") == [1, 2]


@pytest.fixture(scope="module")
def writer_role(cluster: Any) -> Iterator[str]:
    """A login role (cluster-wide), made once for this module."""
    with cluster_roles(cluster, {"ret_writer": "LOGIN IN ROLE hush_writer"}):
        yield "ret_writer"


@pytest.fixture
def rw_only(db: Any, writer_role: str) -> str:
    """A writer granted read, write and list on acme, not destroy."""
    db.sql("SELECT hush.grant(%s, 'acme', '', ARRAY['read', 'write', 'list'])", [writer_role], user="adam")
    return writer_role


def snapshot(db: Any) -> tuple:
    """What a refused call must leave as it was, as the superuser sees it."""
    return (db.sql("SELECT * FROM hush.secrets ORDER BY id"),
            db.sql("SELECT secret_id, version, ciphertext IS NOT NULL FROM hush.secret_versions ORDER BY 1, 2"),
            last_audit_id(db))


def test_setting_a_secrets_retention_needs_destroy(db: Any, rw_only: str) -> None:
    """max_versions => 1 destroys every unstaged version, other roles' values too: a role that
    may write but not destroy must not set it (nor destroy_versions_after, nor reset either
    with 0): SH020 before anything is written, on every write path."""
    with db.connect("alice") as alice:
        for v in ("v1", "v2", "v3", "v4"):
            save(alice, "acme", "app/x", v)
            save(alice, "acme", "ops/y", v)
    sid = db.sql("SELECT id FROM hush.secrets WHERE name = 'app/x'")[0][0]
    before = snapshot(db)
    settings = [{"max_versions": 1}, {"max_versions": 0}, {"destroy_versions_after": "1 day"},
                {"destroy_versions_after": "0"}]
    with db.connect(rw_only) as w:
        for kw in settings:
            (arg, val), = kw.items()
            for name in ("app/x", "app/new"):
                with raises_sqlstate("SH020") as ei:
                    save(w, "acme", name, "mine", **kw)
                assert f"role {rw_only} may not destroy" in str(ei.value)
            with raises_sqlstate("SH020"):  # check-and-set takes the other write path
                save(w, "acme", "app/x", "mine", expected_version=4, **kw)
            for value in ("mine", None):
                with raises_sqlstate("SH020"):
                    w.execute(f"SELECT hush.update_secret('acme', 'app/x', %s, {arg} => %s)", [value, val])
                with raises_sqlstate("SH020"):
                    w.execute(f"SELECT hush.update_secret_by_id('acme', %s, %s, {arg} => %s)", [sid, value, val])
        assert snapshot(db) == before
        # A rotation schedule stays a writer's matter.
        save(w, "acme", "app/x", "v5", rotate_every="30 days")
    assert live(db, "app/x") == [1, 2, 3, 4, 5]
    # `destroy` on a prefix lets the role set retention under it, not elsewhere.
    db.sql("SELECT hush.grant(%s, 'acme', 'app/', ARRAY['destroy'])", [rw_only], user="adam")
    with db.connect(rw_only) as w:
        with raises_sqlstate("SH020"):
            w.execute("SELECT hush.update_secret('acme', 'ops/y', max_versions => 1)")
        w.execute("SELECT hush.update_secret_by_id('acme', %s, max_versions => 1)", [sid])
    assert live(db, "app/x") == [4, 5] and live(db, "ops/y") == [1, 2, 3, 4]


def test_retention_set_by_a_destroyer_applies_to_a_writer_without_destroy(db: Any, rw_only: str) -> None:
    with db.connect("alice") as alice:  # alice holds every capability on acme
        save(alice, "acme", "k", "v1", max_versions=1)
    with db.connect(rw_only) as w:
        for v in ("v2", "v3", "v4"):
            save(w, "acme", "k", v)
        assert live(db, "k") == [3, 4]
        with raises_sqlstate("SH020"):  # and it has gained no way to destroy what it chooses
            w.execute("SELECT hush.destroy_secret('acme', 'k', ARRAY[3])")
    assert live(db, "k") == [3, 4]
    detail = destroy_audit(db, "k")[0][2]
    assert detail == {"grant": {"tenant": "acme", "role": rw_only, "prefix": ""}, "retention": {"max_versions": 1}}


@pytest.mark.parametrize("how", ["save", "update"])
def test_a_destroy_grant_revoked_after_the_snapshot_refuses_retention(db: Any, rw_only: str, how: str) -> None:
    """In REPEATABLE READ the grant check sees the snapshot's grants: a revoke of `destroy`
    committed since makes the write 40001 (retry), as a revoked `write` does."""
    with db.connect("alice") as alice:
        for v in ("v1", "v2", "v3"):
            save(alice, "acme", "k", v)
    db.sql("SELECT hush.grant(%s, 'acme', 'k', ARRAY['destroy'])", [rw_only], user="adam")
    with db.connect(rw_only, autocommit=False) as w:
        w.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        w.execute("SELECT 1")  # the snapshot, before the revoke
        db.sql("SELECT hush.revoke(%s, 'acme', 'k', ARRAY['destroy'])", [rw_only], user="adam")
        before = snapshot(db)
        with raises_sqlstate("40001"):
            if how == "save":
                save(w, "acme", "k", "mine", max_versions=1)
            else:
                w.execute("SELECT hush.update_secret('acme', 'k', max_versions => 1)")
        w.rollback()
    assert snapshot(db) == before


def test_retention_on_a_metadata_update_and_by_id(db: Any, alice: Any) -> None:
    sid = save(alice, "acme", "k", "v1")["id"]
    for v in ("v2", "v3", "v4"):
        save(alice, "acme", "k", v)
    alice.execute("SELECT hush.update_secret_by_id('acme', %s, max_versions => 1)", [sid])
    assert live(db, "k") == [3, 4]
    assert json.dumps(destroy_audit(db, "k")[0][2]["retention"]) == '{"max_versions": 1}'
    alice.execute("SELECT hush.update_secret_by_id('acme', %s, 'v5')", [sid])
    assert live(db, "k") == [4, 5]


def test_the_settings_a_write_gives_are_on_its_audit_row(db: Any) -> None:
    """What will erase versions later is on the record of the write that set it."""
    with db.connect("alice") as a:
        a.execute("SELECT hush.save_secret('acme', 'audited', 'v1', max_versions => 3, rotate_every => '30 days')")
        a.execute("SELECT hush.update_secret('acme', 'audited', destroy_versions_after => '90 days')")
    with db.connect() as su:
        details = [r[0] for r in su.execute(
            "SELECT detail FROM hush.audit_log WHERE tenant_id = 'acme' AND secret_name = 'audited' ORDER BY id")]
    assert details[0]["max_versions"] == 3 and details[0]["rotate_every"] == "30 days"
    assert details[1]["destroy_versions_after"] == "90 days" and "max_versions" not in details[1]
