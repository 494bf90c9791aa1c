"""Reads. The gate's facts load in a fixed number of queries whatever their number."""

from datetime import timedelta

from django.contrib.contenttypes.models import ContentType
from django.db.models import Exists, OuterRef, Q, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Concat
from django.utils import timezone
from guardian.models import UserObjectPermission

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import ROLE_PERMISSION_PREFIX, project_ids_with_role
from releasegate.checks.models import CheckResult
from releasegate.errors import NotFound
from releasegate.releases.gate import (
    ApprovalFact,
    CheckFact,
    EvidenceFact,
    GateDecision,
    GateFacts,
    PolicyFacts,
    ReleaseFacts,
    VetoFact,
    evaluate_gate,
)
from releasegate.releases.models import Approval, Evidence, GatePolicy, Project, Release, Veto
from releasegate.releases.signals import gate_evaluated


def visible_project_ids(actor: Actor) -> list[int]:
    if actor.is_service and actor.token is not None:
        return [actor.token.project_id] if actor.token.project_id else []
    if actor.person is None:
        return []
    return project_ids_with_role(actor.person)


def releases_visible_to(actor: Actor) -> QuerySet[Release]:
    return Release.objects.filter(project_id__in=visible_project_ids(actor)).select_related(
        "project", "requester"
    )


def release_for(actor: Actor, release_id: int) -> Release:
    """The release, if the actor may see it; a 404 otherwise (never a 403 that tells it exists)."""
    release = gate_release_queryset().select_related("requester").filter(pk=release_id).first()
    if release is None or not actor.can(release.project, Capability.READ):
        raise NotFound("No such release.")
    return release


def project_for(actor: Actor, slug: str) -> Project:
    project = Project.objects.select_related("current_policy").filter(slug=slug).first()
    if project is None or not actor.can(project, Capability.READ):
        raise NotFound("No such project.")
    return project


def policy_facts(policy: GatePolicy) -> PolicyFacts:
    return PolicyFacts(
        version=policy.version,
        required_items=tuple(policy.required_items),
        required_checks=tuple(policy.required_checks),
        required_approvals=dict(policy.required_approvals),
        max_approval_age=timedelta(days=policy.max_approval_age_days),
        max_review_age=timedelta(days=policy.max_review_age_days),
    )


def active_vetoes_for(release: Release) -> QuerySet[Veto]:
    """Active vetoes that block this release: its own, carried forward from earlier releases of
    the same project and environment, and any on the same artifact digest."""
    carry = Q(scope=Veto.Scope.CARRY_FORWARD)
    return (
        Veto.objects.filter(lifted_at__isnull=True)
        .filter(
            Q(release_id=release.pk)
            | (
                carry
                & Q(
                    project_id=release.project_id,
                    environment=release.environment,
                    release_id__lte=release.pk,
                )
            )
            | (carry & Q(artifact_digest=release.artifact_digest))
        )
        .select_related("user")
    )


def _holds_role(project_id: int) -> Exists:
    """Whether an approval's giver still holds its role on the project and is active."""
    return Exists(
        UserObjectPermission.objects.filter(
            user_id=OuterRef("user_id"),
            user__is_active=True,
            content_type=ContentType.objects.get_for_model(Project),
            object_pk=str(project_id),
            permission__codename=Concat(Value(ROLE_PERMISSION_PREFIX), OuterRef("role")),
        )
    )


def load_gate_facts(release: Release) -> GateFacts:
    """Load every fact the gate reads: 4 queries beyond the release itself (which must have been
    loaded with its project and current policy, see `release_for`/`load_release_for_gate`)."""
    policy = release.project.current_policy
    if policy is None:
        raise NotFound("The project has no gate policy.")
    promoted_at = None
    if release.state == Release.State.PROMOTED:
        promotion = getattr(release, "promotion", None)
        promoted_at = promotion.promoted_at if promotion is not None else None
    evidence = tuple(
        EvidenceFact(kind=e.kind, digest=e.digest, reviewed_at=e.reviewed_at)
        for e in Evidence.objects.filter(release_id=release.pk, is_current=True)
        .annotate(reviewed_at=KeyTextTransform("reviewed_at", "document"))
        .only("kind", "digest")
    )
    approvals = tuple(
        ApprovalFact(
            user_id=a.user_id,
            username=a.user.get_username(),
            role=a.role,
            manifest_digest=a.manifest_digest,
            created_at=a.created_at,
            holds_role=a.holds_role,
        )
        for a in Approval.objects.filter(release_id=release.pk)
        .select_related("user")
        .annotate(holds_role=_holds_role(release.project_id))
    )
    vetoes = tuple(
        VetoFact(
            id=v.pk,
            release_id=v.release_id,
            project_id=v.project_id,
            role=v.role,
            by=v.user.get_username(),
            reason=v.reason,
            since=v.created_at,
            scope=v.scope,
        )
        for v in active_vetoes_for(release)
    )
    checks = tuple(
        CheckFact(
            check=c.check_name,
            status=c.status,
            manifest_digest=c.manifest_digest,
            updated_at=c.updated_at,
            summary=c.summary,
            valid_until=c.valid_until,
        )
        for c in CheckResult.objects.filter(
            release_id=release.pk, manifest_digest=release.manifest_digest
        ).only("check_name", "status", "manifest_digest", "updated_at", "summary", "valid_until")
    )
    return GateFacts(
        release=ReleaseFacts(
            id=release.pk,
            project_id=release.project_id,
            project_slug=release.project.slug,
            version=release.version,
            artifact_digest=release.artifact_digest,
            environment=release.environment,
            state=release.state,
            requester_id=release.requester_id,
            promoted_at=promoted_at,
        ),
        policy=policy_facts(policy),
        evidence=evidence,
        approvals=approvals,
        vetoes=vetoes,
        checks=checks,
    )


def gate_release_queryset() -> QuerySet[Release]:
    """Releases loaded with everything the gate reads alongside them, in one query."""
    return Release.objects.select_related("project", "project__current_policy", "promotion")


def gate_decision(release: Release) -> GateDecision:
    """The gate's answer for a release loaded with `gate_release_queryset`, announced to metrics."""
    decision = evaluate_gate(load_gate_facts(release), timezone.now())
    gate_evaluated.send(sender=None, decision=decision)
    return decision
