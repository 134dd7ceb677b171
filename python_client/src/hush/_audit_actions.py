"""The audit actions the extension writes (hush.audit_log.action), in one place
for the client: `hush audit --action` accepts these and no other.
tests/test_cli_audit.py checks the list against what plpython/ writes."""
from __future__ import annotations

AUDIT_ACTIONS = (
    # secrets
    "read", "create", "new_version", "pending_version", "promote", "rollback", "update_metadata", "delete", "restore",
    "destroy", "purge",
    # tenants and root keys
    "grant_tenant", "revoke_tenant", "grant_access", "revoke_access", "configure_tenant",
    "add_root_key", "activate_root_key", "retire_root_key", "rewrap",
    # OAuth
    "oauth_provider_save", "oauth_provider_remove", "oauth_client_secret_read", "oauth_authorize", "oauth_callback",
    "oauth_callback_refused",
    "oauth_token_store", "oauth_token_read", "oauth_tokens_read", "oauth_refresh_claim", "oauth_refresh",
    "oauth_refresh_failed", "oauth_disconnect",
    "oauth_egress_allow", "oauth_egress_disallow",
)
