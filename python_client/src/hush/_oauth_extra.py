"""hush's OAuth stack (authlib, httpx2, joserfc) is the optional extra
`hush-client[oauth]`: without it, the OAuth modules fail to import with what
to install rather than a bare ModuleNotFoundError from deep inside."""
from __future__ import annotations

STACK = ("authlib", "httpx2", "joserfc")
INSTALL = "pip install 'hush-client[oauth]'"


class OAuthExtraMissing(ImportError):
    """An OAuth feature was used without the [oauth] extra installed."""


def missing(e: ModuleNotFoundError) -> ImportError:
    """OAuthExtraMissing when the module not found is part of the OAuth stack; otherwise e, as it is."""
    package = (e.name or "").split(".")[0]
    if package not in STACK:
        return e
    return OAuthExtraMissing(f"hush's OAuth features need the [oauth] extra ({package} is not installed): {INSTALL}")
