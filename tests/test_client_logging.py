"""The `hush` logger: each call at DEBUG (function, tenant, rows, time), never a value."""
from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from typing import Any

import pytest

import hush


def test_debug_logs_each_call_and_never_a_value(db: Any, caplog: pytest.LogCaptureFixture) -> None:
    value = f"log-canary-{uuid.uuid4()}"
    with caplog.at_level(logging.DEBUG, logger="hush"), hush.connect(db.dsn("alice")) as client:
        acme = client.tenant("acme")
        acme.save("k", value)
        assert acme.get("k").value == value
        acme.get_many(["k"])
    lines = [r.getMessage() for r in caplog.records if r.name == "hush"]
    assert any(line.startswith("hush.save_secret tenant=acme: 1 rows in ") for line in lines), lines
    assert any(line.startswith("hush.get_secrets tenant=acme: 1 rows in ") for line in lines), lines
    assert value not in caplog.text


def test_hush_debug_env_switches_it_on(db: Any) -> None:
    code = ("import hush; c = hush.connect(%r); c.tenant('acme').exists('k'); c.close()" % db.dsn("alice"))
    r = subprocess.run([sys.executable, "-c", code], env={"HUSH_DEBUG": "1", "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "hush DEBUG hush.secret_exists tenant=acme: 1 rows in" in r.stderr
    quiet = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                           text=True, timeout=60)
    assert quiet.stderr == ""
