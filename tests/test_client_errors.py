"""Every SQLSTATE hush documents arrives in Python as its own exception class,
raised by the real server through the client, as non-superuser roles."""
from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import hush
import psycopg
import pytest
from hush import _errors

ROOT = Path(__file__).resolve().parent.parent
ERRORS_PAGE = ROOT / "docs" / "errors.md"


@pytest.fixture
def acme(db: Any) -> Iterator[hush.Secrets]:
    db.sql("SELECT hush.configure_tenant('acme', max_value_bytes => 100)")
    with db.connect("alice") as conn:
        s = hush.Secrets(conn, "acme")
        s.save("live", "v1")
        s.save("live", "v2")
        s.save("gone", "v")
        s.delete("gone")
        s.save("old", "v", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
        s.save("burnt", "v")
        s.save("burnt", "v2")
        s.destroy("burnt", [1])
        yield s


def _tamper(db: Any, name: str, set_sql: str) -> None:
    db.sql(f"""UPDATE hush.secret_versions SET {set_sql}
                WHERE tenant_id = 'acme' AND secret_id = (SELECT id FROM hush.secrets
                                                            WHERE tenant_id = 'acme' AND name = %s)""", [name])


CASES: list[tuple[str, type[hush.HushError], Callable[[hush.Secrets, Any], object]]] = [
    ("SH001", hush.InvalidName, lambda s, db: s.save("", "v")),
    ("SH002", hush.InvalidTenant, lambda s, db: hush.Secrets(s._exec, "no spaces allowed").get("x")),
    ("SH003", hush.ValueTooLarge, lambda s, db: s.save("big", "x" * 101)),
    ("SH004", hush.InvalidArgument, lambda s, db: s.list(per_page=0)),
    ("SH010", hush.SecretNotFound, lambda s, db: s.get("missing")),
    ("SH011", hush.VersionNotFound, lambda s, db: s.get("live", version=9)),
    ("SH012", hush.SecretExpired, lambda s, db: s.get("old")),
    ("SH013", hush.VersionConflict, lambda s, db: s.save("live", "v3", expected_version=1)),
    ("SH014", hush.SecretDeleted, lambda s, db: s.save("gone", "v")),
    ("SH015", hush.VersionDestroyed, lambda s, db: s.get("burnt", version=1)),
    ("SH020", hush.TenantAccessDenied, lambda s, db: hush.Secrets(s._exec, "globex").get("x")),
]


@pytest.mark.parametrize("code,cls,call", CASES, ids=[c[0] for c in CASES])
def test_each_sqlstate_has_its_class(acme: hush.Secrets, db: Any, code: str, cls: type, call: Any) -> None:
    with pytest.raises(hush.HushError) as ei:
        call(acme, db)
    assert type(ei.value) is cls and ei.value.code == code
    assert isinstance(ei.value.__cause__, psycopg.Error) and ei.value.__cause__.sqlstate == code
    assert not str(ei.value).startswith("hush: ") and str(ei.value)


def test_read_only_transaction(acme: hush.Secrets, db: Any) -> None:
    with db.connect("alice", autocommit=False) as conn:
        conn.read_only = True
        assert hush.Secrets(conn, "acme").get("live").value  # a read is served, its record committed apart
        with pytest.raises(hush.ReadOnlyWrite) as ei:
            hush.Secrets(conn, "acme").save("other", "v")
        assert ei.value.code == "SH021" and hush.AuditedReadOnly is hush.ReadOnlyWrite


def test_missing_root_key(acme: hush.Secrets, db: Any) -> None:
    db.sql("INSERT INTO hush.root_keys (key_id) VALUES (repeat('f', 32))")
    _tamper(db, "live", "key_id = repeat('f', 32)")
    with pytest.raises(hush.KeyUnavailable) as ei:
        acme.get("live")
    assert ei.value.code == "SH030" and "f" * 32 in str(ei.value)


def test_tampered_ciphertext(acme: hush.Secrets, db: Any) -> None:
    _tamper(db, "live", "ciphertext = set_byte(ciphertext, 30, get_byte(ciphertext, 30) # 255)")
    with pytest.raises(hush.DecryptionFailed) as ei:
        acme.get("live", version=2)
    assert ei.value.code == "SH031"


def test_audit_append_only(acme: hush.Secrets, db: Any) -> None:
    with db.connect() as su, pytest.raises(psycopg.Error) as ei:
        su.execute("DELETE FROM hush.audit_log")
    err = _errors.translate(ei.value)
    assert type(err) is hush.AuditAppendOnly and err.code == "SH040"


def test_role_without_hush_role(db: Any) -> None:
    with db.connect("otto") as conn, pytest.raises(hush.PermissionDenied) as ei:
        hush.Secrets(conn, "acme").get("x")
    assert ei.value.code == "42501"


def test_other_errors_pass_through_untouched(db: Any) -> None:
    with db.connect("alice") as conn:
        conn.execute("SET statement_timeout = 1")
        with pytest.raises(psycopg.errors.QueryCanceled):  # 57014 is not hush's: not translated
            hush.Secrets(conn, "acme").save_many({f"k{i}": "v" for i in range(5000)})


def _errors_md() -> Any:
    """tools/errors_md.py: the server's codes, and the table docs/errors.md holds."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import errors_md
    finally:
        sys.path.pop(0)
    return errors_md


def test_every_documented_sqlstate_has_a_class() -> None:
    documented = re.findall(r"^\| (SH\d{3}|42501) \|", ERRORS_PAGE.read_text(), re.M)
    assert len(documented) >= 16
    for code in documented:
        err = _errors.from_sqlstate(code, "m")
        assert type(err) is not hush.HushError and err.code == code, code
        assert type(err).__name__ in hush.__all__
    assert type(_errors.from_sqlstate("SH999", "from a newer server")) is hush.HushError


def test_every_server_code_has_a_class() -> None:
    """Each code the server's table (hush_plpy.errors.CODES) holds arrives as a class of its own."""
    codes = _errors_md().codes()
    assert len(codes) >= 30
    for code in codes:
        assert type(_errors.from_sqlstate(code, "m")) is not hush.HushError, code


def test_errors_page_table_is_generated_from_the_server_codes() -> None:
    """docs/errors.md's table is what tools/errors_md.py renders from CODES and the client."""
    errors_md = _errors_md()
    page = ERRORS_PAGE.read_text()
    assert errors_md.written(page) == page, \
        "docs/errors.md's SQLSTATE table is stale: run python3 tools/errors_md.py --write"
    assert all(f"| {code} |" in page for code in errors_md.codes())
