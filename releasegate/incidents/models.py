"""Holds placed by production alerts, and two-person, time-boxed break-glass requests."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Hold(models.Model):
    """A firing alert's hold on a promoted release: blocks its gate until a security holder lifts
    it. One Alertmanager alert (fingerprint and start) holds a release once: repeated
    notifications, and the other replicas of an HA Alertmanager, update it instead."""

    class AlertStatus(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    project = models.ForeignKey("releases.Project", on_delete=models.PROTECT, related_name="+")
    release = models.ForeignKey("releases.Release", on_delete=models.PROTECT, related_name="holds")
    fingerprint = models.CharField(max_length=64)
    alert_name = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    severity = models.CharField(max_length=64)
    # The monitoring plan's signal name the alert matched; empty when it matched none.
    signal = models.CharField(max_length=200, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    generator_url = models.CharField(max_length=1000, blank=True)
    since = models.DateTimeField()
    alert_status = models.CharField(
        max_length=16, choices=AlertStatus.choices, default=AlertStatus.FIRING
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lift_reason = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["release", "fingerprint", "since"], name="hold_once_per_alert"
            ),
            models.UniqueConstraint(
                fields=["release", "fingerprint"],
                condition=models.Q(lifted_at__isnull=True),
                name="one_active_hold_per_fingerprint",
            ),
        ]
        indexes = [models.Index(fields=["release", "lifted_at"])]
        ordering = ["since", "id"]

    def __str__(self) -> str:
        return f"hold {self.alert_name} on {self.release_id}"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None


class BreakGlass(models.Model):
    """An emergency bypass of one release's approvals and checks: opened by its requester or a
    project admin, in force only once a security holder other than both confirms it in time, for
    a fixed number of hours; a post-incident review then comes due."""

    project = models.ForeignKey("releases.Project", on_delete=models.PROTECT, related_name="+")
    release = models.ForeignKey(
        "releases.Release", on_delete=models.PROTECT, related_name="break_glasses"
    )
    reason = models.TextField()
    incident = models.CharField(max_length=200)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    confirm_by = models.DateTimeField()
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirm_reason = models.TextField(blank=True)
    # Fixed at confirmation from the policy then in force, so a later policy edit cannot stretch it.
    until = models.DateTimeField(null=True, blank=True)
    review_due = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_summary = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["release", "confirmed_at"]),
            models.Index(fields=["project", "reviewed_at"]),
        ]
        ordering = ["requested_at", "id"]
        verbose_name_plural = "break-glasses"

    def __str__(self) -> str:
        return f"break-glass {self.pk} on {self.release_id}"
