"""What starting hush costs and needs: `import hush` and `hush --help` load
neither psycopg nor the OAuth stack, OAuth without its extra says what to
install, and `hush --version` reports both versions and whether they fit.
Asserted on what gets imported, never on timings."""
from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from typing import Any

import pytest

import hush
from hush import _version
from test_cli import HUSH, hush as run_hush, invoke, ok

OAUTH_STACK = ("authlib", "httpx2", "joserfc")
HEAVY = ("psycopg", *OAUTH_STACK)


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_import_hush_loads_no_driver_and_no_oauth_stack() -> None:
    r = python(f"import sys, hush; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    # ...until they are used: `from hush import OAuth` keeps working, and brings the stack in.
    r = python("import sys; from hush import OAuth, TokenSet, Secrets; import hush; "
               f"print(OAuth is hush._oauth.OAuth, sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert r.stdout.strip().split(None, 1) == ["True", str(sorted(HEAVY))], r.stdout + r.stderr


def test_hush_help_imports_no_command_module() -> None:
    r = subprocess.run([sys.executable, "-X", "importtime", HUSH, "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "hush.cli" in imported  # the listing is what we think it is...
    assert not {m for m in imported if m.split(".")[0] in HEAVY}  # ...and no driver or OAuth in it
    assert not {m for m in imported if m.startswith("hush.cli._") and m != "hush.cli._exits"}
    for name in ("put", "import", "audit", "oauth-worker", "dev"):
        assert re.search(rf"^  {re.escape(name)}\s", r.stdout, re.M), r.stdout
    assert "Exit codes" in r.stdout


def test_every_listed_command_loads_with_its_name() -> None:
    from hush.cli import COMMANDS
    for name in COMMANDS:
        command = invoke(name, "--help")
        assert command.returncode == 0 and command.stdout.startswith(f"Usage: hush {name} "), command.stdout


BLOCK_OAUTH = "import sys\nfor m in ('authlib', 'httpx2', 'joserfc'):\n    sys.modules[m] = None\n"


def test_oauth_without_its_extra_says_what_to_install() -> None:
    r = python(BLOCK_OAUTH + "import hush\ntry:\n    from hush import OAuth\nexcept ImportError as e:\n"
               "    print(type(e).__mro__[1].__name__, e)\n")
    assert r.stdout.startswith("ImportError ") and "pip install 'hush-client[oauth]'" in r.stdout, r.stdout + r.stderr
    r = python(BLOCK_OAUTH + "sys.argv = ['hush', 'oauth', 'provider', 'ls', 'acme']\n"
               "from hush.cli import main\nmain()\n")
    assert r.returncode == 1 and r.stderr.startswith("Error: hush's OAuth features need"), r.stderr
    assert "pip install 'hush-client[oauth]'" in r.stderr and "Traceback" not in r.stderr
    # Secrets need none of it.
    r = python(BLOCK_OAUTH + "from hush.cli import main\nsys.argv = ['hush', 'put', '--help']\nmain()\n")
    assert r.returncode == 0 and "Usage: hush put" in r.stdout, r.stderr


def test_version_shows_client_and_extension(db: Any) -> None:
    r = ok(run_hush(db, "--version"))
    (extversion,), = db.sql("SELECT extversion FROM pg_extension WHERE extname = 'hush'")
    assert r.stdout.splitlines() == [f"hush client {hush.__version__} (supports extension 0.4.x, 0.5.x)",
                                     f"hush extension {extversion} (database {db.name})"]
    assert r.stderr == ""  # this client supports the extension it is tested with
    assert hush.__version__ == importlib.metadata.version("hush-client")


@pytest.mark.parametrize("supported,advice", [(("9.9",), "ALTER EXTENSION hush UPDATE"),
                                               (("0.1", "0.2"), "pip install -U hush-client")])
def test_version_warns_when_client_and_extension_do_not_fit(db: Any, monkeypatch: pytest.MonkeyPatch,
                                                            supported: tuple[str, ...], advice: str) -> None:
    monkeypatch.setattr(_version, "SUPPORTED_EXTENSION_SERIES", supported)
    r = ok(run_hush(db, "--version"))
    (extversion,), = db.sql("SELECT extversion FROM pg_extension WHERE extname = 'hush'")
    assert f"hush extension {extversion}" in r.stdout
    assert r.stderr.startswith(f"warning: this client supports hush extension {supported[0]}.x") and advice in r.stderr


def test_version_without_a_database() -> None:
    r = ok(invoke("--dsn", "host=/nonexistent port=1", "--version"))
    assert r.stdout.splitlines()[0].startswith(f"hush client {hush.__version__}")
    assert r.stdout.splitlines()[1].startswith("hush extension: unknown (cannot connect")


def test_supported_extension_versions() -> None:
    assert _version.supports_extension("0.4.0") and _version.supports_extension("0.5.3")
    assert not _version.supports_extension("0.3.0") and not _version.supports_extension("0.40.0")
    assert not _version.supports_extension("1.4.0")
