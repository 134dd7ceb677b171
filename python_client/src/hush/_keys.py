"""hush.Keys (and hush.aio.AsyncKeys): root key rotation, for hush_admin.

Key ids only: no key material ever reaches the client. Rotation (docs/keys.md, "Key
rotation"): add the new key to the server's keyring, then keys.add(id),
keys.activate(id), keys.rewrap(), keys.retire(old_id).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from . import _admin_calls as q
from ._admin_models import RootKey, RootKeyChange, RootKeyStatus
from ._calls import Call
from ._errors import InvalidArgument
from ._exec import executor_for
from ._notices import async_autocommit, async_notices, autocommit, notices

Progress = Callable[[int, int], None]

REWRAP_ALONE = ("rewrap commits batch by batch, as CALL hush.rewrap() does: run it on an autocommit connection "
                "outside a transaction (the client's pool, or psycopg.connect(..., autocommit=True))")


def _check_pause(pause_ms: int) -> None:
    if pause_ms is None or pause_ms < 0:
        raise InvalidArgument("pause_ms must be 0 or more")


def _to_rewrap(keys: list[RootKey]) -> int:
    """The data keys a rewrap will move: those sealed by any key but the active one."""
    return sum(k.data_keys for k in keys if k.state != "active")


class Keys:
    """Root keys (needs hush_admin): their state, registering one from the server's keyring,
    activating it, re-sealing data keys under it, retiring the old one.

    `conn` is what hush.Secrets takes. The server's WARNINGs (a keyring it cannot read, a
    standby whose keyring lacks a key) come back in the results' `warnings`; they are caught on
    a psycopg connection (over SQLAlchemy, when its driver is psycopg)."""

    def __init__(self, conn: Any) -> None:
        self._exec = executor_for(conn)

    def __repr__(self) -> str:
        return "Keys()"

    def _warned(self, call: Call[Any]) -> tuple[Any, list[str]]:
        with notices(self._exec) as (executor, warnings):
            result = executor.run([call])[0]
        return result, list(warnings)

    def status(self) -> RootKeyStatus:
        """Every registered key (active, decrypt_only, retired), then the keyring's keys not
        registered yet (unregistered); `warnings` says why the keyring could not be read."""
        keys, warnings = self._warned(q.root_key_status())
        return RootKeyStatus(keys, warnings)

    def add(self, key_id: str) -> RootKeyChange:
        """Register a key of the server's keyring (decrypt_only until activated)."""
        return RootKeyChange(key_id, *self._warned(q.root_key("add", key_id)))

    def activate(self, key_id: str) -> RootKeyChange:
        """Seal new data keys with this registered key from now on; the old active key keeps decrypting."""
        return RootKeyChange(key_id, *self._warned(q.root_key("activate", key_id)))

    def retire(self, key_id: str) -> RootKeyChange:
        """Retire a key that is not active and seals no data key (RootKeyInUse otherwise)."""
        return RootKeyChange(key_id, *self._warned(q.root_key("retire", key_id)))

    def rewrap(self, *, batch_size: int = 1000, pause_ms: int = 0, progress: Progress | None = None) -> int:
        """Re-seal every data key under the active root key, batch by batch, as CALL
        hush.rewrap() does: each batch commits on its own, so an interrupted rewrap resumes
        where it stopped. Values' ciphertext is never touched. `progress(done, total)` after
        each batch; `pause_ms` between batches. Returns how many data keys were re-sealed.
        Refused inside a transaction, and wherever hush cannot tell (SQLAlchemy over a driver
        other than psycopg): InvalidArgument."""
        _check_pause(pause_ms)
        if autocommit(self._exec) is not True:  # unknown (a driver that does not say): refuse
            raise InvalidArgument(REWRAP_ALONE)
        total = _to_rewrap(self._exec.run([q.root_key_status()])[0])
        done = 0
        while n := self._exec.run([q.rewrap_batch(batch_size)])[0]:
            done += n
            if progress is not None:
                progress(done, max(total, done))
            if pause_ms:
                time.sleep(pause_ms / 1000)
        return done


class AsyncKeys:
    """hush.Keys, awaited, over what hush.aio.AsyncSecrets takes."""

    def __init__(self, conn: Any) -> None:
        from .aio import _executor_for
        self._exec = _executor_for(conn)

    def __repr__(self) -> str:
        return "AsyncKeys()"

    async def _warned(self, call: Call[Any]) -> tuple[Any, list[str]]:
        async with async_notices(self._exec) as (executor, warnings):
            result = (await executor.run([call]))[0]
        return result, list(warnings)

    async def status(self) -> RootKeyStatus:
        keys, warnings = await self._warned(q.root_key_status())
        return RootKeyStatus(keys, warnings)

    async def add(self, key_id: str) -> RootKeyChange:
        return RootKeyChange(key_id, *await self._warned(q.root_key("add", key_id)))

    async def activate(self, key_id: str) -> RootKeyChange:
        return RootKeyChange(key_id, *await self._warned(q.root_key("activate", key_id)))

    async def retire(self, key_id: str) -> RootKeyChange:
        return RootKeyChange(key_id, *await self._warned(q.root_key("retire", key_id)))

    async def rewrap(self, *, batch_size: int = 1000, pause_ms: int = 0, progress: Progress | None = None) -> int:
        """As Keys.rewrap, awaited: the pause does not block the event loop."""
        _check_pause(pause_ms)
        if await async_autocommit(self._exec) is not True:
            raise InvalidArgument(REWRAP_ALONE)
        total = _to_rewrap((await self._exec.run([q.root_key_status()]))[0])
        done = 0
        while n := (await self._exec.run([q.rewrap_batch(batch_size)]))[0]:
            done += n
            if progress is not None:
                progress(done, max(total, done))
            if pause_ms:
                await asyncio.sleep(pause_ms / 1000)
        return done
