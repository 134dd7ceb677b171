"""The typed results of hush calls, one class per SQL composite type.

A Secret's repr and str mask its value, so logging a result, or an exception
whose traceback shows locals, never prints it.
"""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Mapping, TypeVar

T = TypeVar("T")


def _uuid(v: Any) -> uuid.UUID:
    return v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))


def _json(v: Any) -> dict[str, Any]:
    # psycopg and psycopg2 load jsonb; asyncpg and some SQLAlchemy set-ups hand over text.
    if v is None:
        return {}
    return json.loads(v) if isinstance(v, (str, bytes)) else dict(v)


@dataclass(frozen=True, slots=True, repr=False)
class Secret:
    """A secret's value and metadata, as `hush.get_secret` returns it."""

    id: uuid.UUID
    tenant_id: str
    name: str
    value: str
    kind: str
    description: str | None
    tags: list[str]
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    # 'current', 'pending' or 'previous': the version's stage now (None for another version)
    stage: str | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> Secret:
        return cls(_uuid(r["id"]), r["tenant_id"], r["name"], r["value"], r["kind"], r["description"],
                   list(r["tags"] or []), _json(r["metadata"]), r["version"], r["created_at"], r["updated_at"],
                   r["expires_at"], r["stage"])

    def __repr__(self) -> str:
        stage = "" if self.stage is None else f", stage={self.stage!r}"
        return (f"Secret(tenant_id={self.tenant_id!r}, name={self.name!r}, version={self.version}{stage}, "
                f"kind={self.kind!r}, value='***')")

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class SavedSecret:
    """What a save or update returns: the secret's id and its new version."""

    id: uuid.UUID
    tenant_id: str
    name: str
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> SavedSecret:
        return cls(_uuid(r["id"]), r["tenant_id"], r["name"], r["version"], r["created_at"], r["updated_at"])


@dataclass(frozen=True, slots=True)
class SecretMetadata:
    """A secret without its value (list, search, restore).

    `max_versions` and `destroy_versions_after` are the secret's own retention (None: the
    tenant's applies); `rotate_every` its rotation schedule (None: none), counted from
    `rotated_at`, when its current version last changed; `pending_version` the version staged
    for promote(), if any."""

    id: uuid.UUID
    tenant_id: str
    name: str
    kind: str
    description: str | None
    tags: list[str]
    metadata: dict[str, Any]
    version: int
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    max_versions: int | None
    destroy_versions_after: timedelta | None
    rotate_every: timedelta | None
    rotated_at: datetime
    pending_version: int | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> SecretMetadata:
        return cls(_uuid(r["id"]), r["tenant_id"], r["name"], r["kind"], r["description"], list(r["tags"] or []),
                   _json(r["metadata"]), r["version"], r["expires_at"], r["created_at"], r["updated_at"],
                   r["deleted_at"], r["max_versions"], r["destroy_versions_after"], r["rotate_every"],
                   r["rotated_at"], r["pending_version"])


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a secret, metadata only; `stage` 'current', 'pending', 'previous' or None."""

    version: int
    created_at: datetime
    created_by: str
    key_id: str | None
    destroyed: bool
    destroyed_at: datetime | None
    is_current: bool
    stage: str | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> SecretVersion:
        return cls(r["version"], r["created_at"], r["created_by"], r["key_id"], r["destroyed"], r["destroyed_at"],
                   r["is_current"], r["stage"])


@dataclass(frozen=True, slots=True)
class SecretDue:
    """What falls due (Secrets.due, hush.due_for_rotation). `reason`: 'rotation_overdue' or
    'rotation_due' (due_at = rotated_at + rotate_every), 'expired' or 'expiring' (due_at =
    expires_at). A secret whose rotation and expiry both fall in the window gives two."""

    name: str
    reason: str
    due_at: datetime
    rotate_every: timedelta | None
    rotated_at: datetime
    expires_at: datetime | None
    version: int
    pending_version: int | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> SecretDue:
        return cls(r["name"], r["reason"], r["due_at"], r["rotate_every"], r["rotated_at"], r["expires_at"],
                   r["version"], r["pending_version"])

    @property
    def overdue(self) -> bool:
        """Whether it is past due: the rotation is overdue or the secret has expired."""
        return self.reason in ("rotation_overdue", "expired")


@dataclass(frozen=True, slots=True)
class SecretChange:
    """A change to a secret (Secrets.changes, hush.changes): metadata only. `change` is the
    audit action (create, new_version, pending_version, promote, rollback, update_metadata,
    delete, restore, destroy, purge); pass `cursor` as `since` to read what followed."""

    cursor: str
    name: str
    version: int | None
    change: str
    at: datetime

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> SecretChange:
        return cls(r["cursor"], r["name"], r["version"], r["change"], r["at"])


@dataclass(frozen=True, slots=True)
class SecretEvent:
    """A reminder the maintenance job wrote (Secrets.events, hush.secret_events): `event`
    'expiring', 'expired', 'rotation_due' or 'rotation_overdue' about the time `due_at`."""

    id: int
    at: datetime
    name: str
    event: str
    due_at: datetime
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> SecretEvent:
        return cls(int(r["id"]), r["at"], r["name"], r["event"], r["due_at"], _json(r["detail"]))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results.

    `per_page` is the page size the server used (it clamps larger requests to 1,000).
    `total` is counted up to 1,000 by the server; `total_exact` is False when
    there are more. `next_after` is the name to pass as `after=` for the next
    page by keyset, which stays fast however deep the page (None on the last page)."""

    data: list[T]
    page: int
    per_page: int
    total: int
    total_exact: bool
    next_after: str | None

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.per_page) if self.per_page else 0

    def __iter__(self) -> Any:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
