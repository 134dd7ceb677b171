"""The app's own bookkeeping. Secret values are never stored here: only which
version of the hush secret an account uses."""
from django.db import models


class PartnerAccount(models.Model):
    """A partner connected for a tenant; its API key is the hush secret partners/<partner>/api_key."""

    tenant = models.CharField(max_length=63)
    partner = models.SlugField(max_length=63)
    key_version = models.PositiveIntegerField()
    connected_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "partner"], name="one_account_per_partner")]
