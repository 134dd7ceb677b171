"""A system check run by runserver, migrate, test and `manage.py check`: a
PostgreSQL database without server_side_binding binds parameters on the client,
so a secret saved through it would be written into the SQL text (and the
statement log). hush refuses such a connection when it is used; this says so at
startup, before any request."""
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def server_side_binding(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for alias, db in settings.DATABASES.items():
        postgres = db["ENGINE"] == "django.db.backends.postgresql"
        if postgres and db.get("OPTIONS", {}).get("server_side_binding") is not True:
            errors.append(Error(
                f"DATABASES[{alias!r}] binds query parameters on the client: hush would refuse it, "
                "since secret values would be written into the SQL text",
                hint="Add \"server_side_binding\": True to its OPTIONS.",
                id="partners.E001"))
    return errors
