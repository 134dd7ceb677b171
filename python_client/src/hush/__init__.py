"""hush: secrets and OAuth tokens stored, encrypted, inside PostgreSQL.

    import hush
    client = hush.connect()                       # HUSH_DSN, or the PG* variables
    acme = client.tenant("acme")
    acme.save("stripe_key", value)
    acme.get("stripe_key").value

Over a connection you already have (its transaction decides):
`hush.Secrets(conn, "acme")`, with a psycopg Connection or a SQLAlchemy
Connection/Session. Asyncio: `hush.aio`. This package holds no key: every
operation is one call of a hush.* SQL function.
"""
from ._client import Client, connect
from ._errors import (
    AuditAppendOnly,
    AuditedReadOnly,
    AuditTampered,
    DecryptionFailed,
    DropRefused,
    HushError,
    InvalidArgument,
    InvalidInput,
    InvalidName,
    InvalidTenant,
    KeyUnavailable,
    NoScheduler,
    PermissionDenied,
    RootKeyInUse,
    RootKeyUnknown,
    SecretDeleted,
    SecretExpired,
    SecretNotFound,
    TenantAccessDenied,
    ValueTooLarge,
    VersionConflict,
    VersionDestroyed,
    VersionNotFound,
)
from ._helpers import delete_secret, get_secret, list_secrets, save_secret, search_secrets, update_secret
from ._models import Page, SavedSecret, Secret, SecretMetadata, SecretVersion
from ._secrets import Secrets

__version__ = "0.1.0"

__all__ = [
    "Client", "connect", "Secrets",
    "Secret", "SecretMetadata", "SavedSecret", "SecretVersion", "Page",
    "get_secret", "save_secret", "update_secret", "delete_secret", "list_secrets", "search_secrets",
    "HushError", "InvalidInput", "InvalidName", "InvalidTenant", "ValueTooLarge", "InvalidArgument",
    "SecretNotFound", "VersionNotFound", "SecretExpired", "VersionConflict", "SecretDeleted", "VersionDestroyed",
    "TenantAccessDenied", "AuditedReadOnly", "KeyUnavailable", "DecryptionFailed", "RootKeyInUse", "RootKeyUnknown",
    "AuditAppendOnly", "AuditTampered", "DropRefused", "NoScheduler",
    "PermissionDenied",
]
