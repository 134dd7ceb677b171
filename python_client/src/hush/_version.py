"""The client's version and the extension versions it works with.

The client calls hush.* functions by name and shape, so it works with the
extension series whose functions it knows: the current one and the next,
whose surface is frozen before the client that needs it ships.
"""
from __future__ import annotations

__version__ = "0.1.0"

# Extension series (major.minor) this client supports; `hush --version` warns outside them.
SUPPORTED_EXTENSION_SERIES = ("0.4", "0.5")


def supports_extension(version: str) -> bool:
    """Whether an extension version (pg_extension.extversion, e.g. '0.4.0') is one this client supports."""
    return ".".join(version.split(".")[:2]) in SUPPORTED_EXTENSION_SERIES


def supported_range() -> str:
    return ", ".join(f"{s}.x" for s in SUPPORTED_EXTENSION_SERIES)
