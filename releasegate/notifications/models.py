from django.conf import settings
from django.db import models
from django.utils import timezone

NOTIFICATION_EVENTS = (
    "review_requested",
    "veto_cast",
    "veto_lifted",
    "cleared",
    "promoted",
    "attestation_revoked",
    "hold_placed",
    "hold_lifted",
    "break_glass_requested",
    "break_glass_confirmed",
    "break_glass_reviewed",
)


class NotificationTarget(models.Model):
    """Where a project's notifications go: an e-mail address or a webhook URL.

    A webhook's secret signs every body (HMAC-SHA256); it is shown once when the target is added
    and never again. It is stored as is, because signing needs it.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    project = models.ForeignKey(
        "releases.Project", on_delete=models.CASCADE, related_name="notification_targets"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    url = models.URLField(max_length=500, blank=True)
    address = models.EmailField(blank=True)
    secret = models.CharField(max_length=128, blank=True)
    events = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Removing a target keeps it (and its deliveries' history); it just stops receiving.
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="notification_target_destination",
                condition=(
                    models.Q(kind="email", url="", secret="") & ~models.Q(address="")
                    | models.Q(kind="webhook", address="")
                    & ~models.Q(url="")
                    & ~models.Q(secret="")
                ),
            )
        ]
        # The tables keep the names they had in the ops app (migrations/0001_initial).
        db_table = "ops_notificationtarget"
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return f"{self.kind} target {self.pk} of project {self.project_id}"

    @property
    def destination(self) -> str:
        return self.address if self.kind == self.Kind.EMAIL else self.url


class Delivery(models.Model):
    """One notification to one target, with its outcome after every attempt."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    target = models.ForeignKey(
        NotificationTarget, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=32)
    release = models.ForeignKey("releases.Release", on_delete=models.CASCADE, related_name="+")
    # "cleared" is sent once per evidence manifest; other events once per occurrence (dedupe_key).
    dedupe_key = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["target", "event", "release", "dedupe_key"], name="delivery_once_per_event"
            )
        ]
        db_table = "ops_delivery"
        indexes = [models.Index(fields=["status", "created_at"])]
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event} to target {self.target_id}: {self.status}"


class Notice(models.Model):
    """The notification outbox: one row per act that some target wants to hear about, written in
    the act's own transaction, so the act and its pending notification commit together.

    A worker expands it into deliveries (one per subscribed target) and marks it processed; the
    scheduler's sweep enqueues again what a broker outage left unprocessed. `event` is a name of
    NOTIFICATION_EVENTS; "cleared" means the release may have become cleared, which the worker
    decides by evaluating the gate.
    """

    release = models.ForeignKey("releases.Release", on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=32)
    # The veto of a veto_cast / veto_lifted notice; not a key: the veto row is only read.
    veto_id = models.PositiveBigIntegerField(null=True, blank=True)
    # The hold or break-glass of an incident notice (hold_placed, break_glass_confirmed, ...).
    incident_id = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The sweep reads only the unprocessed rows, oldest first.
            models.Index(
                fields=["created_at"],
                name="notice_unprocessed",
                condition=models.Q(processed_at__isnull=True),
            )
        ]
        db_table = "ops_notice"
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.event} of release {self.release_id}"
