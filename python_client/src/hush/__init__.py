"""hush: secrets and OAuth tokens stored, encrypted, inside PostgreSQL.

    import hush
    client = hush.connect()                       # HUSH_DSN, or the PG* variables
    acme = client.tenant("acme")
    acme.save("stripe_key", value)
    acme.get("stripe_key").value

Over a connection you already have (its transaction decides):
`hush.Secrets(conn, "acme")`, with a psycopg Connection or a SQLAlchemy
Connection/Session. Asyncio: `hush.aio`. OAuth2/OIDC tokens:
`client.tenant("acme").oauth` (or `hush.OAuth(conn, "acme")`). This package holds no key: every
operation is one call of a hush.* SQL function.
"""
from ._client import Client, connect
from ._errors import (
    AccessDenied,
    AuditAppendOnly,
    AuditedReadOnly,
    AuditTampered,
    AuthorizationPending,
    DecryptionFailed,
    DropRefused,
    ExpiredToken,
    HushError,
    InvalidCallback,
    InvalidIdToken,
    InvalidArgument,
    InvalidInput,
    InvalidName,
    InvalidTenant,
    KeyUnavailable,
    NoScheduler,
    OAuthAccountAmbiguous,
    OAuthConnectionNotFound,
    OAuthError,
    OAuthLeaseLost,
    OAuthProviderNotFound,
    OAuthStateInvalid,
    OAuthTokenExpiring,
    PermissionDenied,
    ProviderUnavailable,
    ReauthorizationRequired,
    RootKeyInUse,
    RootKeyUnknown,
    SecretDeleted,
    SecretExpired,
    SecretNotFound,
    SlowDown,
    TenantAccessDenied,
    ValueTooLarge,
    VersionConflict,
    VersionDestroyed,
    VersionNotFound,
)
from ._helpers import delete_secret, get_secret, list_secrets, save_secret, search_secrets, update_secret
from ._models import Page, SavedSecret, Secret, SecretMetadata, SecretVersion
from ._oauth import OAuth
from ._oauth_models import AuthorizationRequest, Connection, DeviceAuthorization, OAuthEvent, Provider, TokenSet
from ._oauth_worker import OAuthWorker
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
    "OAuth", "TokenSet", "AuthorizationRequest", "DeviceAuthorization", "Provider", "Connection", "OAuthEvent",
    "OAuthWorker", "OAuthTokenExpiring",
    "OAuthProviderNotFound", "OAuthConnectionNotFound", "OAuthAccountAmbiguous", "OAuthStateInvalid",
    "ReauthorizationRequired", "OAuthLeaseLost", "OAuthError", "AccessDenied", "AuthorizationPending", "SlowDown",
    "ExpiredToken", "InvalidCallback", "InvalidIdToken", "ProviderUnavailable",
]
