"""manage.py set_webhook_secret TENANT: store the webhook signing secret a partner
issued (read from stdin, or prompted for on a terminal; never from argv, where
`ps` and shell history would show it) as a new version of webhooks/signing_secret.

Outside any atomic() block, on Django's autocommit connection: the save and its
audit row are one statement, committed before the command prints the version."""
import getpass
import sys
from typing import Any

import hush
from django.core.management.base import BaseCommand, CommandError, CommandParser

from partners.hush_db import tenant_secrets
from partners.views import SIGNING_SECRET


class Command(BaseCommand):
    help = "Store TENANT's webhook signing secret (from stdin) as a new version in hush."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant")

    def handle(self, *args: Any, tenant: str, **options: Any) -> None:
        value = getpass.getpass("Signing secret: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
        if not value:
            raise CommandError("no signing secret on stdin")
        try:
            saved = tenant_secrets(tenant).save(SIGNING_SECRET, value, kind="webhook_secret")
        except hush.HushError as e:  # messages name the tenant and the secret, never a value
            raise CommandError(f"{type(e).__name__} ({e.code}): {e}") from e
        self.stdout.write(f"{tenant} {SIGNING_SECRET} version {saved.version}")
