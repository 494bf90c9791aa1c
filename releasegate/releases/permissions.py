"""Who may do what, where the answer is more than a role's capability: each "may X" is decided here
once, and services (which refuse) and pages and the API (which offer) all ask the same function.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import REVIEWER_ROLES, Role
from releasegate.accounts.selectors import roles_by_project
from releasegate.checks.sbom import components
from releasegate.checks.vulnerabilities import evaluate_vulnerabilities, load_affected
from releasegate.errors import Conflict, NotFound, NotPermitted, ReleasegateError
from releasegate.releases.gate import GateDecision
from releasegate.releases.identifiers import MAX_ID
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
from releasegate.releases.selectors import active_vetoes_for


def may_manage_role(actor: Actor, project: Project, role: Role) -> bool:
    """Ask to grant or revoke `role` on `project` (a guarded role then still waits for a holder)."""
    if actor.system:
        return True
    if actor.can(project, Capability.MANAGE_ROLES):
        return True
    # The site administrator bootstraps a project by naming its admin, and nothing more.
    person = actor.person
    return bool(person is not None and person.is_superuser and role == Role.ADMIN)


def guarded_roles(policy: GatePolicy | None) -> frozenset[Role]:
    """Roles whose grant or revocation waits for a current holder: those that may veto, and those
    whose approval the gate requires (a second account holding one is a second approver)."""
    if policy is None:
        return frozenset()
    named = set(policy.veto_roles) | {r for r, n in policy.required_approvals.items() if n > 0}
    return frozenset(Role(r) for r in named if r in REVIEWER_ROLES)


def may_confirm_change(actor: Actor, change: GovernanceChange) -> bool:
    """Confirm (or reject) a pending governance change: a person other than its author who holds,
    now, the role that guards it: `security` for a policy change; for a role change or an IdP
    group mapping of a role, that role (never the grantee; the holder whose role is revoked may
    consent to it)."""
    person = actor.person
    if person is None or not change.is_pending or person.pk == change.requested_by_id:
        return False
    held = actor.roles(change.project)
    if change.kind == GovernanceChange.Kind.POLICY:
        return Role.SECURITY in held
    if change.kind == GovernanceChange.Kind.ROLE_GRANT and person.pk == change.subject_id:
        return False
    return Role(change.role) in held


def may_cancel_change(actor: Actor, change: GovernanceChange) -> bool:
    """Withdraw one's own pending request."""
    person = actor.person
    return person is not None and change.is_pending and person.pk == change.requested_by_id


# Each act on a release has a `*_refusal` that names why not (the error the service raises, None
# when allowed) and a `may_*` that pages ask: one decision, two askers.


def withdraw_refusal(actor: Actor, release: Release) -> ReleasegateError | None:
    """Withdraw a draft or a release in review: the person who requested it (while they may still
    edit the project's releases), or a project admin. A service token never withdraws: a pipeline
    that wants a release gone is a person's decision to make."""
    person = actor.person
    project = release.project
    requester = (
        person is not None
        and person.pk == release.requester_id
        and actor.can(project, Capability.EDIT_RELEASE)
    )
    if not requester and (person is None or Role.ADMIN not in actor.roles(project)):
        return NotPermitted(
            "Only the requester of this release or a project admin may withdraw it.",
            code="may_not_withdraw",
        )
    if not release.is_editable:
        return Conflict(f"A {release.state} release cannot be withdrawn.", code="invalid_state")
    return None


def may_withdraw(actor: Actor, release: Release) -> bool:
    return withdraw_refusal(actor, release) is None


def edit_refusal(actor: Actor, release: Release) -> ReleasegateError | None:
    """Attach or replace evidence: an editor of the project's releases, while the release is a
    draft or in review."""
    if not actor.can(release.project, Capability.EDIT_RELEASE):
        return NotPermitted("You may not edit this release.")
    if release.state == Release.State.PROMOTED:
        return Conflict("The release is promoted; its evidence is frozen.", code="not_editable")
    if release.state == Release.State.WITHDRAWN:
        return Conflict("The release was withdrawn.", code="not_editable")
    return None


def may_edit(actor: Actor, release: Release) -> bool:
    return edit_refusal(actor, release) is None


def submit_refusal(actor: Actor, release: Release) -> ReleasegateError | None:
    """Ask for review: an editor of the project's releases, of a draft."""
    if not actor.can(release.project, Capability.EDIT_RELEASE):
        return NotPermitted("You may not submit this release.")
    if release.state != Release.State.DRAFT:
        return Conflict(
            f"Only a draft can be submitted; this release is {release.state}.",
            code="invalid_state",
        )
    return None


def may_submit(actor: Actor, release: Release) -> bool:
    return submit_refusal(actor, release) is None


def _holder_refusal(actor: Actor, release: Release, role: Role, act: str) -> NotPermitted | None:
    if actor.person is None:
        return NotPermitted(
            f"Only a person may {act}; a service token never signs off.", code="not_a_person"
        )
    if role not in REVIEWER_ROLES or role not in actor.roles(release.project):
        return NotPermitted(
            f"You do not hold the {role.value} role on this project.", code="not_a_holder"
        )
    return None


def approve_refusal(
    actor: Actor, release: Release, role: Role, mine: Iterable[Approval], now: datetime
) -> ReleasegateError | None:
    """Approve in `role`: a holder of it, not the requester, of a release in review, in one role
    per person, once per evidence manifest while that approval is fresh. An approval older than
    the policy's maximum age is renewed on the same evidence, or the release would be stuck.
    `mine` are the person's approvals of this release."""
    refused = _holder_refusal(actor, release, role, "approve")
    if refused is not None:
        return refused
    person = actor.person
    assert person is not None
    if person.pk == release.requester_id:
        return NotPermitted(
            "The requester may not approve their own release.", code="requester_cannot_approve"
        )
    if release.state != Release.State.IN_REVIEW:
        return Conflict(
            f"Only a release in review can be approved; this one is {release.state}.",
            code="invalid_state",
        )
    mine = [a for a in mine if a.user_id == person.pk]
    other_role = next((a.role for a in mine if a.role != role.value), None)
    if other_role is not None:
        return Conflict(
            f"You approved this release as {other_role}; one person approves in one role only.",
            code="one_role_per_person",
        )
    policy = release.project.current_policy
    assert policy is not None
    fresh_since = now - timedelta(days=policy.max_approval_age_days)
    if any(
        a.manifest_digest == release.manifest_digest and a.created_at >= fresh_since for a in mine
    ):
        return Conflict("You already approved this evidence.", code="already_approved")
    return None


def may_approve(
    actor: Actor, release: Release, role: Role, mine: Iterable[Approval], now: datetime
) -> bool:
    return approve_refusal(actor, release, role, mine, now) is None


def veto_refusal(actor: Actor, release: Release, role: Role) -> ReleasegateError | None:
    """Veto in `role`: a holder of a role the policy lets veto, of any release not withdrawn
    (a promoted one too: a veto still stops its rollout)."""
    refused = _holder_refusal(actor, release, role, "veto")
    if refused is not None:
        return refused
    policy = release.project.current_policy
    assert policy is not None
    if role.value not in policy.veto_roles:
        return NotPermitted(
            f"The {role.value} role may not veto in this project.", code="not_a_veto_role"
        )
    if release.state == Release.State.WITHDRAWN:
        return Conflict("The release was withdrawn.", code="invalid_state")
    return None


def may_veto(actor: Actor, release: Release, role: Role) -> bool:
    return veto_refusal(actor, release, role) is None


def requests_a_release_blocked_by(person: User, veto: Veto) -> bool:
    """Whether the person requested the vetoed release, or a release the veto carries forward
    to and blocks (open, or promoted and rolling out): either way they want past it, so they
    may not be the one to lift it."""
    reach = Q(pk=veto.release_id)
    if veto.scope == Veto.Scope.CARRY_FORWARD:
        blocked_states = [Release.State.DRAFT, Release.State.IN_REVIEW, Release.State.PROMOTED]
        # As `selectors.active_vetoes_for` reaches: its project and environment unless promoted
        # before the veto was cast (whatever the id), and the same artifact.
        not_promoted_before = Q(promotion__isnull=True) | Q(
            promotion__promoted_at__gt=veto.created_at
        )
        reach |= Q(state__in=blocked_states) & (
            (Q(project_id=veto.project_id, environment=veto.environment) & not_promoted_before)
            | Q(artifact_digest=veto.artifact_digest)
        )
    return Release.objects.filter(reach, requester_id=person.pk).exists()


def lift_refusal(actor: Actor, veto: Veto) -> ReleasegateError | None:
    """Lift a veto, whether cast on the release at hand or carried forward to it: a person holding
    the vetoing role on the veto's project who requested no release it blocks."""
    person = actor.person
    if person is None:
        return NotPermitted("Only a person may lift a veto.", code="not_a_person")
    project = Project.objects.get(pk=veto.project_id)
    if Role(veto.role) not in actor.roles(project):
        return NotPermitted(
            f"Only a holder of the {veto.role} role may lift this veto.", code="not_a_holder"
        )
    if requests_a_release_blocked_by(person, veto):
        return NotPermitted(
            "The requester may not lift a veto that blocks their own release.",
            code="requester_cannot_lift",
        )
    if veto.lifted_at is not None:
        return Conflict("The veto was lifted already.", code="already_lifted")
    return None


def may_lift(actor: Actor, veto: Veto) -> bool:
    return lift_refusal(actor, veto) is None


def _reachable_through(release: Release) -> QuerySet[Veto]:
    carried = active_vetoes_for(release)
    return (
        Veto.objects.filter(Q(release_id=release.pk) | Q(pk__in=carried.values("pk")))
        .select_related("user", "lifted_by", "release", "project")
        .order_by("created_at", "id")
    )


def _seen_by(actor: Actor, release: Release, veto: Veto) -> bool:
    # One carried from another project (the same artifact) only to who may see that project:
    # to anyone else it is not there, and its id cannot be probed for through this release.
    return veto.project_id == release.project_id or actor.can(veto.project, Capability.READ)


def vetoes_through(actor: Actor, release: Release) -> list[Veto]:
    """The vetoes the page lists on `release` and whose lift may be asked through it (page and
    API alike): its own, active or lifted, and the active ones carried forward to it (from its
    project and environment, or on the same artifact in a project the actor may see). Whether
    the actor may lift one is `lift_refusal`'s to say. One query (and one per other project
    with a veto on the same artifact, to ask whether the actor sees it)."""
    return [v for v in _reachable_through(release) if _seen_by(actor, release, v)]


def veto_through(actor: Actor, release: Release, veto_id: int) -> Veto:
    """One of `vetoes_through`, by id; a 404 for any other id, whether it exists or not."""
    veto = _reachable_through(release).filter(pk=veto_id).first() if veto_id <= MAX_ID else None
    if veto is None or not _seen_by(actor, release, veto):
        raise NotFound("No such veto on this release.")
    return veto


def promote_refusal(
    actor: Actor, release: Release, decision: GateDecision
) -> ReleasegateError | None:
    """Promote: a holder of the promote capability, of a release the gate clears now."""
    if not actor.can(release.project, Capability.PROMOTE):
        return NotPermitted("You may not promote releases in this project.")
    if release.state == Release.State.PROMOTED:
        return Conflict("The release is promoted already.", code="already_promoted")
    if not decision.cleared:
        return Conflict(
            "The release is not cleared.",
            code="blocked",
            extra={"blockers": [b.as_dict() for b in decision.blockers]},
        )
    return None


def may_promote(actor: Actor, release: Release, decision: GateDecision) -> bool:
    return promote_refusal(actor, release, decision) is None


def advisory_affects_own_release(actor: Actor, project: Project, advisory_id: str) -> bool:
    """Whether the advisory affects a component of a release the person requested in the project
    (open or promoted): waiving it would be approving their own risk."""
    person = actor.person
    if person is None:
        return False
    documents = Evidence.objects.filter(
        release__project=project,
        release__requester_id=person.pk,
        release__state__in=[Release.State.DRAFT, Release.State.IN_REVIEW, Release.State.PROMOTED],
        kind=EvidenceKind.SBOM,
        is_current=True,
    ).values_list("document", flat=True)
    for document in documents:
        parts = components(document)
        affected = [a for a in load_affected(parts) if a.advisory_id == advisory_id]
        if not affected:
            continue
        # The lowest threshold: any match at all is a finding.
        outcome = evaluate_vulnerabilities(
            components=parts, affected=affected, waivers=[], threshold="low"
        )
        if outcome.status == "failed":
            return True
    return False


def may_waive_advisory(actor: Actor, project: Project, advisory_id: str) -> bool:
    """Waive one advisory for the project: a `security` holder, unless it affects a release they
    requested themselves (separation of duties, as with approvals)."""
    if not actor.can(project, Capability.WAIVE_ADVISORY):
        return False
    return not advisory_affects_own_release(actor, project, advisory_id)


def may_set_password_of(actor: Actor, user: User) -> bool:
    """Set someone's password for them (the Django admin): never for a person who holds a role on
    any project, or whoever can set it can sign in as a reviewer. They change it themselves
    (or through the sign-in provider). One's own password is one's own."""
    person = actor.person
    if person is None or not person.is_superuser:
        return False
    return person.pk == user.pk or not roles_by_project(user.pk)
