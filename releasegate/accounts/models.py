from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A bearer token for the API. Only a hash of the secret is stored.

    A personal token acts as its user with all of that user's project roles. A service token is
    bound to one project and may do only what its scopes allow; it is never a person, so it can
    never approve, veto or lift.
    """

    class Kind(models.TextChoices):
        PERSONAL = "personal", "Personal"
        SERVICE = "service", "Service"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="Personal tokens: the user they act as.",
    )
    project = models.ForeignKey(
        "releases.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="service_tokens",
        help_text="Service tokens: the one project they are bound to.",
    )
    scopes = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    oidc_policy = models.ForeignKey(
        "identity.TrustPolicy",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="minted_tokens",
        help_text="Minted in exchange for an OIDC ID token that matched this trust policy.",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="token_kind_binding",
                condition=(
                    models.Q(kind="personal", user__isnull=False, project__isnull=True)
                    | models.Q(kind="service", project__isnull=False, user__isnull=True)
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} token {self.name} ({self.key_id})"

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.expires_at > now
