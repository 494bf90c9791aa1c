"""Shapes of API bodies, for the OpenAPI schema and for parsing query strings.

Request bodies are handed to the services as sent: the services validate them and name the field
that is wrong, so no rule lives here twice.
"""

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from releasegate.checks.models import CheckStatus
from releasegate.releases.gate import BlockerCode
from releasegate.releases.identifiers import (
    DIGEST_HELP,
    DIGEST_RE,
    ENVIRONMENT_HELP,
    ENVIRONMENT_RE,
    SLUG_HELP,
    SLUG_RE,
    VERSION_HELP,
    VERSION_RE,
)
from releasegate.releases.models import EvidenceKind, Release, Veto
from releasegate.releases.policy import CHECK_NAMES

BLOCKER_CODES = [code.value for code in BlockerCode]


def _whole(pattern: Any, max_length: int, help_text: str, **kwargs: Any) -> serializers.RegexField:
    """A query parameter matched whole (the pattern is anchored with \\A and \\Z), as sent:
    not trimmed, so a trailing newline is a 400 rather than quietly another value."""
    return serializers.RegexField(
        pattern,
        required=False,
        max_length=max_length,
        trim_whitespace=False,
        help_text=help_text,
        error_messages={"invalid": help_text},
        **kwargs,
    )


# Errors -------------------------------------------------------------------------------------------


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable, e.g. `token_expired`.")
    message = serializers.CharField(help_text="For people.")
    errors = FieldErrorSerializer(many=True, help_text="The fields that are wrong, if any.")


class BlockerSerializer(serializers.Serializer):
    """One reason the release is not cleared; further keys depend on the code (role, have, need,
    kind, check, status, by, reason, since, veto_id, release_id)."""

    code = serializers.ChoiceField(choices=BLOCKER_CODES)
    message = serializers.CharField()


class BlockedErrorSerializer(ErrorSerializer):
    blockers = BlockerSerializer(many=True)


# Gate ---------------------------------------------------------------------------------------------


class GateQuerySerializer(serializers.Serializer):
    project = _whole(SLUG_RE, 64, SLUG_HELP)
    version = _whole(VERSION_RE, 100, VERSION_HELP)
    digest = _whole(DIGEST_RE, 71, DIGEST_HELP)
    # Where the caller deploys: a release of another environment answers blocked.
    environment = _whole(ENVIRONMENT_RE, 64, ENVIRONMENT_HELP)

    def validate(self, attrs: dict) -> dict:
        if "digest" in attrs:
            if "version" in attrs:
                raise serializers.ValidationError(
                    {"version": "give a version or a digest, not both"}
                )
            return attrs
        missing = {
            name: "required without digest" for name in ("project", "version") if name not in attrs
        }
        if missing:
            raise serializers.ValidationError(missing)
        return attrs


class GateReleaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField()
    version = serializers.CharField()
    artifact_digest = serializers.CharField()
    environment = serializers.CharField()
    state = serializers.ChoiceField(choices=Release.State.values)


class GateDecisionSerializer(serializers.Serializer):
    release = GateReleaseSerializer()
    cleared = serializers.BooleanField()
    blockers = BlockerSerializer(many=True)
    policy_version = serializers.IntegerField()
    manifest_digest = serializers.CharField()
    evaluated_at = serializers.DateTimeField()


# Releases -----------------------------------------------------------------------------------------


class ReleaseListQuerySerializer(serializers.Serializer):
    project = _whole(SLUG_RE, 64, SLUG_HELP)
    state = serializers.ChoiceField(required=False, choices=Release.State.values)
    version = _whole(VERSION_RE, 100, VERSION_HELP)


class EnvironmentQuerySerializer(serializers.Serializer):
    environment = _whole(ENVIRONMENT_RE, 64, ENVIRONMENT_HELP)


class ReleaseCreateSerializer(serializers.Serializer):
    project = serializers.CharField(help_text="The project's slug.")
    version = serializers.CharField()
    artifact_digest = serializers.CharField(help_text="sha256: and 64 lowercase hex digits.")
    environment = serializers.CharField(required=False, default="production")
    summary = serializers.CharField(required=False, allow_blank=True, default="")


class ReleaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField()
    version = serializers.CharField()
    artifact_digest = serializers.CharField()
    environment = serializers.CharField()
    summary = serializers.CharField(allow_blank=True)
    state = serializers.ChoiceField(choices=Release.State.values)
    requester = serializers.CharField()
    manifest_digest = serializers.CharField()
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)


class EvidenceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=EvidenceKind.values)
    digest = serializers.CharField()
    attached_by = serializers.CharField()
    attached_at = serializers.DateTimeField()
    link = serializers.CharField(allow_blank=True)


class EvidenceAttachedSerializer(EvidenceSerializer):
    manifest_digest = serializers.CharField()


# Findings (releasegate.checks.findings): what a check found, one shape per `kind` -------------


class _FindingSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="Which fields follow (the discriminator).")
    counts = serializers.BooleanField(
        help_text="Counts against the gate: the check fails because of it."
    )
    text = serializers.CharField(help_text="One line for people, as the release page shows it.")
    severity = serializers.CharField(
        allow_blank=True, help_text="low, medium, high or critical where the finding has one."
    )


class WaiverStateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class AdvisoryFindingSerializer(_FindingSerializer):
    """vulnerabilities: an advisory affecting a component of the SBOM."""

    advisory = serializers.CharField(help_text="The OSV id.")
    aliases = serializers.ListField(child=serializers.CharField(), help_text="CVE, GHSA, ...")
    component = serializers.CharField()
    version = serializers.CharField()
    purl = serializers.CharField()
    severity_given = serializers.BooleanField(
        help_text="False when the advisory names no severity (counted as high)."
    )
    fixed_versions = serializers.ListField(
        child=serializers.CharField(),
        help_text="The first fixed version after this one in each affecting range; may be empty.",
    )
    # Plain strings: `status` and evidence enums elsewhere in the schema would collide by name.
    status = serializers.CharField(
        help_text="`failing` (counts), `waived` (an active waiver covers it) or "
        "`below_threshold` (under the policy's vulnerability_threshold)."
    )
    waiver = WaiverStateSerializer(allow_null=True, help_text="The waiver that covers it.")


class LicenseFindingSerializer(_FindingSerializer):
    """licenses: a component whose license cannot be honoured without a denied one."""

    component = serializers.CharField()
    version = serializers.CharField()
    license = serializers.CharField(help_text="As the SBOM states it (an SPDX expression).")
    denied = serializers.ListField(child=serializers.CharField())


class PipelineFindingSerializer(_FindingSerializer):
    """pipeline_findings: an open high or critical finding of the pipeline review."""

    id = serializers.CharField()
    title = serializers.CharField(allow_blank=True)


class DataFlowFindingSerializer(_FindingSerializer):
    """data_flow: a flow that breaks a rule."""

    flow = serializers.CharField()
    rule = serializers.ChoiceField(choices=["credentials_to_third_party", "agreement_missing"])
    reason = serializers.CharField()


class AccessFindingSerializer(_FindingSerializer):
    """least_privilege: an identity that breaks a rule."""

    identity = serializers.CharField()
    rule = serializers.ChoiceField(choices=["unjustified_permission", "no_authentication"])
    reason = serializers.CharField()


class MonitoringGapSerializer(_FindingSerializer):
    """monitoring_coverage: what the plan lacks."""

    gap = serializers.CharField(help_text="e.g. `no output_anomaly signal`, `no owner`.")


class SchemaProblemSerializer(_FindingSerializer):
    """sbom_valid: where the document breaks its schema."""

    where = serializers.CharField()
    problem = serializers.CharField()


class CiRunFindingSerializer(_FindingSerializer):
    """external_ci (GitHub check-runs): one run; counts unless completed and passing."""

    name = serializers.CharField()
    status = serializers.CharField()
    conclusion = serializers.CharField(allow_blank=True)


class CiPipelineFindingSerializer(_FindingSerializer):
    """external_ci (GitLab): the pipeline; counts unless it succeeded."""

    status = serializers.CharField()
    web_url = serializers.CharField(allow_blank=True)


class MissingEvidenceFindingSerializer(_FindingSerializer):
    """Any check whose evidence is not attached."""

    evidence = serializers.CharField(help_text="The evidence kind, e.g. `sbom`.")


FINDING_SERIALIZERS = {
    "advisory": AdvisoryFindingSerializer,
    "license": LicenseFindingSerializer,
    "pipeline_finding": PipelineFindingSerializer,
    "data_flow": DataFlowFindingSerializer,
    "access": AccessFindingSerializer,
    "monitoring_gap": MonitoringGapSerializer,
    "schema_problem": SchemaProblemSerializer,
    "ci_run": CiRunFindingSerializer,
    "ci_pipeline": CiPipelineFindingSerializer,
    "missing_evidence": MissingEvidenceFindingSerializer,
}


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="Finding",
        serializers=FINDING_SERIALIZERS,
        resource_type_field_name="kind",
    )
)
class FindingField(serializers.JSONField):
    pass


class CheckResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    check = serializers.CharField()
    status = serializers.ChoiceField(choices=CheckStatus.values)
    source = serializers.CharField()
    external_id = serializers.CharField(allow_blank=True)
    summary = serializers.CharField(allow_blank=True)
    details_url = serializers.CharField(allow_blank=True)
    manifest_digest = serializers.CharField()
    current = serializers.BooleanField(help_text="Computed on the current evidence.")
    updated_at = serializers.DateTimeField()
    findings = serializers.ListField(
        child=FindingField(),
        allow_null=True,
        help_text="Every finding the result lists, those that count against the gate first "
        "(null for a result on older evidence): the release page's list.",
    )
    unlisted_counting = serializers.IntegerField(
        allow_null=True,
        help_text="Findings that count against the gate but are not listed (a check lists at "
        "most 200 of each kind).",
    )


class ApprovalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=["approve"])
    role = serializers.CharField()
    by = serializers.CharField()
    comment = serializers.CharField(allow_blank=True)
    manifest_digest = serializers.CharField()
    current = serializers.BooleanField(help_text="Given on the current evidence.")
    created_at = serializers.DateTimeField()


class VetoSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=["veto"])
    release_id = serializers.IntegerField()
    role = serializers.CharField()
    by = serializers.CharField()
    reason = serializers.CharField()
    scope = serializers.ChoiceField(choices=Veto.Scope.values)
    created_at = serializers.DateTimeField()
    active = serializers.BooleanField()
    lifted_at = serializers.DateTimeField(allow_null=True)
    lifted_by = serializers.CharField(allow_null=True)
    lift_reason = serializers.CharField(allow_blank=True)


class ReleaseDetailSerializer(ReleaseSerializer):
    evidence = EvidenceSerializer(many=True, help_text="The current evidence of each item.")
    checks = CheckResultSerializer(many=True)
    signoffs = ApprovalSerializer(many=True)
    vetoes = VetoSerializer(many=True, help_text="Vetoes cast on this release, active or lifted.")


class ReleaseListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = ReleaseSerializer(many=True)


# Acts ---------------------------------------------------------------------------------------------


class SignoffRequestSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["security", "sme"])
    decision = serializers.ChoiceField(choices=["approve", "veto"])
    reason = serializers.CharField(
        required=False, allow_blank=True, help_text="Required for a veto; a comment on approval."
    )
    scope = serializers.ChoiceField(
        required=False,
        choices=Veto.Scope.values,
        help_text="Vetoes: carry_forward (default) or release.",
    )


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()


class CheckReportSerializer(serializers.Serializer):
    check = serializers.ChoiceField(choices=list(CHECK_NAMES))
    status = serializers.ChoiceField(choices=CheckStatus.values)
    external_id = serializers.CharField(max_length=200)
    summary = serializers.CharField(required=False, allow_blank=True, max_length=1000)
    details_url = serializers.URLField(required=False, allow_blank=True, max_length=500)


class PromotionSerializer(serializers.Serializer):
    release = ReleaseSerializer()
    decision = GateDecisionSerializer()


class AuditEventSerializer(serializers.Serializer):
    chain = serializers.CharField(help_text="The chain: the project's slug, or `_global`.")
    seq = serializers.IntegerField(help_text="The event's number in its chain, from 1.")
    created_at = serializers.DateTimeField()
    action = serializers.CharField()
    actor = serializers.CharField()
    actor_user_id = serializers.IntegerField(allow_null=True)
    project_id = serializers.IntegerField(allow_null=True)
    release_id = serializers.IntegerField(allow_null=True)
    data = serializers.JSONField()
    entry_hash = serializers.CharField(help_text="SHA-256 over every field above.")
    prev_hash = serializers.CharField(help_text="The hash of event seq-1 of the chain.")
    hash = serializers.CharField(help_text="sha256(prev_hash + entry_hash), hex.")


class ChainProofSerializer(serializers.Serializer):
    chain = serializers.CharField()
    from_seq = serializers.IntegerField(help_text="The seq of the trail's first event.")
    size = serializers.IntegerField(help_text="The chain's size when exported.")
    head_hash = serializers.CharField(help_text="The hash of event `size`.")
    entry_hashes = serializers.ListField(
        child=serializers.CharField(),
        help_text="The entry hash of every event of the chain from `from_seq` to `size`.",
    )


class AuditTrailSerializer(serializers.Serializer):
    release = ReleaseSerializer()
    events = AuditEventSerializer(many=True)
    proof = ChainProofSerializer(allow_null=True)


class ProjectAuditTrailSerializer(serializers.Serializer):
    project = serializers.CharField()
    events = AuditEventSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, if any.")


class WaiverRequestSerializer(serializers.Serializer):
    advisory_id = serializers.CharField(help_text="An imported OSV id or one of its aliases (CVE).")
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField(help_text="In the future, at most a year away.")


class WaiverSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField()
    advisory_id = serializers.CharField()
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField()
    created_by = serializers.CharField()
    created_at = serializers.DateTimeField()


# Governance requests ------------------------------------------------------------------------------


class OptionalReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True)


class GovernanceChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.CharField()
    # Plain strings: `kind` and `status` enums elsewhere in the schema would collide by name.
    kind = serializers.CharField(
        help_text="`policy`, `role_grant`, `role_revoke`, `group_mapping_add` or "
        "`group_mapping_remove`."
    )
    status = serializers.CharField(help_text="`pending`, `applied`, `rejected` or `cancelled`.")
    requested_by = serializers.CharField()
    requested_at = serializers.DateTimeField()
    note = serializers.CharField(allow_blank=True)
    user = serializers.CharField(allow_null=True, help_text="Role changes: whose role.")
    role = serializers.CharField(
        allow_null=True, help_text="Role and group mapping changes: which role."
    )
    group = serializers.CharField(
        allow_null=True, help_text="Group mapping changes: the IdP group."
    )
    from_version = serializers.IntegerField(
        allow_null=True, help_text="Policy changes: the version it applies to."
    )
    policy = serializers.JSONField(allow_null=True, help_text="Policy changes: the whole policy.")
    weakenings = serializers.ListField(
        child=serializers.CharField(), help_text="Policy changes: what it loosens, in words."
    )
    decided_by = serializers.CharField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_reason = serializers.CharField(allow_blank=True)
    may_confirm = serializers.BooleanField(help_text="Whether the caller may confirm or reject.")
    may_cancel = serializers.BooleanField(help_text="Whether the caller may cancel (its author).")


class GovernanceChangeListSerializer(serializers.Serializer):
    results = GovernanceChangeSerializer(many=True)
