"""pg_dump / pg_restore carries every secret, grant and audit row, and the
restored database keeps working (sequences continue, saves succeed)."""
from __future__ import annotations

import psycopg
import pytest

from helpers import get, rows, save
from test_keys import key_id, keyfile_setting  # noqa: F401 (keyfile_setting is a fixture)


def test_dump_and_restore_round_trip(db, cluster, tmp_path):
    with db.connect("alice") as a:
        for i in range(5):
            save(a, "acme", f"s{i}", f"value-{i}", tags=["t"], metadata='{"i": %d}' % i)
        save(a, "acme", "s0", "value-0-v2")
        get(a, "acme", "s1")
    with db.connect("bob") as b:
        save(b, "globex", "g", "globex-value")
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.configure_tenant('globex', audit_reads => false)")
    audit_before = db.sql("SELECT tenant_id, id, action, secret_name, version FROM hush.audit_log ORDER BY id")

    dump = tmp_path / "hush.dump"
    r = cluster.run_bin("pg_dump", "-Fc", "-f", str(dump), db.name, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    target = db.name + "_restored"
    db.sql(f"CREATE DATABASE {target}")
    try:
        r = cluster.run_bin("pg_restore", "--exit-on-error", "-d", target, str(dump), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        dsn = cluster.dsn(target, user="alice")
        with psycopg.connect(dsn, autocommit=True) as a:
            assert [get(a, "acme", f"s{i}")["value"] for i in range(5)] == ["value-0-v2"] + [f"value-{i}" for i in range(1, 5)]
            assert get(a, "acme", "s0", 1)["value"] == "value-0"
            assert get(a, "acme", "s3")["metadata"] == {"i": 3}
            saved = save(a, "acme", "after-restore", "new")
            assert saved["version"] == 1
            assert get(a, "acme", "after-restore")["value"] == "new"
        with psycopg.connect(cluster.dsn(target, user="bob"), autocommit=True) as b:
            assert get(b, "globex", "g")["value"] == "globex-value"
        with psycopg.connect(cluster.dsn(target), autocommit=True) as su:
            audit_after = rows(su, "SELECT tenant_id, id, action, secret_name, version FROM hush.audit_log ORDER BY id")
            # Every audit row came back; new ones continue the sequence instead of colliding.
            assert [tuple(r.values()) for r in audit_after[:len(audit_before)]] == audit_before
            # Then: seven reads and a save plus its read by alice; bob's read is unaudited
            # because globex's audit_reads = false came back too.
            assert [r["action"] for r in audit_after[len(audit_before):]] == ["read"] * 7 + ["create", "read"]
            assert audit_after[-1]["id"] > audit_before[-1][1]
            assert su.execute("SELECT audit_reads FROM hush.tenants WHERE tenant_id = 'globex'").fetchone() == (False,)
    finally:
        db.sql(f"DROP DATABASE {target} WITH (FORCE)")


def test_restore_reads_with_the_keyring_and_fails_clearly_without(db, cluster, tmp_path, keyfile_setting):
    """Secrets sealed under two root keys (a rotation half done) come back from a
    dump; on a server whose keyring lacks the old key, exactly those fail, naming it."""
    old, new = key_id(cluster.key_lines[0]), key_id(cluster.key_lines[1])
    with db.connect("alice") as a:
        save(a, "acme", "before-rotation", "old-key-value")
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.add_root_key(%s)", [new])
        adm.execute("SELECT hush.activate_root_key(%s)", [new])
    with db.connect("alice") as a:
        save(a, "acme", "after-rotation", "new-key-value")
    dump = tmp_path / "hush.dump"
    assert cluster.run_bin("pg_dump", "-Fc", "-f", str(dump), db.name).returncode == 0
    target = db.name + "_keys"
    db.sql(f"CREATE DATABASE {target}")
    try:
        assert cluster.run_bin("pg_restore", "--exit-on-error", "-d", target, str(dump)).returncode == 0
        with psycopg.connect(cluster.dsn(target, user="alice"), autocommit=True) as a:
            assert get(a, "acme", "before-rotation")["value"] == "old-key-value"
            assert get(a, "acme", "after-rotation")["value"] == "new-key-value"
        # The same restore on a server that has only the new key.
        keyfile_setting(cluster.write_keyfile([cluster.key_lines[1]], path=cluster.base / "keys" / "new-only.keys"))
        with psycopg.connect(cluster.dsn(target, user="alice"), autocommit=True) as a:
            assert get(a, "acme", "after-rotation")["value"] == "new-key-value"
            with pytest.raises(psycopg.Error) as ei:
                get(a, "acme", "before-rotation")
            assert ei.value.sqlstate == "SH030" and old in str(ei.value)
    finally:
        db.sql(f"DROP DATABASE {target} WITH (FORCE)")


def test_partitioned_audit_trail_survives_dump_and_restore(db, cluster, tmp_path):
    """Monthly partitions are dumped as tables attached to the parent, the DEFAULT
    partition as extension configuration: restore exits 0, every audit row and
    seal comes back, the chain verifies, and inserts and maintenance go on."""
    with db.connect() as su:
        for at in ("2031-11-30 23:59:59+00", "2031-12-01 00:00:00+00", "2032-03-03 03:03:03+00"):
            su.execute("INSERT INTO hush.audit_log (tenant_id, action, at) VALUES ('acme', 'fixture', %s)", [at])
        su.execute("SELECT hush.create_audit_partitions(1)")
        su.execute("INSERT INTO hush.audit_log (tenant_id, action, at) VALUES ('acme', 'waiting', '2045-01-01+00')")
    with db.connect("alice") as a:
        save(a, "acme", "k", "v")
        get(a, "acme", "k")
    with db.connect("audrey") as aud:
        aud.execute("SELECT hush.seal_audit()")
    every_row = "SELECT tableoid::regclass::text, * FROM hush.audit_log ORDER BY id"
    before, seals = db.sql(every_row), db.sql("SELECT * FROM hush.audit_seals ORDER BY id")
    assert {r[0] for r in before} >= {"hush.audit_log_2031_11", "hush.audit_log_2031_12", "hush.audit_log_default"}
    dump = tmp_path / "hush.dump"
    r = cluster.run_bin("pg_dump", "-Fc", "-f", str(dump), db.name, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    target = db.name + "_parts"
    db.sql(f"CREATE DATABASE {target}")
    try:
        r = cluster.run_bin("pg_restore", "--exit-on-error", "-d", target, str(dump), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        with psycopg.connect(cluster.dsn(target), autocommit=True) as su:
            assert su.execute(every_row).fetchall() == before
            assert su.execute("SELECT * FROM hush.audit_seals ORDER BY id").fetchall() == seals
            # Restored partitions keep their guard and have one copy of each index.
            with pytest.raises(psycopg.Error) as ei:
                su.execute("TRUNCATE hush.audit_log_2031_11")
            assert ei.value.sqlstate == "SH040"
            assert su.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'audit_log_2031_11'").fetchone() == (3,)
        with psycopg.connect(cluster.dsn(target, user="alice"), autocommit=True) as a:
            save(a, "acme", "after", "v")
            assert get(a, "acme", "after")["value"] == "v"
        with psycopg.connect(cluster.dsn(target, user="adam"), autocommit=True) as adm:
            made = rows(adm, "SELECT partition, rows_moved FROM hush.create_audit_partitions(1)")
            assert ("hush.audit_log_2045_01", 1) in [(m["partition"], m["rows_moved"]) for m in made]
            adm.execute("SELECT hush.seal_audit()")
            v = rows(adm, "SELECT ok, unsealed_rows FROM hush.verify_audit()")[0]
            assert v == {"ok": True, "unsealed_rows": 0}
    finally:
        db.sql(f"DROP DATABASE {target} WITH (FORCE)")


VERIFIER = "verifier-" + "x" * 34  # RFC 7636: 43 characters at least
BINDING = "binding-" + "b" * 35


def test_oauth_state_survives_dump_and_restore(db, cluster, tmp_path):
    """Providers, pending authorizations and connections are configuration data too: the
    sealed client secret, verifier and tokens open in the restored database."""
    tokens = '{"access_token": "at-dumped", "refresh_token": "rt-dumped", "expires_in": 3600, "scope": "email"}'
    with db.connect("alice") as a:
        a.execute("SELECT hush.oauth_save_provider('acme', 'idp', %s, %s)",
                  ['{"client_id": "app", "token_endpoint": "https://idp.example/token"}', "client-secret"])
        a.execute("SELECT hush.oauth_store_tokens('acme', 'idp', 'user-1', 'authorization_code', %s)", [tokens])
        a.execute("SELECT hush.oauth_begin('acme', 'idp', %s, %s, NULL, 'https://app/cb', '{}', binding => %s)",
                  ["state-dumped-0123456789", VERIFIER, BINDING])
    dump = tmp_path / "hush.dump"
    r = cluster.run_bin("pg_dump", "-Fc", "-f", str(dump), db.name, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    target = db.name + "_oauth"
    db.sql(f"CREATE DATABASE {target}")
    try:
        r = cluster.run_bin("pg_restore", "--exit-on-error", "-d", target, str(dump), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        with psycopg.connect(cluster.dsn(target, user="alice"), autocommit=True) as a:
            assert a.execute("SELECT access_token, scopes FROM hush.oauth_token('acme', 'idp')").fetchone() == (
                "at-dumped", ["email"])
            assert a.execute("SELECT code_verifier FROM hush.oauth_consume(%s, %s)",
                             ["state-dumped-0123456789", BINDING]).fetchone() == (VERIFIER,)
            claim = a.execute("SELECT outcome, refresh_token, client_secret FROM "
                              "hush.oauth_claim_refresh('acme', 'idp', 'user-1', 'h', 60, 1)").fetchone()
            assert claim == ("claimed", "rt-dumped", "client-secret")
    finally:
        db.sql(f"DROP DATABASE {target} WITH (FORCE)")
