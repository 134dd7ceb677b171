"""Seals: a SHA-256 chain over the audit trail that verify_audit recomputes.
Tampering is done the way a superuser would, behind hush's back (triggers off
with session_replication_role = replica), and each kind must be caught."""
from __future__ import annotations

import psycopg
import pytest

from helpers import get, raises_sqlstate, rows, save


def activity(db, n: int = 3) -> None:
    with db.connect("alice") as a:
        for i in range(n):
            save(a, "acme", f"k{i}", f"v{i}")
            get(a, "acme", f"k{i}")
    with db.connect("bob") as b:
        save(b, "globex", "g", "v")


def seal(conn: psycopg.Connection) -> dict:
    return rows(conn, "SELECT * FROM hush.seal_audit()")[0]


def verify(conn: psycopg.Connection, since: object = None) -> dict:
    return rows(conn, "SELECT * FROM hush.verify_audit(%s)", [since])[0]


def behind_hushs_back(db, *statements: str) -> None:
    with db.connect() as su:
        su.execute("SET session_replication_role = replica")  # no triggers
        for q in statements:
            su.execute(q)


def test_seal_then_verify_under_any_session_settings(db):
    activity(db)
    with db.connect("audrey") as aud:
        aud.execute("SET TimeZone = 'Asia/Kathmandu'")
        aud.execute("SET DateStyle = 'German, DMY'")
        s = seal(aud)
        assert s["seals_created"] == 1 and s["rows_sealed"] > 0 and s["unsealed_rows"] == 0
        assert len(s["head_hash"]) == 64
    activity(db, 1)
    with db.connect("adam") as adm:
        adm.execute("SET TimeZone = 'America/St_Johns'")
        adm.execute("SET bytea_output = 'escape'")
        adm.execute("SET extra_float_digits = -10")
        v = verify(adm)
        assert v["ok"] and v["seals_checked"] == 1 and v["unsealed_rows"] == 3 and v["head_hash"] == s["head_hash"]
        s2 = seal(adm)
        assert s2["seals_created"] == 1 and s2["rows_sealed"] == 3 and s2["head_hash"] != s["head_hash"]
        # Nothing new: no empty seal.
        assert seal(adm)["seals_created"] == 0
        v = verify(adm)
        assert v == {**v, "ok": True, "seals_checked": 2, "unsealed_rows": 0, "problem": None}
        total = adm.execute("SELECT count(*) FROM hush.audit_log").fetchone()[0]
        assert v["rows_checked"] == total
    # The chain links each seal to the one before.
    seals = db.sql("SELECT id, prev_hash, hash FROM hush.audit_seals ORDER BY id")
    assert seals[0][1] is None and seals[1][1] == seals[0][2]
    for role in ("alice", "rita", "otto"):
        with db.connect(role) as conn:
            for q in ("SELECT hush.seal_audit()", "SELECT hush.verify_audit()"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(q)


TAMPERING = {
    # an edited row, a deleted row, a forged row slipped under a seal
    "rows_changed": ["UPDATE hush.audit_log SET secret_name = 'k9' WHERE action = 'read' AND secret_name = 'k1'"],
    "rows_missing": ["DELETE FROM hush.audit_log WHERE action = 'read' AND secret_name = 'k0'"],
    "rows_added": ["""INSERT INTO hush.audit_log (tenant_id, action, secret_name, txid, id)
                      SELECT 'acme', 'read', 'forged', txid, id + 1000000 FROM hush.audit_log
                       WHERE action = 'read' AND secret_name = 'k1'"""],
    # a seal's own fields; a seal removed; two seals swapped, their hashes recomputed
    "seal_altered": ["UPDATE hush.audit_seals SET row_count = row_count + 1 WHERE id = 1"],
    "chain_broken": ["DELETE FROM hush.audit_seals WHERE id = 1"],
    "chain_broken ": ["UPDATE hush.audit_seals SET id = -id WHERE id IN (1, 2)",
                      "UPDATE hush.audit_seals SET id = 3 + id WHERE id IN (-1, -2)",
                      """UPDATE hush.audit_seals SET hash = hush._seal_digest(id, kind, sealed_at, after_txid, after_id,
                             last_txid, last_id, row_count, rows_hash, prev_hash)"""],
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_verify_names_the_first_seal_that_differs(db, kind):
    activity(db, 2)
    with db.connect("audrey") as aud:
        seal(aud)
    activity(db, 1)
    with db.connect("audrey") as aud:
        seal(aud)
        assert verify(aud)["ok"]
    behind_hushs_back(db, *TAMPERING[kind])
    with db.connect("audrey") as aud:
        v = verify(aud)
    assert v["ok"] is False and v["problem"] == kind.strip(), v
    assert v["bad_seal_id"] in (1, 2) and v["detail"]
    if kind.strip().startswith("rows"):
        assert v["bad_seal_id"] == 1 and "sealed" in v["detail"]


def test_a_late_commit_never_slips_under_a_seal(db):
    """A row with a smaller id that commits after a seal was taken: the horizon
    leaves it (and everything after it) for the next seal."""
    activity(db, 1)  # the first save registers the root key; later saves do not wait on one another
    with db.connect("alice", autocommit=False) as slow, db.connect("bob") as fast, db.connect("audrey") as aud:
        save(slow, "acme", "slow", "v")           # txid and id taken, not committed
        save(fast, "globex", "fast", "v")          # a later id, committed
        s = seal(aud)
        visible = db.sql("SELECT count(*) FROM hush.audit_log")[0][0]
        assert s["rows_sealed"] == visible - 1     # all but fast's row (slow's is not visible yet)
        assert s["unsealed_rows"] == 1
        slow.commit()
        s = seal(aud)
        assert s["rows_sealed"] == 2 and s["unsealed_rows"] == 0
        v = verify(aud)
        assert v["ok"] and v["unsealed_rows"] == 0


def test_sealing_blocks_no_secret_call(db):
    activity(db, 1)
    with db.connect("audrey", autocommit=False) as aud, db.connect("alice") as a:
        seal(aud)  # its transaction stays open, holding what sealing holds
        a.execute("SET lock_timeout = '2s'")
        save(a, "acme", "during", "v")
        assert get(a, "acme", "during")["value"] == "v"
        aud.commit()


def test_verify_since_checks_only_recent_seals(db):
    activity(db, 1)
    with db.connect("audrey") as aud:
        seal(aud)
        mark = aud.execute("SELECT clock_timestamp()").fetchone()[0]
    activity(db, 1)
    with db.connect("audrey") as aud:
        seal(aud)
    behind_hushs_back(db, "DELETE FROM hush.audit_log WHERE action = 'grant_tenant'")  # under seal 1
    with db.connect("audrey") as aud:
        recent = verify(aud, mark)
        assert recent["ok"] and recent["seals_checked"] == 2
        assert recent["rows_checked"] == aud.execute("SELECT row_count FROM hush.audit_seals WHERE id = 2").fetchone()[0]
        assert verify(aud)["problem"] == "rows_missing"


def test_retention_will_not_re_seal_a_tampered_trail(db):
    with db.connect() as su:
        su.execute("INSERT INTO hush.audit_log (tenant_id, action, at) VALUES ('acme', 'ancient', now() - interval '3000 days')")
    activity(db, 1)
    with db.connect("audrey") as aud:
        seal(aud)
    behind_hushs_back(db, "UPDATE hush.audit_log SET secret_name = 'edited' WHERE action = 'create'")
    before = db.sql("SELECT count(*) FROM hush.audit_log")
    with db.connect("adam") as adm, raises_sqlstate("SH041"):
        adm.execute("SELECT * FROM hush.cleanup_audit_logs()")
    assert db.sql("SELECT count(*) FROM hush.audit_log") == before


def test_verify_with_a_head_hash_kept_elsewhere(db):
    """An auditor keeps each head hash outside the database; verify_audit(known_head => ...) says
    when the chain no longer holds that seal (tests/test_replicas.py loses one in a failover)."""
    activity(db)
    with db.connect("audrey") as aud:
        kept = seal(aud)["head_hash"]
        activity(db, 1)
        seal(aud)
        for head in (kept, kept.upper(), " " + kept):  # an older seal, as printed, pasted loosely
            assert rows(aud, "SELECT * FROM hush.verify_audit(known_head => %s)", [head])[0]["ok"]
        v = rows(aud, "SELECT * FROM hush.verify_audit(known_head => %s)", ["0" * 64])[0]
        assert (v["ok"], v["problem"], v["bad_seal_id"]) == (False, "seal_missing", None)
        assert "0" * 64 in v["detail"]
        for bad in ("", "abc", "g" * 64):
            with raises_sqlstate("SH004"):
                aud.execute("SELECT * FROM hush.verify_audit(known_head => %s)", [bad])
