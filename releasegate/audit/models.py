from django.db import models
from django.utils import timezone

GENESIS_HASH = "0" * 64


class AuditChain(models.Model):
    """The head of one hash chain: one per project, and one (`GLOBAL`) for events of no project.

    `size` and `head_hash` are the chain's last event; its row is locked while appending, so two
    writers of one chain never chain to the same event, and writers of two chains never meet.
    On PostgreSQL a trigger refuses DELETE on this table (see the migrations).
    """

    # Not a project slug (slugs have no underscore), so it never names a project's chain.
    GLOBAL = "_global"

    name = models.CharField(max_length=80, unique=True)
    project_id = models.BigIntegerField(null=True, blank=True, unique=True)
    size = models.PositiveBigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"chain {self.name} at #{self.size}"


class AuditEvent(models.Model):
    """One append-only event, number `seq` of its chain.

    `entry_hash` covers every field of the event (its chain and seq included); `hash` links it
    to the chain's previous event: sha256(prev_hash + entry_hash). On PostgreSQL a trigger
    refuses UPDATE and DELETE on this table (see the migrations); `verify_audit` recomputes every
    chain and names the first event that does not fit.
    """

    chain = models.ForeignKey(AuditChain, on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=64)
    actor = models.CharField(max_length=150)
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    project_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    release_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    data = models.JSONField(default=dict)
    entry_hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        # The order events were appended in, across chains; within a chain it is `seq`.
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_event_chain_seq_unique")
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor}"
