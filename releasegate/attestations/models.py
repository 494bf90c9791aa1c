from django.db import models
from django.utils import timezone


class IssuedAttestation(models.Model):
    """One signed clearance handed out, so that it can be revoked. Its id is inside the signed
    statement (the predicate's `releasegate.attestation_id`) and names it on the revocation list."""

    release = models.ForeignKey(
        "releases.Release", on_delete=models.PROTECT, related_name="attestations"
    )
    # Copied from the release so the revocation list is one indexed query per caller.
    project = models.ForeignKey(
        "releases.Project", on_delete=models.PROTECT, related_name="attestations"
    )
    subject_digest = models.CharField(max_length=71)
    environment = models.CharField(max_length=64)
    policy_version = models.PositiveIntegerField()
    manifest_digest = models.CharField(max_length=71)
    keyid = models.CharField(max_length=64)
    # sha256 of the exact signed payload: what was handed out, without storing it twice.
    payload_digest = models.CharField(max_length=71)
    issued_by_label = models.CharField(max_length=150)
    issued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-issued_at", "-id"]

    def __str__(self) -> str:
        return f"attestation {self.pk} of release {self.release_id}"


class Revocation(models.Model):
    """An issued attestation withdrawn: a veto or hold now blocks its release."""

    attestation = models.OneToOneField(
        IssuedAttestation, on_delete=models.PROTECT, related_name="revocation"
    )
    project = models.ForeignKey("releases.Project", on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    # What revoked it, e.g. `veto:12` or `hold:3`.
    cause = models.CharField(max_length=64)
    revoked_by_label = models.CharField(max_length=150)
    revoked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["project", "revoked_at"])]
        ordering = ["-revoked_at", "-id"]

    def __str__(self) -> str:
        return f"revocation of attestation {self.attestation_id}"
