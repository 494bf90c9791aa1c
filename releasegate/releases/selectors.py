"""Reads. The gate's facts load in a fixed number of queries whatever their number."""

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias, TypedDict

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Case, Exists, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone
from guardian.models import UserObjectPermission

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.models import ApiToken
from releasegate.accounts.roles import ROLE_PERMISSION_PREFIX
from releasegate.accounts.selectors import project_ids_with_role
from releasegate.checks.models import AdvisoryGeneration, CheckResult, WaiverGeneration
from releasegate.errors import NotFound
from releasegate.incidents.selectors import (
    break_glass_facts,
    hold_facts,
    incident_annotations,
)
from releasegate.releases import gate_statement
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
from releasegate.releases.models import (
    Approval,
    Evidence,
    GatePolicy,
    Project,
    Release,
    Veto,
)
from releasegate.releases.questions import GateQuestion
from releasegate.releases.signals import gate_evaluated


def visible_project_ids(actor: Actor) -> list[int]:
    """The projects whose releases the actor may read (a narrow token, e.g. alerts:write, none)."""
    if actor.is_service and actor.token is not None:
        project_id = actor.token.project_id
        readable = project_id is not None and actor.token_grants(Capability.READ)
        return [project_id] if readable and project_id is not None else []
    if actor.person is None:
        return []
    return project_ids_with_role(actor.person)


class CheckGenerations(TypedDict):
    """The annotations `with_check_generations` adds to a release."""

    advisory_generation: int
    waiver_generation: int


# A release loaded with its check generations (`with_check_generations`): to the checker, a Release
# with those two attributes; at run time (where WithAnnotations takes one argument), a Release.
if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    GenerationsRelease: TypeAlias = WithAnnotations[Release, CheckGenerations]
else:
    GenerationsRelease = Release


def releases_visible_to(actor: Actor) -> QuerySet[GenerationsRelease]:
    """The actor's releases, with the check generations the gate reads (so a list can ask the
    gate of each without a query more)."""
    return with_check_generations(
        Release.objects.filter(project_id__in=visible_project_ids(actor)).select_related(
            "project", "requester"
        )
    )


def release_for(actor: Actor, release_id: int) -> GenerationsRelease:
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
        vulnerability_threshold=policy.vulnerability_threshold,
        license_denylist=tuple(policy.license_denylist),
        external_ci=dict(policy.external_ci),
    )


def with_check_generations(releases: QuerySet[Release]) -> QuerySet[GenerationsRelease]:
    """Releases annotated with the advisory and waiver generations their checks' inputs include
    (`advisory_generation`, `waiver_generation`), read in the same query."""
    return releases.annotate(
        advisory_generation=Coalesce(
            Subquery(AdvisoryGeneration.objects.order_by().values("value")[:1]), 0
        ),
        waiver_generation=Coalesce(
            Subquery(
                WaiverGeneration.objects.filter(project_id=OuterRef("project_id")).values("value")[
                    :1
                ]
            ),
            0,
        ),
    )


def _promoted_at(release: Release) -> datetime | None:
    if release.state != Release.State.PROMOTED:
        return None
    promotion = getattr(release, "promotion", None)
    return promotion.promoted_at if promotion is not None else None


def active_vetoes_for(release: Release) -> QuerySet[Veto]:
    """Active vetoes that block this release: its own; a carried-forward one cast in its project
    and environment unless the release was already promoted when it was cast (whatever the
    release's id or version: a spare draft made before the veto does not escape it); and a
    carried-forward one on the same artifact digest."""
    carry = Q(scope=Veto.Scope.CARRY_FORWARD)
    promoted_at = _promoted_at(release)
    not_promoted_before = Q() if promoted_at is None else Q(created_at__lt=promoted_at)
    return (
        Veto.objects.filter(lifted_at__isnull=True)
        .filter(
            Q(release_id=release.pk)
            | (
                carry
                & Q(project_id=release.project_id, environment=release.environment)
                & not_promoted_before
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


def load_gate_facts(release: GenerationsRelease) -> GateFacts:
    """Load every fact the gate reads: 4 queries beyond the release itself (which must have been
    loaded by `gate_release_queryset`: with its project, current policy, promotion, check
    generations and incident annotations), and one each for holds and break-glass when the
    release's annotations say there are any."""
    policy = release.project.current_policy
    if policy is None:
        raise NotFound("The project has no gate policy.")
    promoted_at = _promoted_at(release)
    evidence = tuple(
        EvidenceFact(kind=e.kind, digest=e.digest, reviewed_at=e.reviewed_at)
        for e in Evidence.objects.filter(release_id=release.pk, is_current=True)
        .annotate(reviewed_at=KeyTextTransform("reviewed_at", "document"))
        .only("kind", "digest")
        .order_by("kind")
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
        .order_by("created_at", "id")
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
        for v in active_vetoes_for(release).order_by("created_at", "id")
    )
    checks = tuple(
        CheckFact(
            check=c.check_name,
            status=c.status,
            manifest_digest=c.manifest_digest,
            updated_at=c.updated_at,
            summary=c.summary,
            valid_until=c.valid_until,
            inputs_digest=c.inputs_digest,
        )
        for c in CheckResult.objects.filter(
            release_id=release.pk, manifest_digest=release.manifest_digest
        )
        .only(
            "check_name",
            "status",
            "manifest_digest",
            "updated_at",
            "summary",
            "valid_until",
            "inputs_digest",
        )
        .order_by("check_name", "-updated_at", "id")
    )
    holds = hold_facts(release)
    break_glass, reviews_due = break_glass_facts(release)
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
        holds=holds,
        break_glass=break_glass,
        reviews_due=reviews_due,
        advisory_generation=release.advisory_generation,
        waiver_generation=release.waiver_generation,
    )


def load_bearer_gate_facts(
    prefix: str, key_id: str, secret: str, question: GateQuestion
) -> tuple[ApiToken, GateFacts | None]:
    """PostgreSQL only: the bearer token (`token_parts` of it) and the gate facts of the release
    it names among the projects the token may read, in one round trip (`gate_statement`): the
    same token as `token_verify` and the same facts as `gate_statement.read_visible` over
    `visible_project_ids` (its reference). The token is verified by `token_checked` before any
    fact is looked at: TokenRejected when it is not valid, whatever the facts say."""
    token, found = gate_statement.read_bearer(prefix, key_id, secret, question)
    if found is None:
        return token, None
    # The statement found it among the projects where a personal token's user holds a role, or
    # in a service token's project; the service token's scopes decide whether it reads that
    # project (a narrow one reads none), before the facts are read, so it learns nothing of them.
    actor = Actor.for_token(token)
    if actor.is_service and found.project_id not in visible_project_ids(actor):
        return token, None
    return token, found.facts()


def bearer_gate_decision(
    prefix: str, key_id: str, secret: str, question: GateQuestion
) -> tuple[ApiToken, GateDecision | None]:
    """The verified token and the gate's answer for the release it names, in one round trip (see
    `load_bearer_gate_facts`), None when it names none it may see (a 404 for the caller);
    TokenRejected as `token_verify` would."""
    token, facts = load_bearer_gate_facts(prefix, key_id, secret, question)
    return token, None if facts is None else decision_from_facts(facts, question.environment)


def gate_release_queryset() -> QuerySet[GenerationsRelease]:
    """Releases loaded with everything the gate reads alongside them, in one query."""
    return with_check_generations(
        Release.objects.select_related("project", "project__current_policy", "promotion")
    ).annotate(**incident_annotations())


def decision_from_facts(facts: GateFacts, environment: str | None = None) -> GateDecision:
    """The gate's answer over loaded facts, now, announced to metrics."""
    decision = evaluate_gate(facts, timezone.now(), environment)
    gate_evaluated.send(sender=None, decision=decision)
    return decision


def gate_decision(release: GenerationsRelease) -> GateDecision:
    """The gate's answer for a release loaded with `gate_release_queryset`, announced to metrics."""
    return decision_from_facts(load_gate_facts(release))


def visible_gate_decision(actor: Actor, question: GateQuestion) -> GateDecision:
    """The gate's answer to the actor's question, for a release among the projects it may see;
    a 404 otherwise."""
    return gate_decision_among(visible_project_ids(actor), question)


def release_among(project_ids: list[int], question: GateQuestion) -> GenerationsRelease | None:
    """The release a gate question names among `project_ids`, loaded for `load_gate_facts`: the
    ORM reference of the one statement's choice (`gate_statement`)."""
    releases = gate_release_queryset().filter(project_id__in=project_ids)
    if question.release_id is not None:
        releases = releases.filter(pk=question.release_id)
    if question.project_slug is not None:
        releases = releases.filter(project__slug=question.project_slug)
    if question.version is not None:
        releases = releases.filter(version=question.version)
    if question.artifact_digest is not None:
        releases = releases.filter(artifact_digest=question.artifact_digest)
    # A digest released to several environments: the release of the one asked about.
    asked_first = Case(When(environment=question.environment, then=0), default=1)
    return releases.order_by(asked_first, "-created_at", "-id").first()


def gate_decision_among(project_ids: list[int], question: GateQuestion) -> GateDecision:
    """As `visible_gate_decision`, among `project_ids`: for a caller that may ask the gate of a
    project without reading it (an admission token), decided by the caller's own "may"."""
    if connection.vendor == "postgresql":
        facts = gate_statement.read_visible(project_ids, question)
    else:
        release = release_among(project_ids, question)
        facts = load_gate_facts(release) if release is not None else None
    if facts is None:
        raise NotFound("No such release.")
    return decision_from_facts(facts, question.environment)
