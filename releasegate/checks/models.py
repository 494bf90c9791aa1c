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
    status = models.CharField(max_length=16, choices=CheckStatus.choices)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.WORKER)
    external_id = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=1000, blank=True)
    details = models.JSONField(default=dict, blank=True)
    details_url = models.URLField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
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
