"""Two views over hush, one in each of Django's transaction modes.

webhook: Django's default autocommit. Reading the signing secret is one
statement on Django's connection, committed on its own; its read record is
committed apart before the value leaves the server (docs/audit.md, "When a
read is recorded"). The value is used to check a signature and never returned.

connect_partner: transaction.atomic(). The partner's API key (a new version of
a hush secret, with its audit row) and the PartnerAccount row are written in
one transaction: both are committed when the block ends, or neither is.
"""
import hashlib
import hmac
import json

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_POST

from .hush_db import tenant_secrets
from .models import PartnerAccount

SIGNING_SECRET = "webhooks/signing_secret"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@require_POST
def webhook(request: HttpRequest, tenant: str) -> HttpResponse:
    """An event the partner signed with the tenant's signing secret (HMAC-SHA256 of the body)."""
    secret = tenant_secrets(tenant).get(SIGNING_SECRET)  # autocommit: committed on its own
    if not hmac.compare_digest(signature(secret.value, request.body), request.headers.get("X-Signature", "")):
        return JsonResponse({"detail": "bad signature"}, status=403)
    event = json.loads(request.body)
    return JsonResponse({"accepted": event.get("type"), "secret_version": secret.version})


@require_POST
def connect_partner(request: HttpRequest, tenant: str, partner: str) -> HttpResponse:
    """Store the partner's API key in hush and record the account, together."""
    api_key = json.loads(request.body)["api_key"]
    try:
        with transaction.atomic():
            saved = tenant_secrets(tenant).save(f"partners/{partner}/api_key", api_key, kind="api_key")
            PartnerAccount.objects.create(tenant=tenant, partner=partner, key_version=saved.version)
    except IntegrityError:
        # Already connected: the block rolled back, and the key version saved in it with it.
        return JsonResponse({"detail": f"{partner} is already connected for {tenant}"}, status=409)
    return JsonResponse({"partner": partner, "key_version": saved.version}, status=201)
