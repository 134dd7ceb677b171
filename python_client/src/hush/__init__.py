"""hush: secrets and OAuth tokens stored, encrypted, inside PostgreSQL.

    import hush
    client = hush.connect()                       # HUSH_DSN, or the PG* variables
    acme = client.tenant("acme")
    acme.save("stripe_key", value)
    acme.get("stripe_key").value

Over a connection you already have (its transaction decides):
`hush.Secrets(conn, "acme")`, with a psycopg Connection or a SQLAlchemy
Connection/Session. Asyncio: `hush.aio`. OAuth2/OIDC tokens:
`client.tenant("acme").oauth` (or `hush.OAuth(conn, "acme")`). Administration:
`client.tenants`, `client.keys`, `client.audit` (or `hush.Tenants(conn)`,
`hush.Keys(conn)`, `hush.Audit(conn)`); scoped grants:
`client.grant(role, tenant, prefix=..., capabilities=[...])`. This package holds no key: every
operation is one call of a hush.* SQL function.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    AccessDenied,
    AuditAppendOnly,
    AuditedReadOnly,
    AuditRateLimited,
    AuditTampered,
    AuthorizationBindingMismatch,
    AuthorizationPending,
    CapabilityNotCallable,
    DatabaseUnavailable,
    DecryptionFailed,
    DropRefused,
    EgressRefused,
    ExpiredToken,
    GrantNotFound,
    HushError,
    InvalidCallback,
    InvalidIdToken,
    InvalidArgument,
    InvalidInput,
    InvalidName,
    InvalidTenant,
    KeyUnavailable,
    MaintenanceBusy,
    NoScheduler,
    OAuthAccountAmbiguous,
    OAuthConnectionNotFound,
    OAuthError,
    OAuthGrantNotEnabled,
    OAuthLeaseLost,
    OAuthProviderNotFound,
    OAuthReaderRefreshDisabled,
    OAuthRefreshUnanswered,
    OAuthStateInvalid,
    OAuthTokenExpiring,
    PermissionDenied,
    ProviderUnavailable,
    ReadNotRecorded,
    ReadOnlyWrite,
    ReauthorizationRequired,
    RootKeyInUse,
    RootKeyUnknown,
    SecretDeleted,
    SecretExpired,
    SecretNotFound,
    SlowDown,
    TenantAccessDenied,
    TransactionAborted,
    ValueTooLarge,
    VersionConflict,
    VersionDestroyed,
    VersionNotFound,
)
from ._log import debug
from ._models import Page, SavedSecret, Secret, SecretChange, SecretDue, SecretEvent, SecretMetadata, SecretVersion
from ._version import __version__ as __version__

if TYPE_CHECKING:
    from ._access import AccessEntry, AccessGrant
    from ._admin_models import (AuditCleanup, AuditMaintenance, AuditPartition, AuditRecord, AuditSeal,
                                AuditVerification, MaintenanceJob, OAuthCleanup, PurgedSecrets, RootKey, RootKeyChange,
                                RootKeyStatus, SecretUpkeep, TenantSettings)
    from ._audit import Audit
    from ._audit_actions import AUDIT_ACTIONS
    from ._cache import CachedSecrets
    from ._client import Client, connect
    from ._helpers import delete_secret, get_secret, list_secrets, save_secret, search_secrets, update_secret
    from ._oauth import OAuth
    from ._oauth_models import (AuthorizationRequest, Connection, DeviceAuthorization, OAuthEvent, Provider,
                                TokenSet)
    from ._oauth_worker import OAuthWorker
    from ._keys import Keys
    from ._secrets import Secrets
    from ._tenants import Tenants

# Imported on first use (PEP 562): psycopg costs ~0.13 s and the OAuth stack
# (authlib, httpx2, joserfc: the [oauth] extra) ~0.12 s, which `hush --help`
# and a program that never touches OAuth should not pay.
_LAZY = {
    "Client": "_client", "connect": "_client", "Secrets": "_secrets", "CachedSecrets": "_cache",
    **dict.fromkeys(("get_secret", "save_secret", "update_secret", "delete_secret", "list_secrets",
                     "search_secrets"), "_helpers"),
    "OAuth": "_oauth", "OAuthWorker": "_oauth_worker",
    **dict.fromkeys(("TokenSet", "AuthorizationRequest", "DeviceAuthorization", "Provider", "Connection",
                     "OAuthEvent"), "_oauth_models"),
    "Tenants": "_tenants", "Keys": "_keys", "Audit": "_audit", "AUDIT_ACTIONS": "_audit_actions",
    "AccessGrant": "_access", "AccessEntry": "_access",
    **dict.fromkeys(("TenantSettings", "RootKey", "RootKeyStatus", "RootKeyChange", "AuditRecord", "AuditSeal",
                     "AuditVerification", "AuditPartition", "AuditCleanup", "PurgedSecrets", "MaintenanceJob",
                     "AuditMaintenance", "OAuthCleanup", "SecretUpkeep"), "_admin_models"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hush' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Client", "connect", "Secrets", "debug",
    "Secret", "SecretMetadata", "SavedSecret", "SecretVersion", "Page",
    "CachedSecrets", "SecretDue", "SecretChange", "SecretEvent",
    "get_secret", "save_secret", "update_secret", "delete_secret", "list_secrets", "search_secrets",
    "Tenants", "Keys", "Audit", "AUDIT_ACTIONS", "AccessGrant", "AccessEntry",
    "TenantSettings", "RootKey", "RootKeyStatus", "RootKeyChange", "AuditRecord", "AuditSeal", "AuditVerification",
    "AuditPartition", "AuditCleanup", "PurgedSecrets", "MaintenanceJob", "AuditMaintenance", "OAuthCleanup",
    "SecretUpkeep",
    "HushError", "InvalidInput", "InvalidName", "InvalidTenant", "ValueTooLarge", "InvalidArgument",
    "SecretNotFound", "VersionNotFound", "SecretExpired", "VersionConflict", "SecretDeleted", "VersionDestroyed",
    "DatabaseUnavailable", "TransactionAborted", "TenantAccessDenied", "CapabilityNotCallable", "GrantNotFound", "ReadOnlyWrite", "AuditedReadOnly", "ReadNotRecorded", "AuditRateLimited", "KeyUnavailable", "DecryptionFailed",
    "RootKeyInUse", "RootKeyUnknown",
    "AuditAppendOnly", "AuditTampered", "DropRefused", "NoScheduler", "MaintenanceBusy",
    "PermissionDenied",
    "OAuth", "TokenSet", "AuthorizationRequest", "DeviceAuthorization", "Provider", "Connection", "OAuthEvent",
    "OAuthWorker", "OAuthTokenExpiring", "OAuthReaderRefreshDisabled", "OAuthRefreshUnanswered",
    "OAuthProviderNotFound", "OAuthConnectionNotFound", "OAuthAccountAmbiguous", "OAuthStateInvalid",
    "AuthorizationBindingMismatch",
    "OAuthGrantNotEnabled",
    "ReauthorizationRequired", "OAuthLeaseLost", "OAuthError", "AccessDenied", "AuthorizationPending", "SlowDown",
    "ExpiredToken", "InvalidCallback", "InvalidIdToken", "ProviderUnavailable", "EgressRefused",
]
