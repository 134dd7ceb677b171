"""The docs' "Secret lifecycle" Python example, run as it is written, as a writer of
tenant acme on a real server; then what it promises is checked in the database."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import hush
from docs_text import blocks, page_of, section

TITLE = "Secret lifecycle"


def _example() -> str:
    return blocks(section(TITLE), "python")[0]


def test_readme_lifecycle_example_runs(db: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("HUSH_DSN", db.dsn("alice"))
    accepted: list[str] = []
    with db.connect("alice") as conn:  # something due within the week, for the loop to print
        hush.Secrets(conn, "acme").save("tls_cert", "pem", expires_at=datetime.now(timezone.utc) + timedelta(days=3))
    scope: dict[str, Any] = {"old_password": "pw-old", "new_password": "pw-new",
                             "set_database_password": accepted.append}
    exec(compile(_example(), page_of(TITLE), "exec"), scope)
    scope["client"].close()
    assert accepted == ["pw-new"]  # the rotation job saw the pending value before promoting it
    assert scope["password"] == "pw-old"  # the cache read the rolled-back value
    assert "tls_cert expiring" in capsys.readouterr().out
    with db.connect("alice") as conn:
        acme = hush.Secrets(conn, "acme")
        now = acme.get("db_password")
        assert (now.value, now.version, now.stage) == ("pw-old", 3, "current")
        assert acme.get("db_password", stage="previous").value == "pw-new"
        meta = acme.list(prefix="db_password").data[0]
        assert (meta.max_versions, meta.rotate_every.days) == (5, 30)
        assert [v.stage for v in acme.versions("db_password")] == [None, "previous", "current"]
    with db.connect("audrey") as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM hush.audit_log WHERE tenant_id = 'acme' AND secret_name = 'db_password' "
            "AND action <> 'read' ORDER BY txid, id").fetchall()]
    assert actions == ["create", "pending_version", "promote", "rollback"]
