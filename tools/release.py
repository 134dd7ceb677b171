"""Freeze a version into releases/: `python3 tools/release.py VERSION` (hush.control's
default_version, once it is ready to ship).

It builds the version's scripts (tools/build_sql.py), copies its install script and its
update scripts into releases/, and records in releases/manifest.json what the release
shipped: those scripts and the incremental files it has run, each with its sha256.
From then on every build checks them: a shipped incremental file is frozen, and the
next version's changes go in new files. Then raise default_version in hush.control; the
build generates an update script from this release to the next.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_sql  # noqa: E402
import sql_layout  # noqa: E402


def release(version: str) -> None:
    scripts = sql_layout.scripts(version, build_sql.expand)  # refuses a version released already
    data = sql_layout.manifest()
    entry: dict[str, dict[str, str]] = {"scripts": {}, "incremental": {}}
    for name, text in scripts.items():
        path = sql_layout.RELEASES / name
        if path.exists():
            raise SystemExit(f"releases/{name} exists already")
        path.write_text(text)
        entry["scripts"][name] = sql_layout.sha256(path)
    for path in sql_layout.incremental_files():
        entry["incremental"][path.name] = sql_layout.sha256(path)
    data[version] = entry
    sql_layout.MANIFEST.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    release(sys.argv[1])
