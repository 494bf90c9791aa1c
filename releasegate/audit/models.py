from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One append-only event. `hash` covers every other field and the previous event's hash.

    On PostgreSQL a trigger refuses UPDATE and DELETE on this table (see the migrations);
    `verify_audit` recomputes the chain and names the first event that does not fit.
    """

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=64)
    actor = models.CharField(max_length=150)
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    project_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    release_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor}"


class AuditHead(models.Model):
    """A single row locked while appending, so two writers can never chain to the same event."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit head at #{self.last_seq}"
