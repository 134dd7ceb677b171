"""hush.Secrets: a tenant's secrets over a connection (yours, or the client's pool)."""
from __future__ import annotations

import builtins
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar
from uuid import UUID

from . import _calls as q
from ._exec import executor_for
from ._models import (Page, SavedSecret, Secret, SecretChange, SecretDue, SecretEvent, SecretMetadata,
                      SecretVersion)

if TYPE_CHECKING:
    from ._cache import CachedSecrets
    from ._oauth import OAuth

T = TypeVar("T")
Progress = Callable[[int, int], None]


class Secrets:
    """The secrets of one tenant.

    `conn` is a psycopg Connection, a psycopg_pool ConnectionPool, or a
    SQLAlchemy Connection or Session (a DBOS transaction's session). Over a
    connection, every call joins its open transaction and commits or rolls
    back with it, audit rows included; hush never commits for you. Errors
    hush documents are raised as HushError subclasses; anything else, such as
    a serialization failure (40001), propagates untouched.
    """

    def __init__(self, conn: Any, tenant: str) -> None:
        self._exec = executor_for(conn)
        self.tenant = tenant
        self._oauth: OAuth | None = None

    @property
    def oauth(self) -> OAuth:
        """This tenant's OAuth providers and tokens (hush.OAuth), over the same connection;
        token state commits on its own (the pool, or a connection beside yours)."""
        if self._oauth is None:
            from ._oauth import OAuth  # the OAuth stack (the [oauth] extra) only when used
            self._oauth = OAuth(self._exec, self.tenant)
        return self._oauth

    def __repr__(self) -> str:
        return f"Secrets(tenant={self.tenant!r})"

    def _run(self, call: q.Call[T]) -> T:
        result: T = self._exec.run([call])[0]
        return result

    def save(self, name: str, value: str, *, description: str | None = None, tags: Iterable[str] | None = None,
             metadata: Mapping[str, Any] | None = None, kind: str | None = None,
             expected_version: int | None = None, expires_at: datetime | None = None,
             max_versions: int | None = None, destroy_versions_after: timedelta | None = None,
             rotate_every: timedelta | None = None, stage: str | None = None) -> SavedSecret:
        """Create a secret or add a version. `expected_version` makes it check-and-set against
        the current version (0 = create only; VersionConflict otherwise). `kind` None keeps the
        current kind.

        `stage='pending'` stages the value for promote() and leaves the current one as it is (the
        secret must exist; the returned version is the pending one; a value only: any other
        argument with it is InvalidInput). `max_versions` (0 to 10,000) and
        `destroy_versions_after` set the secret's retention, which needs the `destroy`
        capability on the name (TenantAccessDenied otherwise): versions beyond the newest
        max_versions, or created longer ago than destroy_versions_after, are destroyed, never the
        current, pending or previous one (0 or timedelta(0): back to the tenant's setting);
        `rotate_every` its rotation schedule for due() (timedelta(0): none). None keeps what is set."""
        return self._run(q.save(self.tenant, name, value, description=description, tags=tags, metadata=metadata,
                                kind=kind, expected_version=expected_version, expires_at=expires_at,
                                lifecycle=q.Lifecycle(max_versions, destroy_versions_after, rotate_every, stage)))

    def save_many(self, items: Mapping[str, str] | Iterable[tuple[str, str]], *, kind: str | None = None,
                  tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                  progress: Progress | None = None, batch_size: int = q.MAX_BATCH) -> builtins.list[SavedSecret]:
        """Save many secrets, all or nothing, through the bulk path (hush.save_secrets,
        up to 10,000 a statement, all in one transaction). `progress(done, total)` is
        called after each statement."""
        calls: builtins.list[q.Call[Any]] = list(q.save_batches(self.tenant, items, kind=kind, tags=tags,
                                                                  metadata=metadata, batch_size=batch_size))
        if progress is not None:
            sizes = [len(c.params["names"]) for c in calls]
            calls = [_Reporting(c, sum(sizes[:i + 1]), sum(sizes), progress) for i, c in enumerate(calls)]
        out = self._exec.run(calls)
        return [s for batch in out for s in batch]

    def get(self, name: str, version: int | None = None, *, stage: str | None = None) -> Secret:
        """The current value, the given version, or the version of a stage: 'current', 'pending'
        (staged by save(stage='pending')) or 'previous' (current before the last rotation).
        SecretNotFound, SecretExpired, VersionNotFound (also a stage with no version)..."""
        return self._run(q.get(self.tenant, name, version, stage))

    def get_by_id(self, id: UUID | str, version: int | None = None, *, stage: str | None = None) -> Secret:
        """get() by the secret's id."""
        return self._run(q.get_by_id(self.tenant, id, version, stage))

    def get_many(self, names: Sequence[str]) -> builtins.list[Secret]:
        """Several latest values in one call, in the order named; all or nothing."""
        return self._run(q.get_many(self.tenant, names))

    def update(self, name: str, value: str | None = None, *, description: str | None = None,
               tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
               kind: str | None = None, expected_version: int | None = None,
               expires_at: datetime | None = None, max_versions: int | None = None,
               destroy_versions_after: timedelta | None = None, rotate_every: timedelta | None = None,
               stage: str | None = None) -> SavedSecret:
        """Change an existing secret: a value makes a new version (staged with stage='pending');
        None keeps what is there. The lifecycle arguments as save()'s."""
        return self._run(q.update(self.tenant, "name", name, value, description=description, tags=tags,
                                  metadata=metadata, kind=kind, expected_version=expected_version,
                                  expires_at=expires_at,
                                  lifecycle=q.Lifecycle(max_versions, destroy_versions_after, rotate_every, stage)))

    def update_by_id(self, id: UUID | str, value: str | None = None, *, description: str | None = None,
                     tags: Iterable[str] | None = None, metadata: Mapping[str, Any] | None = None,
                     kind: str | None = None, expected_version: int | None = None,
                     expires_at: datetime | None = None, max_versions: int | None = None,
                     destroy_versions_after: timedelta | None = None, rotate_every: timedelta | None = None,
                     stage: str | None = None) -> SavedSecret:
        """update() by the secret's id."""
        return self._run(q.update(self.tenant, "id", id, value, description=description, tags=tags,
                                  metadata=metadata, kind=kind, expected_version=expected_version,
                                  expires_at=expires_at,
                                  lifecycle=q.Lifecycle(max_versions, destroy_versions_after, rotate_every, stage)))

    def delete(self, name: str) -> None:
        """Soft-delete: reads fail with SecretNotFound until restore()."""
        self._run(q.delete(self.tenant, name))

    def delete_by_id(self, id: UUID | str) -> None:
        """delete() by the secret's id."""
        self._run(q.delete_by_id(self.tenant, id))

    def restore(self, name: str) -> SecretMetadata:
        """Undo a soft delete (a no-op on a live secret)."""
        return self._run(q.restore(self.tenant, name))

    def destroy(self, name: str, versions: Iterable[int] | None = None) -> int:
        """Erase the given versions' ciphertext for good (all when None); returns how many."""
        return self._run(q.destroy(self.tenant, name, versions))

    def list(self, *, page: int = 1, per_page: int = 50, prefix: str | None = None,
             tags: Iterable[str] | None = None, include_deleted: bool = False,
             after: str | None = None) -> Page[SecretMetadata]:
        """One page of metadata by name. Pass `after=page.next_after` to page by keyset."""
        return self._run(q.list_(self.tenant, page=page, per_page=per_page, prefix=prefix, tags=tags,
                                 include_deleted=include_deleted, after=after))

    def iter_all(self, *, prefix: str | None = None, tags: Iterable[str] | None = None,
                 per_page: int = 500) -> Iterator[SecretMetadata]:
        """Every live secret's metadata, by keyset pages (one statement per page)."""
        after: str | None = None
        while True:
            page = self.list(per_page=per_page, prefix=prefix, tags=tags, after=after)
            yield from page.data
            if len(page.data) < page.per_page:  # the server's page size (at most 1,000)
                return
            after = page.data[-1].name

    def search(self, query: str, *, page: int = 1, per_page: int = 50,
               after: str | None = None) -> Page[SecretMetadata]:
        """Case-insensitive substring search over names, descriptions and tags."""
        return self._run(q.search(self.tenant, query, page=page, per_page=per_page, after=after))

    def exists(self, name: str) -> bool:
        """Whether a live (not deleted) secret of this name exists; no audit row."""
        return self._run(q.exists(self.tenant, name))

    def exists_by_id(self, id: UUID | str) -> bool:
        """exists() by the secret's id."""
        return self._run(q.exists_by_id(self.tenant, id))

    def versions(self, name: str) -> builtins.list[SecretVersion]:
        """The versions of a secret, oldest first, metadata only."""
        return self._run(q.versions(self.tenant, name))

    def promote(self, name: str, *, expected_version: int | None = None) -> SavedSecret:
        """Make the pending version current (the current one becomes previous), in one call:
        a rotation that fails before it leaves the current value as it was. `expected_version`,
        the pending version you staged, guards against promoting someone else's (VersionConflict);
        VersionNotFound when nothing is pending. Audited ('promote'); needs `write`."""
        return self._run(q.promote(self.tenant, name, expected_version))

    def rollback(self, name: str, to_version: int, *, expected_version: int | None = None) -> SavedSecret:
        """A new current version with the value of `to_version` (re-encrypted on the server; the
        value never comes to the client), check-and-set against the current version with
        `expected_version`. VersionNotFound, VersionDestroyed. Audited ('rollback'); needs `write`."""
        return self._run(q.rollback(self.tenant, name, to_version, expected_version))

    def due(self, within: timedelta | None = None, *, at: datetime | None = None) -> builtins.list[SecretDue]:
        """What falls due (hush.due_for_rotation), by due time: rotations overdue or due within
        `within` of `at` (default: the tenant's expiry_warning, 14 days, and the database's
        now()), secrets expired or expiring in that window. Names the caller may list only."""
        return self._run(q.due(self.tenant, within, at))

    def change_channel(self) -> str:
        """The tenant's change channel (made on first use): LISTEN on it (quoted as an identifier,
        psycopg.sql.Identifier) for an empty NOTIFY when one of its secrets changes. A direct
        connection only: a transaction pooler does not keep a LISTEN (use changes(), or cached())."""
        return self._run(q.change_channel(self.tenant))

    def changes(self, since: str | None = None, *, max_rows: int = 1000) -> builtins.list[SecretChange]:
        """Changes to the tenant's secrets, oldest first, metadata only (names the caller may list):
        those after the change whose `cursor` is `since` (None: from the first), at most max_rows.
        Only changes of finished transactions, so a transaction that commits late is never skipped;
        keep the last cursor to go on later."""
        return self._run(q.changes(self.tenant, since, max_rows))

    def changes_cursor(self) -> str:
        """A cursor for changes() at the present, skipping the history: after it come the changes
        not finished when it was taken. Take it before reading what you will keep up to date."""
        return self._run(q.changes_cursor(self.tenant))

    def events(self, since: datetime | None = None, *, max_rows: int = 100) -> builtins.list[SecretEvent]:
        """The expiry and rotation reminders the maintenance job wrote (hush.secret_events),
        oldest first, those at or after `since`."""
        return self._run(q.events(self.tenant, since, max_rows))

    def cached(self, ttl: float = 60.0, *, refresh_on_change: bool = True, poll_interval: float = 1.0,
               clock: Callable[[], float] = time.monotonic) -> CachedSecrets:
        """A read-through cache of this tenant's values (hush.CachedSecrets): never serves a value
        more than `ttl` seconds after it was read from the database; with refresh_on_change, drops
        a value once changes() shows it changed, checked at most every `poll_interval` seconds.
        No round trip until its first get()."""
        from ._cache import CachedSecrets
        return CachedSecrets(self, ttl, refresh_on_change=refresh_on_change, poll_interval=poll_interval,
                             clock=clock)


class _Reporting(q.Call[Any]):
    """A batch that reports progress once its rows have come back."""

    def __init__(self, call: q.Call[Any], done: int, total: int, progress: Progress) -> None:
        def shape(rows: q.Rows) -> Any:
            result = call.shape(rows)
            progress(done, total)
            return result
        # atomic: a progress callback that raises must undo the batch, even the only one.
        super().__init__(call.sql, call.params, shape, atomic=True)
