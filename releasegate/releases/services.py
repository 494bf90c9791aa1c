"""Every write to projects, policies, releases, evidence, sign-offs, vetoes and promotions.

Each service checks who may act (from the Actor and the project), validates its input before it
writes, runs in one transaction, records an audit event, and announces what happened after commit.
"""

import hashlib
import re
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import REVIEWER_ROLES, Role, permission_codename, roles_for
from releasegate.attestations.selectors import releases_a_veto_revokes
from releasegate.attestations.services import attestations_revoke
from releasegate.audit.services import audit_record
from releasegate.errors import Conflict, FieldError, InvalidInput, NotFound, NotPermitted
from releasegate.releases.evidence import evidence_digest, manifest_digest, validate_document
from releasegate.releases.gate import GateDecision, evaluate_gate
from releasegate.releases.models import (
    Approval,
    Evidence,
    EvidenceKind,
    GatePolicy,
    Project,
    Promotion,
    Release,
    Veto,
)
from releasegate.releases.policy import ENVIRONMENT_RE, PolicySpec, policy_spec_from
from releasegate.releases.selectors import gate_release_queryset, load_gate_facts
from releasegate.releases.signals import send_after_commit
from releasegate.transactions import LockRank, lock_artifact, lock_one, lock_project, service

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+\-]{0,99}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9\-]{0,63}$")
MAX_REASON = 5000


def _require(actor: Actor, project: Project, capability: Capability, message: str) -> None:
    if not actor.can(project, capability):
        raise NotPermitted(message)


def _reason(value: Any, field: str = "reason") -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise InvalidInput(
            "A written reason is required.",
            code="reason_required",
            errors=[FieldError(field, "must not be empty")],
        )
    if len(text) > MAX_REASON:
        raise InvalidInput(
            "The reason is too long.",
            code="invalid",
            errors=[FieldError(field, f"at most {MAX_REASON} characters")],
        )
    return text


def _lock_for_gate(release: Release) -> Release:
    """Serialize every act that can turn a gate from cleared to blocked with promotion, in the
    lock order of releasegate/transactions.py: the artifact digest (a veto on the same artifact in
    another project is seen), the project row (carry-forward vetoes, policy changes), the release.
    """
    lock_artifact(release.artifact_digest)
    lock_project(release.project_id)
    return lock_one(gate_release_queryset(), LockRank.RELEASE, pk=release.pk)


# Projects, policies and roles ------------------------------------------------------------------


@service
def project_create(
    *, slug: str, name: str, actor: Actor, policy: dict[str, Any] | None = None
) -> Project:
    """Create a project with its first policy version (the default, or `policy` over it)."""
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise InvalidInput(
            "Invalid project slug.",
            errors=[FieldError("slug", "lowercase letters, digits and dashes, up to 64")],
        )
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput(
            "Invalid project name.", errors=[FieldError("name", "1 to 200 characters")]
        )
    if Project.objects.filter(slug=slug).exists():
        raise Conflict(f"A project {slug!r} exists already.", code="duplicate_project")
    spec = policy_spec_from(policy or {}, PolicySpec())
    project = Project.objects.create(slug=slug, name=name.strip())
    first = GatePolicy.objects.create(
        project=project,
        version=1,
        created_by=actor.person,
        note="initial policy",
        **spec.as_fields(),
    )
    project.current_policy = first
    project.save(update_fields=["current_policy"])
    audit_record(
        action="project_created",
        actor=actor,
        project_id=project.pk,
        data={"slug": slug, "name": project.name, "policy": spec.as_fields()},
    )
    return project


@service
def project_rename(*, project: Project, actor: Actor, name: Any) -> Project:
    """Change a project's display name: its admin, or the site administrator. Nothing else of a
    project changes outside its own service (the slug is its identity in CI and tokens)."""
    person = actor.person
    if not (
        actor.can(project, Capability.CHANGE_POLICY) or bool(getattr(person, "is_superuser", False))
    ):
        raise NotPermitted("Only a project admin may rename the project.")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise InvalidInput(
            "Invalid project name.", errors=[FieldError("name", "1 to 200 characters")]
        )
    locked = lock_one(Project.objects.all(), LockRank.PROJECT, pk=project.pk)
    clean = name.strip()
    if locked.name == clean:
        return locked
    previous = locked.name
    locked.name = clean
    locked.save(update_fields=["name"])
    project.name = clean
    audit_record(
        action="project_renamed",
        actor=actor,
        project_id=locked.pk,
        data={"name": clean, "previous": previous},
    )
    return locked


@service
def policy_change(
    *, project: Project, actor: Actor, changes: dict[str, Any], note: str = ""
) -> GatePolicy:
    """Add a new policy version: the current one with `changes` applied."""
    _require(
        actor, project, Capability.CHANGE_POLICY, "Only a project admin may change its policy."
    )
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput(
            "Nothing to change.", errors=[FieldError("(document)", "no settings given")]
        )
    locked = lock_one(
        Project.objects.select_related("current_policy"), LockRank.PROJECT, pk=project.pk
    )
    current = locked.current_policy
    assert current is not None
    base = PolicySpec(**{k: getattr(current, k) for k in PolicySpec().as_fields()})
    spec = policy_spec_from(changes, base)
    new = GatePolicy.objects.create(
        project=locked,
        version=current.version + 1,
        created_by=actor.person,
        note=(note or "")[:500],
        **spec.as_fields(),
    )
    locked.current_policy = new
    locked.save(update_fields=["current_policy"])
    project.current_policy = new
    audit_record(
        action="policy_changed",
        actor=actor,
        project_id=project.pk,
        data={"version": new.version, "from_version": current.version, "policy": spec.as_fields()},
    )
    send_after_commit("policy_changed", release_id=None, project_id=project.pk)
    return new


def _may_grant(actor: Actor, project: Project, role: Role) -> bool:
    if actor.system:
        return True
    if actor.can(project, Capability.MANAGE_ROLES):
        return True
    # The site administrator bootstraps a project by naming its admin, and nothing more.
    person = actor.person
    return bool(person is not None and person.is_superuser and role == Role.ADMIN)


def _role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(
            "Unknown role.",
            errors=[FieldError("role", f"must be one of {', '.join(r.value for r in Role)}")],
        ) from None


@service
def role_grant(*, project: Project, user: User, role: str, actor: Actor) -> None:
    """Give `user` a role on `project`. Nobody grants a role to themselves."""
    granted = _role(role)
    if not _may_grant(actor, project, granted):
        raise NotPermitted("Only a project admin may grant roles on this project.")
    if actor.person is not None and actor.person.pk == user.pk:
        raise NotPermitted("Nobody may grant a role to themselves.", code="self_grant")
    if granted in roles_for(user, project):
        return
    assign_perm(f"releases.{permission_codename(granted)}", user, project)
    audit_record(
        action="role_granted",
        actor=actor,
        project_id=project.pk,
        data={"user": user.get_username(), "role": granted.value},
    )


@service
def role_revoke(*, project: Project, user: User, role: str, actor: Actor) -> None:
    revoked = _role(role)
    if not _may_grant(actor, project, revoked):
        raise NotPermitted("Only a project admin may revoke roles on this project.")
    if revoked not in roles_for(user, project):
        return
    remove_perm(f"releases.{permission_codename(revoked)}", user, project)
    audit_record(
        action="role_revoked",
        actor=actor,
        project_id=project.pk,
        data={"user": user.get_username(), "role": revoked.value},
    )


# Releases and evidence ---------------------------------------------------------------------------


def _requester_for(actor: Actor) -> User:
    if actor.person is not None:
        return actor.person
    token = actor.token
    if token is not None and token.created_by is not None:
        # A pipeline's releases are requested by whoever issued its token: separation of duties
        # then keeps that person from approving them.
        return token.created_by
    raise NotPermitted("This token has no owner to request a release in the name of.")


@service
def release_create(
    *,
    project: Project,
    actor: Actor,
    version: Any,
    artifact_digest: Any,
    environment: Any = "production",
    summary: Any = "",
) -> Release:
    _require(
        actor, project, Capability.CREATE_RELEASE, "You may not create releases in this project."
    )
    errors = []
    if not isinstance(version, str) or not VERSION_RE.match(version):
        errors.append(FieldError("version", "1 to 100 letters, digits, '.', '_', '+' or '-'"))
    if not isinstance(artifact_digest, str) or not DIGEST_RE.match(artifact_digest):
        errors.append(
            FieldError("artifact_digest", "must be sha256: followed by 64 lowercase hex digits")
        )
    if not isinstance(environment, str) or not ENVIRONMENT_RE.match(environment):
        errors.append(FieldError("environment", "lowercase letters, digits, '_' or '-', up to 64"))
    elif environment not in _environments_of(project):
        allowed = ", ".join(_environments_of(project))
        errors.append(
            FieldError("environment", f"must be one of this project's environments: {allowed}")
        )
    if not isinstance(summary, str) or len(summary) > 5000:
        errors.append(FieldError("summary", "text of at most 5000 characters"))
    if errors:
        raise InvalidInput("The release is not valid.", errors=errors)
    # The project first, as every act of the project does (releasegate/transactions.py): a policy
    # change or a veto of the project then never interleaves with the new release.
    lock_project(project.pk)
    if Release.objects.filter(project=project, version=version).exists():
        raise Conflict(
            f"Version {version} exists already in {project.slug}.", code="duplicate_version"
        )
    try:
        with transaction.atomic():
            release = Release.objects.create(
                project=project,
                version=version,
                artifact_digest=artifact_digest,
                environment=environment,
                summary=summary,
                requester=_requester_for(actor),
                created_via_token=actor.token,
                manifest_digest=manifest_digest(artifact_digest=artifact_digest, evidence={}),
            )
    except IntegrityError:
        raise Conflict(
            f"Version {version} exists already in {project.slug}.", code="duplicate_version"
        ) from None
    audit_record(
        action="release_created",
        actor=actor,
        project_id=project.pk,
        release_id=release.pk,
        data={
            "version": version,
            "artifact_digest": artifact_digest,
            "environment": environment,
            "requester": release.requester.get_username(),
        },
    )
    send_after_commit("release_created", release_id=release.pk)
    return release


def _environments_of(project: Project) -> list[str]:
    policy = project.current_policy
    return list(policy.environments) if policy is not None else []


def _editable(release: Release) -> None:
    if release.state == Release.State.PROMOTED:
        raise Conflict("The release is promoted; its evidence is frozen.", code="not_editable")
    if release.state == Release.State.WITHDRAWN:
        raise Conflict("The release was withdrawn.", code="not_editable")


def _file_digest(upload: UploadedFile) -> str:
    h = hashlib.sha256()
    for chunk in upload.chunks():
        h.update(chunk)
    upload.seek(0)
    return f"sha256:{h.hexdigest()}"


@service
def evidence_attach(
    *,
    release: Release,
    actor: Actor,
    kind: str,
    document: Any,
    attachment: UploadedFile | None = None,
    link: str = "",
) -> Evidence:
    """Attach or replace one checklist item's evidence. The previous version is kept, not current.

    Any change gives the release a new manifest digest, so earlier approvals and check results
    stop counting.
    """
    _require(actor, release.project, Capability.EDIT_RELEASE, "You may not edit this release.")
    if kind not in EvidenceKind.values:
        raise InvalidInput(
            f"Unknown evidence kind {kind!r}.",
            code="unknown_kind",
            errors=[FieldError("kind", f"must be one of {', '.join(EvidenceKind.values)}")],
        )
    problems = validate_document(kind, document)
    if problems:
        raise InvalidInput(
            f"The {kind} document is not valid.", code="invalid_evidence", errors=problems
        )
    if link and (
        not isinstance(link, str) or not re.match(r"^https?://\S+$", link) or len(link) > 500
    ):
        raise InvalidInput("Invalid link.", errors=[FieldError("link", "an http(s) URL")])
    locked = _lock_for_gate(release)
    _editable(locked)
    attachment_digest = _file_digest(attachment) if attachment is not None else ""
    digest = evidence_digest(
        document=document, attachment_digest=attachment_digest, link=link or ""
    )
    previous = Evidence.objects.filter(release=locked, kind=kind, is_current=True).first()
    if previous is not None:
        previous.is_current = False
        previous.save(update_fields=["is_current"])
    evidence = Evidence.objects.create(
        release=locked,
        kind=kind,
        document=document,
        digest=digest,
        attachment=attachment,
        attachment_digest=attachment_digest,
        link=link or "",
        attached_by=actor.person,
        attached_by_label=actor.label,
    )
    current = dict(
        Evidence.objects.filter(release=locked, is_current=True).values_list("kind", "digest")
    )
    locked.manifest_digest = manifest_digest(
        artifact_digest=locked.artifact_digest, evidence=current
    )
    locked.save(update_fields=["manifest_digest"])
    release.manifest_digest = locked.manifest_digest
    audit_record(
        action="evidence_attached",
        actor=actor,
        project_id=locked.project_id,
        release_id=locked.pk,
        data={
            "kind": kind,
            "digest": digest,
            "replaced": previous.digest if previous else None,
            "manifest_digest": locked.manifest_digest,
            "attachment_digest": attachment_digest or None,
            "link": link or None,
        },
    )
    send_after_commit("evidence_attached", release_id=locked.pk, kind=kind)
    return evidence


@service
def release_submit(*, release: Release, actor: Actor) -> Release:
    """Ask for review: draft to in_review."""
    _require(actor, release.project, Capability.EDIT_RELEASE, "You may not submit this release.")
    locked = _lock_for_gate(release)
    if locked.state != Release.State.DRAFT:
        raise Conflict(
            f"Only a draft can be submitted; this release is {locked.state}.", code="invalid_state"
        )
    locked.state = Release.State.IN_REVIEW
    locked.submitted_at = timezone.now()
    locked.save(update_fields=["state", "submitted_at"])
    audit_record(
        action="release_submitted",
        actor=actor,
        project_id=locked.project_id,
        release_id=locked.pk,
        data={"manifest_digest": locked.manifest_digest},
    )
    send_after_commit("review_requested", release_id=locked.pk)
    return locked


@service
def release_withdraw(*, release: Release, actor: Actor, reason: Any) -> Release:
    _require(actor, release.project, Capability.EDIT_RELEASE, "You may not withdraw this release.")
    text = _reason(reason)
    locked = _lock_for_gate(release)
    if locked.state not in {Release.State.DRAFT, Release.State.IN_REVIEW}:
        raise Conflict(f"A {locked.state} release cannot be withdrawn.", code="invalid_state")
    locked.state = Release.State.WITHDRAWN
    locked.withdrawn_at = timezone.now()
    locked.save(update_fields=["state", "withdrawn_at"])
    audit_record(
        action="release_withdrawn",
        actor=actor,
        project_id=locked.project_id,
        release_id=locked.pk,
        data={"reason": text},
    )
    send_after_commit("withdrawn", release_id=locked.pk)
    return locked


# Sign-offs ----------------------------------------------------------------------------------------


def _reviewer(actor: Actor, release: Release, role: Any, act: str) -> Role:
    person = actor.person
    if person is None:
        raise NotPermitted(
            f"Only a person may {act}; a service token never signs off.", code="not_a_person"
        )
    try:
        held = Role(role)
    except ValueError:
        raise InvalidInput(
            "Unknown role.",
            errors=[FieldError("role", f"must be one of {', '.join(sorted(REVIEWER_ROLES))}")],
        ) from None
    if held not in REVIEWER_ROLES or held not in actor.roles(release.project):
        raise NotPermitted(
            f"You do not hold the {held.value} role on this project.", code="not_a_holder"
        )
    return held


@service
def approval_give(*, release: Release, actor: Actor, role: Any, comment: Any = "") -> Approval:
    """Approve in one role, bound to the release's current evidence manifest."""
    held = _reviewer(actor, release, role, "approve")
    person = actor.person
    assert person is not None
    if person.pk == release.requester_id:
        raise NotPermitted(
            "The requester may not approve their own release.", code="requester_cannot_approve"
        )
    if not isinstance(comment, str) or len(comment) > MAX_REASON:
        raise InvalidInput(
            "Invalid comment.", errors=[FieldError("reason", f"at most {MAX_REASON} characters")]
        )
    locked = _lock_for_gate(release)
    if locked.state != Release.State.IN_REVIEW:
        raise Conflict(
            f"Only a release in review can be approved; this one is {locked.state}.",
            code="invalid_state",
        )
    mine = list(Approval.objects.filter(release=locked, user_id=person.pk))
    other_role = next((a.role for a in mine if a.role != held.value), None)
    if other_role is not None:
        raise Conflict(
            f"You approved this release as {other_role}; one person approves in one role only.",
            code="one_role_per_person",
        )
    policy = locked.project.current_policy
    assert policy is not None
    # An expired approval must be renewable on the same evidence, or the release is stuck.
    fresh_since = timezone.now() - timedelta(days=policy.max_approval_age_days)
    if any(
        a.manifest_digest == locked.manifest_digest and a.created_at >= fresh_since for a in mine
    ):
        raise Conflict("You already approved this evidence.", code="already_approved")
    approval = Approval.objects.create(
        release=locked,
        role=held.value,
        user=person,
        manifest_digest=locked.manifest_digest,
        comment=comment.strip(),
    )
    audit_record(
        action="approved",
        actor=actor,
        project_id=locked.project_id,
        release_id=locked.pk,
        data={
            "role": held.value,
            "manifest_digest": locked.manifest_digest,
            "comment": approval.comment,
        },
    )
    send_after_commit("approved", release_id=locked.pk, role=held.value)
    return approval


@service
def veto_cast(
    *, release: Release, actor: Actor, role: Any, reason: Any, scope: Any = Veto.Scope.CARRY_FORWARD
) -> Veto:
    """Veto in a veto role; by default it carries forward to later releases and the artifact."""
    held = _reviewer(actor, release, role, "veto")
    text = _reason(reason)
    if scope not in Veto.Scope.values:
        raise InvalidInput(
            "Unknown veto scope.",
            errors=[FieldError("scope", f"must be one of {', '.join(Veto.Scope.values)}")],
        )
    policy = release.project.current_policy
    assert policy is not None
    if held.value not in policy.veto_roles:
        raise NotPermitted(
            f"The {held.value} role may not veto in this project.", code="not_a_veto_role"
        )
    locked = _lock_for_gate(release)
    if locked.state == Release.State.WITHDRAWN:
        raise Conflict("The release was withdrawn.", code="invalid_state")
    person = actor.person
    assert person is not None
    veto = Veto.objects.create(
        release=locked,
        project_id=locked.project_id,
        environment=locked.environment,
        artifact_digest=locked.artifact_digest,
        role=held.value,
        user=person,
        reason=text,
        scope=scope,
    )
    # In the veto's transaction: a deploy target must never trust a clearance this veto undid
    # (before the audit record: attestation rows rank below the audit head).
    attestations_revoke(
        release_ids=releases_a_veto_revokes(veto), reason=text, cause=f"veto:{veto.pk}", actor=actor
    )
    audit_record(
        action="veto_cast",
        actor=actor,
        project_id=locked.project_id,
        release_id=locked.pk,
        data={"veto_id": veto.pk, "role": held.value, "reason": text, "scope": scope},
    )
    send_after_commit("veto_cast", release_id=locked.pk, veto_id=veto.pk)
    return veto


def _requests_a_release_blocked_by(person: User, veto: Veto) -> bool:
    """Whether the person requested the vetoed release, or a release the veto carries forward
    to and blocks (open, or promoted and rolling out): either way they want past it, so they
    may not be the one to lift it."""
    reach = Q(pk=veto.release_id)
    if veto.scope == Veto.Scope.CARRY_FORWARD:
        blocked_states = [Release.State.DRAFT, Release.State.IN_REVIEW, Release.State.PROMOTED]
        reach |= Q(state__in=blocked_states) & (
            Q(project_id=veto.project_id, environment=veto.environment, pk__gt=veto.release_id)
            | Q(artifact_digest=veto.artifact_digest)
        )
    return Release.objects.filter(reach, requester_id=person.pk).exists()


@service
def veto_lift(*, veto: Veto, actor: Actor, reason: Any) -> Veto:
    """Lift a veto. Only a holder of the vetoing role on that project, never the requester."""
    person = actor.person
    if person is None:
        raise NotPermitted("Only a person may lift a veto.", code="not_a_person")
    project = Project.objects.get(pk=veto.project_id)
    if Role(veto.role) not in actor.roles(project):
        raise NotPermitted(
            f"Only a holder of the {veto.role} role may lift this veto.", code="not_a_holder"
        )
    if _requests_a_release_blocked_by(person, veto):
        raise NotPermitted(
            "The requester may not lift a veto that blocks their own release.",
            code="requester_cannot_lift",
        )
    text = _reason(reason)
    locked = lock_one(Veto.objects.all(), LockRank.RELEASE_ROWS, pk=veto.pk)
    if locked.lifted_at is not None:
        raise Conflict("The veto was lifted already.", code="already_lifted")
    locked.lifted_at = timezone.now()
    locked.lifted_by = person
    locked.lift_reason = text
    locked.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    audit_record(
        action="veto_lifted",
        actor=actor,
        project_id=locked.project_id,
        release_id=locked.release_id,
        data={"veto_id": locked.pk, "role": locked.role, "reason": text},
    )
    send_after_commit("veto_lifted", release_id=locked.release_id, veto_id=locked.pk)
    return locked


# Promotion ----------------------------------------------------------------------------------------


@service
def release_promote(*, release: Release, actor: Actor) -> tuple[Release, GateDecision]:
    """Promote to production if, and only if, the gate clears it at this instant, under lock."""
    _require(
        actor, release.project, Capability.PROMOTE, "You may not promote releases in this project."
    )
    locked = _lock_for_gate(release)
    if locked.state == Release.State.PROMOTED:
        raise Conflict("The release is promoted already.", code="already_promoted")
    decision = evaluate_gate(load_gate_facts(locked), timezone.now())
    if not decision.cleared:
        raise Conflict(
            "The release is not cleared.",
            code="blocked",
            extra={"blockers": [b.as_dict() for b in decision.blockers]},
        )
    now = timezone.now()
    locked.state = Release.State.PROMOTED
    locked.save(update_fields=["state"])
    Promotion.objects.create(
        release=locked,
        promoted_by=actor.person,
        promoted_by_label=actor.label,
        promoted_at=now,
        manifest_digest=decision.manifest_digest,
        policy_version=decision.policy_version,
        decision=decision.as_dict(),
    )
    audit_record(
        action="promoted",
        actor=actor,
        project_id=locked.project_id,
        release_id=locked.pk,
        data={
            "manifest_digest": decision.manifest_digest,
            "policy_version": decision.policy_version,
            # A break-glass promotion names the break-glass and what it bypassed.
            **(
                {"break_glass": decision.break_glass.as_dict()}
                if decision.break_glass is not None
                else {}
            ),
        },
    )
    send_after_commit("promoted", release_id=locked.pk)
    return locked, decision


def user_by_username(username: str) -> User:
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"No user {username!r}.")
    return user
