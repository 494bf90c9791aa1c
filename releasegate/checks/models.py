from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class CheckStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"


class CheckResult(models.Model):
    """The result of one automated check on one release, for one evidence manifest.

    A worker keeps one row per (release, check, manifest) and updates it in place; a result pushed
    by CI is keyed by its external id. The gate reads the latest row for the current manifest only.
    """

    class Source(models.TextChoices):
        WORKER = "worker", "Worker"
        CI = "ci", "Pushed by CI"

    release = models.ForeignKey(
        "releases.Release", on_delete=models.CASCADE, related_name="check_results"
    )
    check_name = models.CharField(max_length=64)
    manifest_digest = models.CharField(max_length=71)
    # `gate.check_inputs_digest` of everything the result was computed from (the manifest, the
    # policy parameters the check reads, advisory and waiver generations); empty: unknown.
    inputs_digest = models.CharField(max_length=71, blank=True, default="")
    status = models.CharField(max_length=16, choices=CheckStatus.choices)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.WORKER)
    external_id = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=1000, blank=True)
    details = models.JSONField(default=dict, blank=True)
    details_url = models.URLField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # A worker's claim on a running check lasts until then; past it the work may be taken over.
    claimed_until = models.DateTimeField(null=True, blank=True)
    # A passed result that leans on a waiver must be computed again once the waiver ends.
    valid_until = models.DateTimeField(null=True, blank=True)
    reported_by_label = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["release", "check_name", "manifest_digest"],
                condition=models.Q(source="worker"),
                name="one_worker_result_per_manifest",
            ),
            models.UniqueConstraint(
                fields=["release", "check_name", "external_id"],
                condition=models.Q(source="ci"),
                name="ci_result_idempotent_on_external_id",
            ),
        ]
        indexes = [models.Index(fields=["release", "manifest_digest"])]
        ordering = ["release", "check_name", "-updated_at"]

    def __str__(self) -> str:
        return f"{self.check_name}={self.status} on {self.release_id}"


class Advisory(models.Model):
    """One OSV advisory, imported offline (`manage.py import_osv`)."""

    osv_id = models.CharField(max_length=100, unique=True)
    aliases = models.JSONField(default=list, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    # low / medium / high / critical, or empty when the advisory gives none (counted as high).
    severity = models.CharField(max_length=16, blank=True)
    modified = models.DateTimeField(null=True, blank=True)
    withdrawn = models.DateTimeField(null=True, blank=True)
    # sha256 of the canonical OSV document, so a re-import of the same document writes nothing.
    content_digest = models.CharField(max_length=64)
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["osv_id"]

    def __str__(self) -> str:
        return self.osv_id


class AffectedPackage(models.Model):
    """One `affected[]` entry of an advisory, indexed by ecosystem and normalized package name so
    that matching an SBOM is one query per batch of names."""

    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="affected")
    ecosystem = models.CharField(max_length=64)
    name = models.CharField(max_length=300)
    ranges = models.JSONField(default=list, blank=True)
    versions = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=16, blank=True)

    class Meta:
        indexes = [models.Index(fields=["ecosystem", "name"])]

    def __str__(self) -> str:
        return f"{self.advisory_id} {self.ecosystem}/{self.name}"


class Waiver(models.Model):
    """A security holder's waiver of one advisory for one project, until expiry or revocation."""

    project = models.ForeignKey(
        "releases.Project", on_delete=models.CASCADE, related_name="advisory_waivers"
    )
    advisory_id = models.CharField(max_length=100)
    reason = models.TextField()
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "advisory_id"])]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"waiver of {self.advisory_id} for {self.project_id}"

    def is_active(self, at: datetime | None = None) -> bool:
        return self.revoked_at is None and self.expires_at > (at or timezone.now())


class AdvisoryGeneration(models.Model):
    """One row: how many times an import changed the advisory set. `vulnerabilities` results
    are bound to the generation they were computed under."""

    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"advisory generation {self.value}"


class WaiverGeneration(models.Model):
    """How many times a project's waivers changed (a waiver given or revoked); `vulnerabilities`
    results of its releases are bound to it. Expiry needs no bump: a result that used a waiver
    carries the waiver's end as `valid_until`."""

    project = models.OneToOneField(
        "releases.Project", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"waiver generation {self.value} of {self.project_id}"
