"""The Python client's surface, without a server: every public method and
property of the sync API has an asyncio twin in hush.aio with the same
parameters (names, kinds, defaults, annotations), every public name of `hush`
resolves, and the client's page size agrees with the server's clamp."""
from __future__ import annotations

import inspect
from typing import Any

import pytest

import hush
import hush.aio
from helpers import imported
from hush import _calls

TWINS = [(hush.Secrets, hush.aio.AsyncSecrets), (hush.Client, hush.aio.AsyncClient),
         (hush.Tenants, hush.aio.AsyncTenants), (hush.Keys, hush.aio.AsyncKeys), (hush.Audit, hush.aio.AsyncAudit),
         (hush.OAuth, hush.aio.OAuth)]
# What the sync API alone has, and why (hush.OAuthWorker: the worker is a process of its own).
SYNC_ONLY: dict[tuple[type, str], str] = {}
# Methods that make an object without a round trip: plain functions on both sides.
FACTORIES = {"tenant", "cached"}


def members(cls: type) -> dict[str, Any]:
    return {n: m for n, m in vars(cls).items()
            if not n.startswith("_") and (inspect.isfunction(m) or isinstance(m, property))}


def is_async(fn: Any) -> bool:
    """A coroutine function, an async generator, or an @asynccontextmanager."""
    fn = getattr(fn, "__wrapped__", fn)
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def params(fn: Any) -> list[tuple[str, Any, Any, str]]:
    return [(p.name, p.kind, p.default, str(p.annotation).replace("Async", ""))
            for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("sync,aio", TWINS, ids=[s.__name__ for s, _ in TWINS])
def test_every_sync_method_has_an_async_twin_with_the_same_parameters(sync: type, aio: type) -> None:
    ours, theirs = members(sync), members(aio)
    expected = {n for n in ours if (sync, n) not in SYNC_ONLY}
    assert set(theirs) == expected, f"{aio.__name__}: missing {expected - set(theirs)}, extra {set(theirs) - expected}"
    for name in sorted(expected):
        s, a = ours[name], theirs[name]
        if isinstance(s, property):
            assert isinstance(a, property), name
            continue
        assert not is_async(s), f"{sync.__name__}.{name} is async"
        assert is_async(a) == (name not in FACTORIES), f"{aio.__name__}.{name}: async or not?"
        assert params(a) == params(s), f"{aio.__name__}.{name}{inspect.signature(a)} != {inspect.signature(s)}"


def test_every_public_name_resolves() -> None:
    for name in hush.__all__:
        assert getattr(hush, name) is not None, name
    for name in hush.aio.__all__:
        assert getattr(hush.aio, name) is not None, name
    assert {"Tenants", "Keys", "Audit", "AUDIT_ACTIONS", "RootKeyStatus", "AuditRecord"} <= set(hush.__all__)


def test_page_size_is_the_servers_clamp() -> None:
    """Page.per_page says what the server used: the client's copy of its clamp is the server's."""
    validate = imported("hush_plpy.validate")
    assert _calls.MAX_PER_PAGE == validate.MAX_PER_PAGE
    shape = _calls.list_("acme", page=1, per_page=5000, prefix=None, tags=None, include_deleted=False,
                         after=None).shape
    assert shape([]).per_page == validate.MAX_PER_PAGE
    assert _calls.search("acme", "q", page=1, per_page=20, after=None).shape([]).per_page == 20
