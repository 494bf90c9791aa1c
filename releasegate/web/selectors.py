"""Reads for the pages. Every rule about clearance comes from the gate (`gate_decision`); these
only load what a page shows, in a fixed number of queries."""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import (
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.functions import Now
from django.utils import timezone
from guardian.models import UserObjectPermission

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import (
    REVIEWER_ROLES,
    ROLE_PERMISSION_PREFIX,
    Role,
    permission_codename,
)
from releasegate.audit import selectors as audit_selectors
from releasegate.audit.models import AuditEvent
from releasegate.checks.findings import Findings, check_findings
from releasegate.checks.models import CheckResult
from releasegate.incidents.selectors import incident_annotations
from releasegate.releases.gate import GateDecision
from releasegate.releases.models import (
    Approval,
    Evidence,
    EvidenceKind,
    GatePolicy,
    GovernanceChange,
    Project,
    Release,
    Veto,
)
from releasegate.releases.permissions import (
    may_approve,
    may_cancel_change,
    may_confirm_change,
    may_edit,
    may_lift,
    may_promote,
    may_submit,
    may_veto,
    may_withdraw,
    vetoes_through,
)
from releasegate.releases.selectors import (
    gate_decision,
    gate_release_queryset,
    releases_visible_to,
    visible_project_ids,
)
from releasegate.web.present import (
    ItemDiff,
    VulnerabilitySummary,
    evidence_diff,
    open_findings,
    sbom_components,
    sbom_format,
    vulnerability_summary,
)

# A page of releases evaluates the gate once per row (a fixed 4 queries each); the page is bounded.
PAGE_SIZE = 20
# Filtering by cleared/blocked needs the gate of every candidate: at most this many, newest first.
GATE_FILTER_SCAN = 100
HOME_LIMIT = 20
CHECK_FIELDS = (
    "release_id",
    "check_name",
    "manifest_digest",
    "status",
    "summary",
    "details",
    "details_url",
    "reported_by_label",
    "updated_at",
)


@dataclass
class Row:
    release: Release
    decision: GateDecision


def with_gates(releases: list[Release]) -> list[Row]:
    return [Row(release=r, decision=gate_decision(r)) for r in releases]


def projects_where(actor: Actor, capability: Capability) -> list[Project]:
    ids = visible_project_ids(actor)
    projects = Project.objects.filter(pk__in=ids).select_related("current_policy")
    return [p for p in projects if actor.can(p, capability)]


def _reviewer_projects(user: Any) -> dict[int, set[str]]:
    """Project id → the reviewer roles the user holds there (one query)."""
    held: dict[int, set[str]] = {}
    rows = UserObjectPermission.objects.filter(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(Project),
        permission__codename__in=[permission_codename(r) for r in REVIEWER_ROLES],
    ).values_list("object_pk", "permission__codename")
    for pk, codename in rows:
        held.setdefault(int(pk), set()).add(codename.removeprefix(ROLE_PERMISSION_PREFIX))
    return held


@dataclass
class Waiting:
    release: Release
    roles: list[str]


def waiting_on_reviewer(user: Any) -> list[Waiting] | None:
    """Releases in review that need a decision in a role the user holds and the project's policy
    requires: not their own, and not approved by them on the current evidence while that approval
    is fresh (an expired one waits on them to renew it), nor vetoed by them.
    None when the user reviews nowhere."""
    held = _reviewer_projects(user)
    if not held:
        return None
    # As `may_approve` counts an approval: on the current evidence and within the policy's age.
    fresh_since = ExpressionWrapper(
        Now()
        - ExpressionWrapper(
            # As an IntegerField: SQLite's expressions refuse to multiply a PositiveIntegerField.
            ExpressionWrapper(
                OuterRef("project__current_policy__max_approval_age_days"),
                output_field=IntegerField(),
            )
            * timedelta(days=1),
            output_field=DurationField(),
        ),
        output_field=DateTimeField(),
    )
    mine_on_current = Approval.objects.filter(
        release_id=OuterRef("pk"),
        user_id=user.pk,
        manifest_digest=OuterRef("manifest_digest"),
        created_at__gte=fresh_since,
    )
    my_active_veto = Veto.objects.filter(
        release_id=OuterRef("pk"), user_id=user.pk, lifted_at__isnull=True
    )
    releases = (
        Release.objects.filter(state=Release.State.IN_REVIEW, project_id__in=held)
        .exclude(requester_id=user.pk)
        .exclude(Exists(mine_on_current))
        .exclude(Exists(my_active_veto))
        .select_related("project", "project__current_policy", "requester")
        .order_by("submitted_at", "id")[: HOME_LIMIT * 2]
    )
    waiting = []
    for release in releases:
        policy = release.project.current_policy
        required = set(policy.required_approvals) if policy is not None else set()
        roles = sorted(held[release.project_id] & required)
        if roles:
            waiting.append(Waiting(release=release, roles=roles))
    return waiting[:HOME_LIMIT]


def requested_by(actor: Actor) -> list[Row]:
    """The person's own open releases (draft or in review) with the gate's answer for each."""
    person = actor.person
    assert person is not None
    releases = list(
        gate_release_queryset()
        .select_related("requester")
        .filter(
            requester_id=person.pk,
            project_id__in=visible_project_ids(actor),
            state__in=[Release.State.DRAFT, Release.State.IN_REVIEW],
        )
        .order_by("-created_at", "-id")[:HOME_LIMIT]
    )
    return with_gates(releases)


@dataclass
class ReleaseFilter:
    project: str = ""
    state: str = ""
    gate: str = ""  # "cleared", "blocked" or ""
    q: str = ""


@dataclass
class ReleasePage:
    rows: list[Row]
    page: int
    has_next: bool
    scan_capped: bool = False


def release_list(actor: Actor, filters: ReleaseFilter, page: int) -> ReleasePage:
    qs: QuerySet[Release] = (
        releases_visible_to(actor)
        .select_related("project__current_policy", "promotion")
        .annotate(**incident_annotations())
    )
    if filters.project:
        qs = qs.filter(project__slug=filters.project)
    if filters.state:
        qs = qs.filter(state=filters.state)
    if filters.q:
        term = filters.q.strip()
        qs = qs.filter(Q(version__icontains=term) | Q(artifact_digest__icontains=term))
    qs = qs.order_by("-created_at", "-id")
    start = (page - 1) * PAGE_SIZE
    if not filters.gate:
        releases = list(qs[start : start + PAGE_SIZE + 1])
        return ReleasePage(
            rows=with_gates(releases[:PAGE_SIZE]), page=page, has_next=len(releases) > PAGE_SIZE
        )
    candidates = list(qs[: GATE_FILTER_SCAN + 1])
    capped = len(candidates) > GATE_FILTER_SCAN
    want_cleared = filters.gate == "cleared"
    matching = [
        row
        for row in with_gates(candidates[:GATE_FILTER_SCAN])
        if row.decision.cleared == want_cleared
    ]
    return ReleasePage(
        rows=matching[start : start + PAGE_SIZE],
        page=page,
        has_next=len(matching) > start + PAGE_SIZE,
        scan_capped=capped,
    )


@dataclass
class EvidenceView:
    kind: str
    label: str
    evidence: Evidence | None
    diff: ItemDiff | None = None
    sbom_count: int = 0
    sbom_format: str = ""
    open_findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def document(self) -> Any:
        return self.evidence.document if self.evidence is not None else None


@dataclass
class Actions:
    can_edit: bool = False
    can_submit: bool = False
    approve_roles: list[str] = field(default_factory=list)
    veto_roles: list[str] = field(default_factory=list)
    lift_veto_ids: set[int] = field(default_factory=set)
    can_promote: bool = False
    can_withdraw: bool = False


@dataclass
class CheckView:
    """A check's latest result on the current evidence, with what it found (the API's reading)."""

    result: CheckResult
    findings: Findings


@dataclass
class ReleaseDetail:
    release: Release
    decision: GateDecision
    evidence: list[EvidenceView]
    checks: list[CheckView]
    vulnerability_check: CheckResult | None
    vulnerabilities: VulnerabilitySummary | None
    approvals: list[Approval]
    vetoes: list[Veto]
    previous: Release | None
    actions: Actions
    required_items: list[str]


def _actions(
    actor: Actor,
    release: Release,
    decision: GateDecision,
    approvals: list[Approval],
    vetoes: list[Veto],
) -> Actions:
    """What to offer this person: exactly what `releases.permissions` lets them do, which the
    services ask again when they act."""
    held = sorted(actor.roles(release.project) & REVIEWER_ROLES, key=lambda r: r.value)
    now = timezone.now()
    return Actions(
        can_edit=may_edit(actor, release),
        can_submit=may_submit(actor, release),
        approve_roles=[r.value for r in held if may_approve(actor, release, r, approvals, now)],
        veto_roles=[r.value for r in held if may_veto(actor, release, r)],
        lift_veto_ids={v.pk for v in vetoes if v.is_active and may_lift(actor, v)},
        can_promote=may_promote(actor, release, decision),
        can_withdraw=may_withdraw(actor, release),
    )


def _current_evidence(release_ids: list[int]) -> dict[tuple[int, str], Evidence]:
    rows = Evidence.objects.filter(release_id__in=release_ids, is_current=True)
    return {(e.release_id, e.kind): e for e in rows}


def previous_release(release: Release) -> Release | None:
    """The project's release created just before this one (any state but withdrawn)."""
    return (
        Release.objects.filter(project_id=release.project_id)
        .exclude(state=Release.State.WITHDRAWN)
        .filter(
            Q(created_at__lt=release.created_at)
            | Q(created_at=release.created_at, pk__lt=release.pk)
        )
        .order_by("-created_at", "-id")
        .first()
    )


def release_detail(actor: Actor, release: Release) -> ReleaseDetail:
    """Everything the release page shows, in a fixed number of queries whatever the size of the
    evidence or the number of check results."""
    decision = gate_decision(release)
    previous = previous_release(release)
    ids = [release.pk] + ([previous.pk] if previous is not None else [])
    current = _current_evidence(ids)
    policy = release.project.current_policy
    assert policy is not None
    required = list(policy.required_items)
    kinds = required + [k for k in EvidenceKind.values if k not in required]
    views = []
    for kind in kinds:
        evidence = current.get((release.pk, kind))
        if evidence is None and kind not in required:
            continue
        view = EvidenceView(kind=kind, label=EvidenceKind(kind).label, evidence=evidence)
        if previous is not None:
            before = current.get((previous.pk, kind))
            view.diff = evidence_diff(
                kind,
                before.document if before is not None else None,
                evidence.document if evidence is not None else None,
            )
        if evidence is not None and kind == EvidenceKind.SBOM:
            components = sbom_components(evidence.document)
            view.sbom_count = len(components)
            view.sbom_format = sbom_format(evidence.document)
        if evidence is not None and kind == EvidenceKind.PIPELINE_REVIEW:
            view.open_findings = open_findings(evidence.document)
        views.append(view)
    latest: dict[str, CheckResult] = {}
    for result in (
        CheckResult.objects.filter(release_id=release.pk, manifest_digest=release.manifest_digest)
        .order_by("check_name", "-updated_at", "-id")
        .only(*CHECK_FIELDS)
    ):
        latest.setdefault(result.check_name, result)
    checks = [
        CheckView(result=latest[name], findings=check_findings(name, latest[name].details))
        for name in sorted(latest)
    ]
    vulnerability_check = latest.get("vulnerabilities")
    vulnerabilities = (
        vulnerability_summary(vulnerability_check.details) if vulnerability_check else None
    )
    approvals = list(Approval.objects.filter(release_id=release.pk).select_related("user"))
    vetoes = vetoes_through(actor, release)
    return ReleaseDetail(
        release=release,
        decision=decision,
        evidence=views,
        checks=checks,
        vulnerability_check=vulnerability_check,
        vulnerabilities=vulnerabilities,
        approvals=approvals,
        vetoes=vetoes,
        previous=previous,
        actions=_actions(actor, release, decision, approvals, vetoes),
        required_items=required,
    )


def audit_events(release: Release) -> QuerySet[AuditEvent]:
    return audit_selectors.release_events(release)


def policy_versions(project: Project) -> QuerySet[GatePolicy]:
    return (
        GatePolicy.objects.filter(project=project).select_related("created_by").order_by("-version")
    )


@dataclass
class Holder:
    username: str
    user_id: int
    roles: list[str]


def role_holders(project: Project) -> list[Holder]:
    rows = (
        UserObjectPermission.objects.filter(
            content_type=ContentType.objects.get_for_model(Project),
            object_pk=str(project.pk),
            permission__codename__startswith=ROLE_PERMISSION_PREFIX,
        )
        .select_related("user", "permission")
        .order_by("user__username")
    )
    holders: dict[int, Holder] = {}
    for row in rows:
        holder = holders.setdefault(row.user_id, Holder(row.user.get_username(), row.user_id, []))
        holder.roles.append(row.permission.codename.removeprefix(ROLE_PERMISSION_PREFIX))
    order = [r.value for r in Role]
    for holder in holders.values():
        holder.roles.sort(key=order.index)
    return list(holders.values())


@dataclass
class PendingChange:
    change: GovernanceChange
    may_confirm: bool
    may_cancel: bool


def _pending(actor: Actor, changes: QuerySet[GovernanceChange]) -> list[PendingChange]:
    listed = changes.filter(status=GovernanceChange.Status.PENDING).select_related(
        "project", "requested_by", "subject"
    )
    return [
        PendingChange(
            change=c,
            may_confirm=may_confirm_change(actor, c),
            may_cancel=may_cancel_change(actor, c),
        )
        for c in listed.order_by("requested_at", "id")
    ]


def pending_changes(actor: Actor, project: Project) -> list[PendingChange]:
    """The project's governance requests waiting for confirmation, with what this person may do."""
    return _pending(actor, GovernanceChange.objects.filter(project=project))


def changes_waiting_on(actor: Actor) -> list[PendingChange]:
    """Pending governance requests, in projects the person reviews in, that they may confirm."""
    person = actor.person
    if person is None:
        return []
    reviewed = _reviewer_projects(person)
    if not reviewed:
        return []
    found = _pending(actor, GovernanceChange.objects.filter(project_id__in=reviewed))
    return [p for p in found if p.may_confirm][:HOME_LIMIT]
