"""The app's own tests, run by Django's test runner (`manage.py test partners`).

test_<NAME> is cloned from DATABASES TEST TEMPLATE, where hush is installed and
USER is granted tenant acme (only); USER is not a superuser, so row security
applies as in production. Each TestCase test runs inside a transaction that is
rolled back afterwards, and hush's writes in it (audit rows included) go with it;
a read's record is committed apart and stays (docs/audit.md, "When a read is recorded").
"""
import io
import json
import secrets
import sys
from typing import Any

from django.core.management import call_command
from django.test import TestCase

from .hush_db import tenant_secrets
from .models import PartnerAccount
from .views import SIGNING_SECRET, signature


class WebhookTests(TestCase):
    def setUp(self) -> None:
        self.secret = "whsec_" + secrets.token_urlsafe(24)
        tenant_secrets("acme").save(SIGNING_SECRET, self.secret)

    def post(self, tenant: str, body: bytes, sig: str) -> Any:
        return self.client.post(f"/webhooks/{tenant}/", body, content_type="application/json",
                                headers={"X-Signature": sig})

    def test_signed_event_is_accepted(self) -> None:
        body = json.dumps({"type": "invoice.paid"}).encode()
        r = self.post("acme", body, signature(self.secret, body))
        self.assertEqual((r.status_code, r.json()), (200, {"accepted": "invoice.paid", "secret_version": 1}))

    def test_wrong_signature_is_refused(self) -> None:
        body = b'{"type": "invoice.paid"}'
        r = self.post("acme", body, signature("not-the-secret", body))
        self.assertEqual(r.status_code, 403)
        self.assertNotIn(self.secret, r.content.decode())

    def test_tenant_not_granted_is_403(self) -> None:
        r = self.post("globex", b"{}", "sha256=00")
        self.assertEqual((r.status_code, r.json()["code"]), (403, "SH020"))

    def test_command_adds_a_version(self) -> None:
        stdin, sys.stdin = sys.stdin, io.StringIO("whsec_rotated\n")
        out = io.StringIO()
        try:
            call_command("set_webhook_secret", "acme", stdout=out)
        finally:
            sys.stdin = stdin
        self.assertEqual(out.getvalue().strip(), f"acme {SIGNING_SECRET} version 2")
        self.assertEqual(tenant_secrets("acme").get(SIGNING_SECRET).value, "whsec_rotated")


class ConnectPartnerTests(TestCase):
    def connect(self, key: str) -> Any:
        return self.client.post("/partners/acme/stripe/", {"api_key": key}, content_type="application/json")

    def test_second_connect_rolls_back_its_key(self) -> None:
        self.assertEqual(self.connect("sk_first").status_code, 201)
        self.assertEqual(self.connect("sk_second").status_code, 409)
        key = tenant_secrets("acme").get("partners/stripe/api_key")
        self.assertEqual((key.value, key.version), ("sk_first", 1))
        self.assertEqual(list(PartnerAccount.objects.values_list("partner", "key_version")), [("stripe", 1)])
