"""Who may do what, where the answer is more than a role's capability: each "may X" is decided here
once, and services (which refuse) and pages and the API (which offer) all ask the same function.
"""

from django.contrib.auth.models import User

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import REVIEWER_ROLES, Role, roles_by_project
from releasegate.checks.sbom import components
from releasegate.checks.vulnerabilities import evaluate_vulnerabilities, load_affected
from releasegate.releases.models import (
    Evidence,
    EvidenceKind,
    GatePolicy,
    GovernanceChange,
    Project,
    Release,
)


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
    now, the role that guards it: `security` for a policy change; for a role change, that role
    (never the grantee; the holder whose role is revoked may consent to it)."""
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


def may_withdraw(actor: Actor, release: Release) -> bool:
    """Withdraw a release: the person who requested it (while they may still edit the project's
    releases), or a project admin. A service token never withdraws: a pipeline that wants a
    release gone is a person's decision to make."""
    person = actor.person
    if person is None:
        return False
    project = release.project
    if person.pk == release.requester_id and actor.can(project, Capability.EDIT_RELEASE):
        return True
    return Role.ADMIN in actor.roles(project)


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
