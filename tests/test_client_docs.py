"""The Python client's reference and surface: docs/python.md is what the
docstrings render to, the async twin has every method of the sync API, and
the package passes mypy --strict."""
from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import hush
import hush.aio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import pydoc_md


def test_docs_python_md_is_current() -> None:
    assert (ROOT / "docs" / "python.md").read_text() == pydoc_md.render(), \
        "docs/python.md is stale: run .venv/bin/python tools/pydoc_md.py > docs/python.md"


def public(cls: type) -> dict[str, inspect.Signature]:
    return {n: inspect.signature(m) for n, m in vars(cls).items() if not n.startswith("_") and callable(m)}


def test_async_twin_has_the_same_methods_and_signatures() -> None:
    sync, aio = public(hush.Secrets), public(hush.aio.AsyncSecrets)
    assert set(sync) == set(aio)
    for name, sig in sync.items():
        assert list(sig.parameters) == list(aio[name].parameters), name  # (tests/test_client_surface.py: all twins)
    for name in ("save", "get", "get_by_id", "update", "delete", "restore", "destroy", "list", "search", "exists",
                 "versions"):
        assert name in sync  # the method list


def test_package_passes_mypy_strict() -> None:
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "src"], cwd=ROOT / "python_client",
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (ROOT / "python_client" / "src" / "hush" / "py.typed").exists()
