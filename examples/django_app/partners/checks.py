"""A system check run by runserver, migrate, test and `manage.py check`: a
PostgreSQL database without server_side_binding binds parameters on the client,
so your models' values (a secret read from hush and stored in one, say) are
written into the SQL text and the statement log. hush's own statements bind on
the server either way; this check says so at startup, before any request."""
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def server_side_binding(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for alias, db in settings.DATABASES.items():
        # Subclassed backends too (PostGIS: django.contrib.gis.db.backends.postgis).
        postgres = db["ENGINE"].startswith("django.db.backends.postgresql") or db["ENGINE"].endswith(".postgis")
        if postgres and db.get("OPTIONS", {}).get("server_side_binding") is not True:
            errors.append(Error(
                f"DATABASES[{alias!r}] binds query parameters on the client: values, secrets from hush "
                "included, would be written into the SQL text of your own queries",
                hint="Add \"server_side_binding\": True to its OPTIONS.",
                id="partners.E001"))
    return errors
