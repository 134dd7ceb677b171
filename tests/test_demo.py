"""`make demo` keeps working: the walkthrough runs start to finish on its own cluster."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs(cluster):  # `cluster` only ensures the extension is installed
    r = subprocess.run([sys.executable, str(ROOT / "demo" / "demo.py")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "sk_test_acme_2" in out and "sk_test_globex_1" in out
    assert "SQLSTATE SH020: hush: role acme_app may not act on tenant 'glob...' (6 chars)" in out
    assert "SQLSTATE SH013" in out and "permission denied for table secrets" in out
    assert "new_version" in out and "cluster stopped and removed" in out
    staged = out.split("a staged rotation")[1].split("==")[0]  # the current value stays until promote
    assert "postgresql://acme:pw@db/acme  2        current" in staged and "3        pending" in staged
    assert "3        True        current" in staged and "2        False       previous" in staged
    assert "rotation_due" in staged and "promote" in staged
    rolled_back = out.split("the record of its read stays")[1].split("==")[0]
    assert "read" in rolled_back and "database_url" in rolled_back and "acme_app" in rolled_back
    assert "value='***'" in out and "hush.TenantAccessDenied [SH020]" in out  # the Python client
    assert "imported 2 secrets into acme" in out and "env/REGION" in out  # the CLI
    assert "REGION=eu-west-1; API_TOKEN is 7 characters long" in out and "tok_123" not in out
