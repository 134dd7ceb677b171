"""Bad input: a clear error with a stable SQLSTATE, and nothing written."""
from __future__ import annotations

import pytest

from helpers import get, raises_sqlstate, save


def _counts(db):
    return db.sql("SELECT (SELECT count(*) FROM hush.secrets), (SELECT count(*) FROM hush.secret_versions),"
                  " (SELECT count(*) FROM hush.audit_log)")[0]


@pytest.mark.parametrize("name", [
    "",
    "x" * 256,
    "tab\there",
    "nul-free but \x01 control",
    "del\x7f",
    "c1\x85next-line",
    "c1\x9f",
])
def test_bad_names(db, name):
    before = _counts(db)
    with db.connect("alice") as conn, raises_sqlstate("SH001") as ei:
        save(conn, "acme", name, "value-123")
    assert "value-123" not in str(ei.value)
    assert _counts(db) == before


def test_name_limits_accept_255_and_unicode(db):
    with db.connect("alice") as conn:
        save(conn, "acme", "n" * 255, "v")
        save(conn, "acme", "ключ/秘密", "v")
        assert get(conn, "acme", "ключ/秘密")["value"] == "v"


@pytest.mark.parametrize("tenant", ["", "*", "has space", "-lead", "x" * 64, "semi;colon", "ünï", None])
def test_bad_tenants(db, tenant):
    before = _counts(db)
    with db.connect("alice") as conn, raises_sqlstate("SH002"):
        save(conn, tenant, "k", "v")
    assert _counts(db) == before


def test_value_limit(db):
    before = _counts(db)
    with db.connect("alice") as conn:
        with raises_sqlstate("SH003") as ei:
            save(conn, "acme", "big", "é" * 32769)  # 65538 bytes of UTF-8, 32769 characters
        assert "éé" not in str(ei.value)
        assert _counts(db) == before
        with raises_sqlstate("SH004"):
            conn.execute("SELECT hush.save_secret('acme', 'k', NULL)")
        save(conn, "acme", "max", "é" * 32768)  # exactly 65536 bytes


def test_tenant_value_limit_is_configurable(db):
    with db.connect("adam") as adm:
        adm.execute("SELECT hush.configure_tenant('acme', max_value_bytes => 10)")
    with db.connect("alice") as conn:
        save(conn, "acme", "k", "0123456789")
        with raises_sqlstate("SH003"):
            save(conn, "acme", "k", "0123456789a")


@pytest.mark.parametrize("kw,code", [
    ({"kind": "Not A Kind"}, "SH004"),
    ({"metadata": "[1, 2]"}, "SH004"),
    ({"metadata": '"string"'}, "SH004"),
    ({"tags": [""]}, "SH004"),
    ({"tags": ["x" * 65]}, "SH004"),
    ({"description": "d" * 4097}, "SH004"),
    ({"expected_version": -1}, "SH004"),
])
def test_bad_fields(db, kw, code):
    before = _counts(db)
    with db.connect("alice") as conn, raises_sqlstate(code):
        save(conn, "acme", "k", "v", **kw)
    assert _counts(db) == before


def test_bad_version_argument(db):
    with db.connect("alice") as conn:
        save(conn, "acme", "k", "v")
        with raises_sqlstate("SH004"):
            get(conn, "acme", "k", 0)
