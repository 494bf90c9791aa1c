from django.conf import settings
from django.db import models
from django.utils import timezone

from releasegate.accounts.roles import role_permissions


class EvidenceKind(models.TextChoices):
    PIPELINE_REVIEW = "pipeline_review", "Pipeline security review"
    DATA_FLOW_MAP = "data_flow_map", "Data-flow map"
    SBOM = "sbom", "Software and ML bill of materials"
    MONITORING_PLAN = "monitoring_plan", "Monitoring plan"
    AGENT_ACCESS_REVIEW = "agent_access_review", "AI-identity access review"


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    current_policy = models.ForeignKey(
        "GatePolicy", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        permissions = [(codename, text) for codename, text in role_permissions()]
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


def default_environments() -> list[str]:
    return ["production", "staging"]


def default_hold_severities() -> list[str]:
    return ["critical"]


class GatePolicy(models.Model):
    """One version of a project's gate policy. Versions are never edited; a change adds one."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="policies")
    version = models.PositiveIntegerField()
    required_items = models.JSONField(default=list)
    required_checks = models.JSONField(default=list)
    required_approvals = models.JSONField(default=dict)
    veto_roles = models.JSONField(default=list)
    max_approval_age_days = models.PositiveIntegerField(default=14)
    max_review_age_days = models.PositiveIntegerField(default=180)
    vulnerability_threshold = models.CharField(max_length=16, default="high")
    license_denylist = models.JSONField(default=list, blank=True)
    external_ci = models.JSONField(default=dict, blank=True)
    # Releases may only name these: a carry-forward veto follows project + environment, so a
    # requester must not be able to escape it by inventing a new environment name.
    environments = models.JSONField(default=default_environments)
    # Alert severities that put a hold on a promoted release; how long a confirmed break-glass
    # lasts, and within how many days its post-incident review is due.
    hold_severities = models.JSONField(default=default_hold_severities)
    break_glass_hours = models.PositiveIntegerField(default=4)
    break_glass_review_days = models.PositiveIntegerField(default=7)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="policy_version_unique")
        ]
        ordering = ["project", "-version"]

    def __str__(self) -> str:
        return f"{self.project} policy v{self.version}"


class Release(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        PROMOTED = "promoted", "Promoted"
        WITHDRAWN = "withdrawn", "Withdrawn"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=100)
    artifact_digest = models.CharField(max_length=71, db_index=True)
    environment = models.CharField(max_length=64, default="production")
    summary = models.TextField(blank=True)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requested_releases"
    )
    created_via_token = models.ForeignKey(
        "accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    manifest_digest = models.CharField(max_length=71)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="release_version_unique")
        ]
        indexes = [models.Index(fields=["project", "environment", "state"])]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.project.slug} {self.version}"

    @property
    def is_editable(self) -> bool:
        return self.state in {self.State.DRAFT, self.State.IN_REVIEW}


def evidence_upload_path(instance: "Evidence", filename: str) -> str:
    return f"evidence/{instance.release_id}/{instance.kind}/{filename}"


class Evidence(models.Model):
    """One version of one checklist item's evidence; replacing it keeps the old row, not current."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="evidence")
    kind = models.CharField(max_length=32, choices=EvidenceKind.choices)
    document = models.JSONField()
    digest = models.CharField(max_length=71)
    attachment = models.FileField(upload_to=evidence_upload_path, null=True, blank=True)
    attachment_digest = models.CharField(max_length=71, blank=True)
    link = models.URLField(max_length=500, blank=True)
    is_current = models.BooleanField(default=True)
    attached_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attached_by_label = models.CharField(max_length=150)
    attached_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["release", "kind"],
                condition=models.Q(is_current=True),
                name="one_current_evidence_per_kind",
            )
        ]
        ordering = ["release", "kind", "-attached_at"]

    def __str__(self) -> str:
        return f"{self.kind} for {self.release_id}"


class Approval(models.Model):
    """An approval by one person in one role, bound to the evidence manifest it was given on."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="approvals")
    role = models.CharField(max_length=32)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    manifest_digest = models.CharField(max_length=71)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"approval {self.role} by {self.user_id} on {self.release_id}"


class Veto(models.Model):
    class Scope(models.TextChoices):
        CARRY_FORWARD = "carry_forward", "This and later releases, and the same artifact"
        RELEASE = "release", "This release only"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="vetoes")
    # Copied from the release so a carry-forward lookup is one indexed query.
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="vetoes")
    environment = models.CharField(max_length=64)
    artifact_digest = models.CharField(max_length=71, db_index=True)
    role = models.CharField(max_length=32)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.CARRY_FORWARD)
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lift_reason = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["project", "environment", "lifted_at"])]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"veto {self.role} on {self.release_id}"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None


class Promotion(models.Model):
    release = models.OneToOneField(Release, on_delete=models.PROTECT, related_name="promotion")
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    promoted_by_label = models.CharField(max_length=150)
    promoted_at = models.DateTimeField(default=timezone.now)
    manifest_digest = models.CharField(max_length=71)
    policy_version = models.PositiveIntegerField()
    decision = models.JSONField()

    def __str__(self) -> str:
        return f"promotion of {self.release_id}"


class GovernanceChange(models.Model):
    """A change to how strictly the gate judges, or to who guards it, waiting for a second person.

    A policy change that weakens the gate waits for a `security` holder other than its author; a
    grant or revocation of a guarded role (a veto role, or one whose approval is required) waits
    for a current holder of that role other than its author (and, for a grant, the grantee); so
    does mapping an IdP group to a guarded role, or removing such a mapping (its members then
    hold the role as their identity provider says, see releasegate/identity).
    Nothing changes until it is confirmed; a rejected or cancelled request changes nothing ever.
    """

    class Kind(models.TextChoices):
        POLICY = "policy", "Policy change"
        ROLE_GRANT = "role_grant", "Role grant"
        ROLE_REVOKE = "role_revoke", "Role revocation"
        GROUP_MAPPING_ADD = "group_mapping_add", "IdP group mapping"
        GROUP_MAPPING_REMOVE = "group_mapping_remove", "Removal of an IdP group mapping"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Confirmed and applied"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled by its author"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="governance_changes"
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=500, blank=True)
    # Policy changes: the whole proposed policy, the version it was computed from (a confirmation
    # applies it only on that version, so nobody confirms something other than what they read),
    # and what it loosens, in words.
    policy = models.JSONField(default=dict, blank=True)
    base_policy_version = models.PositiveIntegerField(null=True, blank=True)
    weakenings = models.JSONField(default=list, blank=True)
    # Role changes: whose role, and which.
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    role = models.CharField(max_length=32, blank=True)
    # Group mapping changes: the IdP group whose members would hold (or no longer hold) `role`.
    group = models.CharField(max_length=200, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    applied_policy = models.ForeignKey(
        GatePolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind", "subject", "role"],
                condition=models.Q(status="pending", kind__in=["role_grant", "role_revoke"]),
                name="one_pending_role_change",
            ),
            models.UniqueConstraint(
                fields=["project", "kind", "group", "role"],
                condition=models.Q(
                    status="pending", kind__in=["group_mapping_add", "group_mapping_remove"]
                ),
                name="one_pending_group_mapping_change",
            ),
            models.CheckConstraint(
                name="governance_change_shape",
                condition=(
                    models.Q(kind="policy", subject__isnull=True, base_policy_version__isnull=False)
                    | models.Q(kind__in=["role_grant", "role_revoke"], subject__isnull=False)
                    & ~models.Q(role="")
                    | models.Q(
                        kind__in=["group_mapping_add", "group_mapping_remove"],
                        subject__isnull=True,
                    )
                    & ~models.Q(role="")
                    & ~models.Q(group="")
                ),
            ),
        ]
        indexes = [models.Index(fields=["project", "status"])]
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} request {self.pk} on {self.project_id} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def is_group_mapping(self) -> bool:
        return self.kind in (self.Kind.GROUP_MAPPING_ADD, self.Kind.GROUP_MAPPING_REMOVE)
