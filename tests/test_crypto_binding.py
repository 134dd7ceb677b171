"""Ciphertext is bound to its row: copied or altered bytes fail to open with a
clear error, and the stored bytes never contain the plaintext."""
from __future__ import annotations

import pytest

from helpers import get, raises_sqlstate, save

PLAINTEXT = "correct-horse-battery-staple-7f3a"


@pytest.fixture
def seeded(db):
    with db.connect("alice") as a:
        save(a, "acme", "a", "acme-a-v1")
        save(a, "acme", "a", "acme-a-v2")
        save(a, "acme", "b", "acme-b-v1")
    with db.connect("bob") as b:
        save(b, "globex", "a", "globex-a-v1")
    return db


def _copy(db, src: str, dst: str, cols: str = "key_id, wrapped_dek, ciphertext") -> None:
    """As the superuser (who bypasses RLS): copy the sealed columns from one version row to another."""
    sets = ", ".join(f"{c} = src.{c}" for c in cols.split(", "))
    db.sql(f"""UPDATE hush.secret_versions dst SET {sets}
                 FROM (SELECT v.* FROM hush.secret_versions v JOIN hush.secrets s
                         ON s.tenant_id = v.tenant_id AND s.id = v.secret_id WHERE {src}) src
                WHERE (dst.tenant_id, dst.secret_id, dst.version) IN
                      (SELECT v.tenant_id, v.secret_id, v.version FROM hush.secret_versions v JOIN hush.secrets s
                         ON s.tenant_id = v.tenant_id AND s.id = v.secret_id WHERE {dst})""")


@pytest.mark.parametrize("src,dst,user,tenant,name,version", [
    # another secret of the same tenant
    ("s.tenant_id='acme' AND s.name='a' AND v.version=1", "s.tenant_id='acme' AND s.name='b'", "alice", "acme", "b", None),
    # another version of the same secret
    ("s.tenant_id='acme' AND s.name='a' AND v.version=1", "s.tenant_id='acme' AND s.name='a' AND v.version=2",
     "alice", "acme", "a", 2),
    # the same name in another tenant
    ("s.tenant_id='acme' AND s.name='a' AND v.version=1", "s.tenant_id='globex' AND s.name='a'", "bob", "globex", "a", None),
])
@pytest.mark.parametrize("cols", ["key_id, wrapped_dek, ciphertext", "wrapped_dek", "ciphertext"])
def test_copied_ciphertext_or_data_key_fails_to_open(seeded, src, dst, user, tenant, name, version, cols):
    _copy(seeded, src, dst, cols)
    with seeded.connect(user) as conn:
        with raises_sqlstate("SH031") as ei:
            get(conn, tenant, name, version)
        assert "acme-a-v1" not in str(ei.value)
        assert tenant in str(ei.value) and repr(name) in str(ei.value)


@pytest.mark.parametrize("col", ["ciphertext", "wrapped_dek"])
def test_tampered_bytes_fail_to_open(seeded, col):
    # Flip every bit of one byte (overwriting with a constant would be a no-op 1 time in 256).
    seeded.sql(f"""UPDATE hush.secret_versions SET {col} = set_byte({col}, 29, get_byte({col}, 29) # 255)
                  WHERE tenant_id = 'acme' AND version = 1
                    AND secret_id = (SELECT id FROM hush.secrets WHERE tenant_id = 'acme' AND name = 'b')""")
    with seeded.connect("alice") as a:
        with raises_sqlstate("SH031"):
            get(a, "acme", "b")
        assert get(a, "acme", "a")["value"] == "acme-a-v2"


def test_stored_bytes_never_contain_the_plaintext(db):
    with db.connect("alice") as a:
        save(a, "acme", "pw", PLAINTEXT, description="a password")
        save(a, "acme", "pw", PLAINTEXT + "-2")
        get(a, "acme", "pw")
    db.sql("CHECKPOINT")
    needle = PLAINTEXT.encode()
    # audit_log is partitioned: its rows are in its partitions (here, the DEFAULT one).
    for table in ("secrets", "secret_versions", "audit_log_default"):
        # The table's heap file as written to disk (read as the superuser).
        (data,) = db.sql(f"SELECT pg_read_binary_file(pg_relation_filepath('hush.{table}'))")[0]
        assert len(data) > 0
        assert needle not in bytes(data), table
    assert db.sql("SELECT count(*) FROM hush.secret_versions WHERE position(%s::bytea in ciphertext) > 0",
                  [needle]) == [(0,)]
    # Two saves of the same value give different ciphertexts (fresh data key and nonce per version).
    cts = db.sql("SELECT ciphertext FROM hush.secret_versions ORDER BY version")
    assert len({bytes(c) for (c,) in cts}) == 2
