"""Render the Python client's public API (signatures and docstrings) as docs/python.md.

    python tools/pydoc_md.py > docs/python.md

tests/test_client_docs.py checks that docs/python.md is what this prints, so
the reference cannot drift from the code.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import hush
import hush.aio

HEADER = """# hush Python client: API reference

Generated from the docstrings by `tools/pydoc_md.py` (a test keeps it current).
[The Python client guide](python-guide.md) is the tour; this page lists
everything public. Every method is one call of a `hush.*` SQL function, whose
behaviour and errors `docs/reference.md` describes in full.
"""


def _sig(obj: Any, name: str) -> str:
    sig = str(inspect.signature(obj))
    sig = re.sub(r"\(self,? ?", "(", sig)
    sig = re.sub(r"'([^']*)'", r"\1", sig).replace("builtins.", "")  # postponed annotations are strings
    return f"{name}{sig}"


def _doc(obj: Any) -> str:
    doc = inspect.getdoc(obj)
    return (doc + "\n") if doc else ""


def _methods(cls: type) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in cls.__dict__.items()
            if not n.startswith("_") and (inspect.isfunction(m) or isinstance(m, property))]


def _class(cls: type, prefix: str = "hush") -> str:
    out = [f"## `{prefix}.{cls.__name__}`\n", _doc(cls)]
    if dataclasses.is_dataclass(cls):
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls))
        out.append(f"Fields: {fields}.\n")
    for name, member in _methods(cls):
        if isinstance(member, property):
            out.append(f"### `{cls.__name__}.{name}` (property)\n\n{_doc(member.fget)}")
            continue
        asynchronous = "async " if inspect.iscoroutinefunction(member) else ""
        doc = _doc(member) or (f"As `{cls.__name__.removeprefix('Async')}.{name}`, awaited.\n" if asynchronous else "")
        out.append(f"### `{asynchronous}{cls.__name__}.{_sig(member, name)}`\n\n{doc}")
    return "\n".join(part for part in out if part)


def render() -> str:
    parts = [HEADER, "# Entry points\n"]
    parts.append(f"## `hush.{_sig(hush.connect, 'connect')}`\n\n{_doc(hush.connect)}")
    for cls in (hush.Client, hush.Secrets, hush.CachedSecrets):
        parts.append(_class(cls))
    parts.append(f"## `async hush.aio.{_sig(hush.aio.connect, 'connect')}`\n\n{_doc(hush.aio.connect)}")
    for cls in (hush.aio.AsyncClient, hush.aio.AsyncSecrets, hush.aio.AsyncCachedSecrets):
        parts.append(_class(cls, "hush.aio"))
    parts.append("# Administration\n")
    for cls in (hush.Tenants, hush.Keys, hush.Audit):
        parts.append(_class(cls))
    for cls in (hush.aio.AsyncTenants, hush.aio.AsyncKeys, hush.aio.AsyncAudit):
        parts.append(_class(cls, "hush.aio"))
    parts.append("# OAuth2 / OIDC\n")
    parts.append(_class(hush.OAuth))
    parts.append(_class(hush.aio.OAuth, "hush.aio"))
    parts.append(_class(hush.OAuthWorker))
    for cls in (hush.TokenSet, hush.AuthorizationRequest, hush.DeviceAuthorization, hush.Provider, hush.Connection,
                hush.OAuthEvent):
        parts.append(_class(cls))
    parts.append("# Helpers\n")
    for fn in (hush.get_secret, hush.save_secret, hush.update_secret, hush.delete_secret, hush.list_secrets,
               hush.search_secrets):
        parts.append(f"## `hush.{_sig(fn, fn.__name__)}`\n\n{_doc(fn)}")
    parts.append("# Results\n")
    for cls in (hush.Secret, hush.SavedSecret, hush.SecretMetadata, hush.SecretVersion, hush.Page, hush.SecretDue,
                hush.SecretChange, hush.SecretEvent):
        parts.append(_class(cls))
    for cls in (hush.TenantSettings, hush.AccessGrant, hush.AccessEntry, hush.RootKey, hush.RootKeyStatus, hush.RootKeyChange, hush.AuditRecord,
                hush.AuditSeal, hush.AuditVerification, hush.AuditPartition, hush.AuditCleanup, hush.PurgedSecrets,
                hush.MaintenanceJob, hush.AuditMaintenance, hush.SecretUpkeep):
        parts.append(_class(cls))
    parts.append("# Errors\n\nAll are `hush.HushError`; `.code` is the SQLSTATE, `.hint` the server's hint.\n")
    rows = ["| class | base | SQLSTATE | meaning |", "|---|---|---|---|"]
    for name in hush.__all__:
        cls = getattr(hush, name)
        if isinstance(cls, type) and issubclass(cls, hush.HushError):
            base = cls.__mro__[1].__name__
            meaning = (inspect.getdoc(cls) or "").split("\n")[0] if "__doc__" in cls.__dict__ else ""
            rows.append(f"| `{name}` | `{base}` | {cls.sqlstate or ''} | {meaning} |")
    parts.append("\n".join(rows) + "\n")
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)


if __name__ == "__main__":
    print(render(), end="")
