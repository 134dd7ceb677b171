"""Module-level helpers mirroring the workflow helpers (PostgresSecretWorkflowHelper) of
the TypeScript SDK whose API hush follows: one call over a connection you already have,
inside its transaction. `hush.get_secret(conn, "acme", "stripe_key")`."""
from __future__ import annotations

from typing import Any

from ._models import Page, SavedSecret, Secret, SecretMetadata
from ._secrets import Secrets


def get_secret(conn: Any, tenant: str, name: str, version: int | None = None) -> Secret:
    return Secrets(conn, tenant).get(name, version)


def save_secret(conn: Any, tenant: str, name: str, value: str, **options: Any) -> SavedSecret:
    """Options as Secrets.save: description, tags, metadata, kind, expected_version, expires_at."""
    return Secrets(conn, tenant).save(name, value, **options)


def update_secret(conn: Any, tenant: str, name: str, value: str | None = None, **options: Any) -> SavedSecret:
    return Secrets(conn, tenant).update(name, value, **options)


def delete_secret(conn: Any, tenant: str, name: str) -> None:
    Secrets(conn, tenant).delete(name)


def list_secrets(conn: Any, tenant: str, page: int = 1, per_page: int = 50, **options: Any) -> Page[SecretMetadata]:
    """Secrets.list over a connection you have; options as Secrets.list."""
    return Secrets(conn, tenant).list(page=page, per_page=per_page, **options)


def search_secrets(conn: Any, tenant: str, query: str, page: int = 1, per_page: int = 50) -> Page[SecretMetadata]:
    """Secrets.search over a connection you have."""
    return Secrets(conn, tenant).search(query, page=page, per_page=per_page)
