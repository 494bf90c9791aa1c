from django.db import models
from django.utils import timezone


class SignInFailure(models.Model):
    """One failed sign-in, kept to refuse further attempts for the same username from the same
    address for a while (see `releasegate.web.lockout`). Stored in the database, not a cache, so
    every web process sees the same count."""

    username = models.CharField(max_length=150)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["username", "ip", "-at"])]

    def __str__(self) -> str:
        return f"failed sign-in for {self.username} from {self.ip}"
