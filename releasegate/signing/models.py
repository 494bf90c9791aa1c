from django.db import models
from django.utils import timezone


class SigningKey(models.Model):
    """A public key releasegate has signed with. Only public halves are stored: the private key
    lives in `RELEASEGATE_SIGNING_KEY` (or the data folder). Retired keys stay, so that whatever
    was signed before a rotation still verifies."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    keyid = models.CharField(max_length=64, unique=True)
    public_pem = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.keyid[:16]} ({self.status})"
