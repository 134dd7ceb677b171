"""The partners app: each tenant's partner API keys and webhook signing secret live in hush."""
from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system check)
