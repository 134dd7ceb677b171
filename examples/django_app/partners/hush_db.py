"""hush over Django's own database connection."""
import hush
from django.db import DEFAULT_DB_ALIAS, connections


def tenant_secrets(tenant: str, using: str = DEFAULT_DB_ALIAS) -> hush.Secrets:
    """The tenant's secrets over Django's connection, in whatever transaction Django
    has open on it: none in autocommit (Django's default), where each call is one
    statement that commits on its own; inside transaction.atomic(), that
    transaction, so writes and their audit rows commit or roll back with it.

    Make one where you use it: Django keeps one connection per thread and closes
    it at the end of a request (CONN_MAX_AGE), so a Secrets kept across requests
    would hold a closed connection, or another thread's."""
    conn = connections[using]
    conn.ensure_connection()  # .connection is None until Django first connects
    return hush.Secrets(conn.connection, tenant)
