"""Every write to projects, policies, releases, evidence, sign-offs, vetoes and promotions.

Each service checks who may act (from the Actor and the project), validates its input before it
writes, runs in one transaction, records an audit event, and announces what happened after commit.
"""

import hashlib
import re
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import REVIEWER_ROLES, Role, permission_codename
from releasegate.accounts.selectors import holder_ids, roles_for
from releasegate.attestations.selectors import releases_a_veto_revokes
from releasegate.attestations.services import attestations_revoke
from releasegate.audit.services import audit_record
from releasegate.checks.external_ci import ci_token_refusal
from releasegate.errors import (
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
    NotPermitted,
    ReleasegateError,
)
from releasegate.notifications.people import people_tell
from releasegate.releases.evidence import evidence_digest, manifest_digest, validate_document
from releasegate.releases.gate import GateDecision, evaluate_gate
from releasegate.releases.governance import policy_weakenings
from releasegate.releases.identifiers import (
    DIGEST_HELP,
    DIGEST_RE,
    ENVIRONMENT_HELP,
    ENVIRONMENT_RE,
    SLUG_HELP,
    SLUG_RE,
    VERSION_HELP,
    VERSION_RE,
    matches,
)
from releasegate.releases.models import (
    Approval,
    Evidence,
    EvidenceKind,
    GatePolicy,
    GovernanceChange,
    Project,
    Promotion,
    Release,
    Veto,
)
from releasegate.releases.permissions import (
    approve_refusal,
    edit_refusal,
    guarded_roles,
    lift_refusal,
    may_cancel_change,
    may_confirm_change,
    may_manage_role,
    promote_refusal,
    submit_refusal,
    veto_refusal,
    withdraw_refusal,
)
from releasegate.releases.policy import PolicySpec, policy_spec_from
from releasegate.releases.selectors import gate_release_queryset, load_gate_facts
from releasegate.releases.signals import send_after_commit
from releasegate.transactions import LockRank, lock_artifact, lock_one, lock_project, service
from releasegate.validation import MAX_TEXT, required_text


def _require(actor: Actor, project: Project, capability: Capability, message: str) -> None:
    if not actor.can(project, capability):
        raise NotPermitted(message)


def _refuse(refusal: ReleasegateError | None) -> None:
    if refusal is not None:
        raise refusal


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
    if not matches(SLUG_RE, slug):
        raise InvalidInput("Invalid project slug.", errors=[FieldError("slug", SLUG_HELP)])
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInput(
            "Invalid project name.", errors=[FieldError("name", "1 to 200 characters")]
        )
    if Project.objects.filter(slug=slug).exists():
        raise Conflict(f"A project {slug!r} exists already.", code="duplicate_project")
    spec = policy_spec_from(policy or {}, PolicySpec())
    _ci_token_bound(spec.external_ci)
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


def _policy_apply(
    *, project: Project, actor: Actor, spec: PolicySpec, author: User | None, note: str, **why: Any
) -> GatePolicy:
    """Write `spec` as the project's next policy version (the project row is locked)."""
    current = project.current_policy
    assert current is not None
    new = GatePolicy.objects.create(
        project=project,
        version=current.version + 1,
        created_by=author,
        note=note[:500],
        **spec.as_fields(),
    )
    project.current_policy = new
    project.save(update_fields=["current_policy"])
    audit_record(
        action="policy_changed",
        actor=actor,
        project_id=project.pk,
        data={
            "version": new.version,
            "from_version": current.version,
            "policy": spec.as_fields(),
            **why,
        },
    )
    send_after_commit("policy_changed", release_id=None, project_id=project.pk)
    return new


def _ci_token_bound(external_ci: dict[str, Any]) -> None:
    """Refuse a policy whose external CI would have the worker send a token it may not: one the
    operator has not listed, or to another origin than the one it is bound to."""
    refused = ci_token_refusal(external_ci)
    if refused is not None:
        raise InvalidInput(
            "The external CI token may not be sent there.",
            code="ci_token_not_allowed",
            errors=[FieldError("external_ci.token_env", refused)],
        )


def _spec_of(policy: GatePolicy) -> PolicySpec:
    return PolicySpec(**{k: getattr(policy, k) for k in PolicySpec().as_fields()})


def _lock_project(project: Project) -> Project:
    return lock_one(
        Project.objects.select_related("current_policy"), LockRank.PROJECT, pk=project.pk
    )


@service
def policy_change(
    *, project: Project, actor: Actor, changes: dict[str, Any], note: str = ""
) -> GatePolicy | GovernanceChange:
    """Add a new policy version: the current one with `changes` applied.

    A change that loosens the gate in any way (see `policy_weakenings`) is not applied: it becomes
    a pending request, returned, that a `security` holder other than its author must confirm.
    One that only tightens is applied at once and the new version returned.
    """
    _require(
        actor, project, Capability.CHANGE_POLICY, "Only a project admin may change its policy."
    )
    if not isinstance(changes, dict) or not changes:
        raise InvalidInput(
            "Nothing to change.", errors=[FieldError("(document)", "no settings given")]
        )
    text = note if isinstance(note, str) else ""
    locked = _lock_project(project)
    current = locked.current_policy
    assert current is not None
    base = _spec_of(current)
    spec = policy_spec_from(changes, base)
    if "external_ci" in changes:
        _ci_token_bound(spec.external_ci)
    weakenings = policy_weakenings(base, spec)
    person = actor.person
    if not weakenings:
        new = _policy_apply(project=locked, actor=actor, spec=spec, author=person, note=text)
        project.current_policy = new
        return new
    assert person is not None  # only a project admin, a person, may change a policy
    change = GovernanceChange.objects.create(
        project=locked,
        kind=GovernanceChange.Kind.POLICY,
        requested_by=person,
        note=text[:500],
        policy=spec.as_fields(),
        base_policy_version=current.version,
        weakenings=weakenings,
    )
    _pending_recorded(change, actor)
    return change


def _pending_recorded(change: GovernanceChange, actor: Actor) -> None:
    """Audit a new pending request and tell those who may confirm it."""
    data: dict[str, Any] = {"request": change.pk, "kind": change.kind, "note": change.note}
    if change.kind == GovernanceChange.Kind.POLICY:
        data.update(
            from_version=change.base_policy_version,
            policy=change.policy,
            weakenings=change.weakenings,
        )
        guard = {Role.SECURITY}
        what = "a policy change that loosens the gate: " + "; ".join(change.weakenings)
    elif change.is_group_mapping:
        data.update(group=change.group, role=change.role)
        guard = {Role(change.role)}
        if change.kind == GovernanceChange.Kind.GROUP_MAPPING_ADD:
            what = (
                f"mapping the IdP group {change.group} to the {change.role} role (its members "
                "then get the role at each sign-in)"
            )
        else:
            what = (
                f"removing the mapping of the IdP group {change.group} to the {change.role} role "
                "(the role goes at once from those who hold it through that mapping)"
            )
    else:
        assert change.subject is not None
        data.update(user=change.subject.get_username(), role=change.role)
        guard = {Role(change.role)}
        verb = "grant" if change.kind == GovernanceChange.Kind.ROLE_GRANT else "revocation"
        what = f"the {verb} of the {change.role} role for {change.subject.get_username()}"
    audit_record(
        action="governance_change_requested", actor=actor, project_id=change.project_id, data=data
    )
    project = change.project
    # Those who may confirm it: holders of the guarding role, except its author and a grantee.
    excluded: set[int | None] = {change.requested_by_id}
    if change.kind == GovernanceChange.Kind.ROLE_GRANT:
        excluded.add(change.subject_id)
    people_tell(
        user_ids=[uid for uid in holder_ids(project, guard) if uid not in excluded],
        subject=f"[releasegate] {project.slug}: a change waits for your confirmation",
        body=(
            f"{actor.label} asks for {what}.\n"
            f"It takes effect only when confirmed by someone other than its author "
            f"(request {change.pk}, on the project page of {project.slug})."
        ),
    )


def _role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(
            "Unknown role.",
            errors=[FieldError("role", f"must be one of {', '.join(r.value for r in Role)}")],
        ) from None


def _role_request(
    *, project: Project, user: User, role: Role, actor: Actor, kind: str
) -> GovernanceChange:
    person = actor.person
    assert person is not None
    if GovernanceChange.objects.filter(
        project=project, kind=kind, subject=user, role=role.value, status="pending"
    ).exists():
        raise Conflict("The same request is pending already.", code="already_pending")
    change = GovernanceChange.objects.create(
        project=project, kind=kind, requested_by=person, subject=user, role=role.value
    )
    _pending_recorded(change, actor)
    return change


def group_mapping_request(
    *, project: Project, group: str, role: Role, actor: Actor, remove: bool
) -> GovernanceChange:
    """Ask for an IdP group mapping of a guarded role (or its removal) to be confirmed by a
    current holder of the role. The caller (identity.services) holds the project's lock and has
    checked that `actor` may map groups; confirming it applies it (`governance_change_confirm`).
    """
    kinds = GovernanceChange.Kind
    kind = kinds.GROUP_MAPPING_REMOVE if remove else kinds.GROUP_MAPPING_ADD
    person = actor.person
    assert person is not None
    if GovernanceChange.objects.filter(
        project=project, kind=kind, group=group, role=role.value, status="pending"
    ).exists():
        raise Conflict("The same request is pending already.", code="already_pending")
    change = GovernanceChange.objects.create(
        project=project, kind=kind, requested_by=person, group=group, role=role.value
    )
    _pending_recorded(change, actor)
    return change


def role_apply_by_idp(*, project: Project, user: User, role: Role, grant: bool, **why: Any) -> bool:
    """Grant or revoke a role as an IdP group mapping in force says (at a sign-in, or when the
    mapping is removed): the mapping was the governance change, confirmed by a holder when the
    role is guarded, so this applies at once, in the system's name, with `why` (the group, the
    mapping's author and confirmer) in the audit event. Whether anything changed.

    Not a service of its own: the caller (identity.services) holds the project's lock, has
    decided that the person may hold the role from the IdP, and may apply several changes in
    one transaction (each appends an audit event, so it takes no lock after this)."""
    if (role in roles_for(user, project)) == grant:
        return False
    _role_apply(
        project=project, user=user, role=role, actor=Actor.system_actor(), grant=grant, **why
    )
    return True


def _role_apply(
    *, project: Project, user: User, role: Role, actor: Actor, grant: bool, **why: Any
) -> None:
    codename = f"releases.{permission_codename(role)}"
    if grant:
        assign_perm(codename, user, project)
    else:
        remove_perm(codename, user, project)
    audit_record(
        action="role_granted" if grant else "role_revoked",
        actor=actor,
        project_id=project.pk,
        data={"user": user.get_username(), "role": role.value, **why},
    )


@service
def role_grant(*, project: Project, user: User, role: str, actor: Actor) -> GovernanceChange | None:
    """Give `user` a role on `project`. Nobody grants a role to themselves.

    A guarded role (see `guarded_roles`) is not granted at once when the project has a holder of
    it already: the grant becomes a pending request, returned, that a current holder (not its
    author, not the grantee) must confirm. The first holder of a role is granted at once
    (bootstrap), as is everything the system actor does.
    """
    granted = _role(role)
    if not may_manage_role(actor, project, granted):
        raise NotPermitted("Only a project admin may grant roles on this project.")
    if actor.person is not None and actor.person.pk == user.pk:
        raise NotPermitted("Nobody may grant a role to themselves.", code="self_grant")
    # The project row serializes grants, so two "first holder" grants cannot both be bootstraps.
    locked = _lock_project(project)
    if granted in roles_for(user, locked):
        return None
    guarded = granted in guarded_roles(locked.current_policy)
    # A deactivated holder still counts: deactivating the only holder must not turn the next
    # grant into an unguarded bootstrap (reactivating them, audited, is the way back).
    if guarded and not actor.system and holder_ids(locked, {granted}, active_only=False):
        return _role_request(
            project=locked, user=user, role=granted, actor=actor, kind="role_grant"
        )
    _role_apply(project=locked, user=user, role=granted, actor=actor, grant=True)
    return None


@service
def role_revoke(
    *, project: Project, user: User, role: str, actor: Actor
) -> GovernanceChange | None:
    """Take a role away. A guarded role's revocation is a pending request, returned, that a
    current holder other than its author confirms (the holder losing it may consent)."""
    revoked = _role(role)
    if not may_manage_role(actor, project, revoked):
        raise NotPermitted("Only a project admin may revoke roles on this project.")
    locked = _lock_project(project)
    if revoked not in roles_for(user, locked):
        return None
    if revoked in guarded_roles(locked.current_policy) and not actor.system:
        return _role_request(
            project=locked, user=user, role=revoked, actor=actor, kind="role_revoke"
        )
    _role_apply(project=locked, user=user, role=revoked, actor=actor, grant=False)
    return None


def _decidable(change: GovernanceChange) -> GovernanceChange:
    """Lock the project, then the request (the lock order), and refuse a decided one."""
    _lock_project(change.project)
    locked = lock_one(
        GovernanceChange.objects.select_related(
            "project", "project__current_policy", "subject", "requested_by"
        ),
        LockRank.RELEASE_ROWS,
        pk=change.pk,
    )
    if not locked.is_pending:
        raise Conflict(f"This request is {locked.status} already.", code="already_decided")
    return locked


def _decided(locked: GovernanceChange, *, actor: Actor, status: str, reason: str) -> None:
    locked.status = status
    locked.decided_by = actor.person
    locked.decided_at = timezone.now()
    locked.decision_reason = reason
    locked.save(
        update_fields=["status", "decided_by", "decided_at", "decision_reason", "applied_policy"]
    )
    audit_record(
        action=f"governance_change_{status}",
        actor=actor,
        project_id=locked.project_id,
        data={"request": locked.pk, "kind": locked.kind, "reason": reason},
    )
    project = locked.project
    # The author is told of a decision by someone else (a cancellation is their own act).
    people_tell(
        user_ids=[locked.requested_by_id] if status != GovernanceChange.Status.CANCELLED else [],
        subject=f"[releasegate] {project.slug}: your request {locked.pk} was {status}",
        body=f"{actor.label} {status} your request {locked.pk}"
        + (f": {reason}" if reason else "."),
    )


def _optional_reason(value: Any) -> str:
    if value is None or value == "":
        return ""
    return required_text(value)


@service
def governance_change_confirm(
    *, change: GovernanceChange, actor: Actor, reason: Any = ""
) -> GovernanceChange:
    """Confirm a pending request and apply it: a person other than its author holding the role
    that guards it (`may_confirm_change`). A policy change applies only to the version it was
    computed from; if the policy moved since, it is refused (the author asks again)."""
    text = _optional_reason(reason)
    locked = _decidable(change)
    if not may_confirm_change(actor, locked):
        raise NotPermitted(
            "Only a holder of the guarding role other than its author may confirm this request.",
            code="may_not_confirm",
        )
    project = locked.project
    why = {"request": locked.pk, "confirmed_by": actor.label}
    if locked.kind == GovernanceChange.Kind.POLICY:
        current = project.current_policy
        assert current is not None
        if current.version != locked.base_policy_version:
            raise Conflict(
                f"The policy is at version {current.version} now, not "
                f"{locked.base_policy_version}: this request no longer says what it would change. "
                "Its author may cancel it and ask again.",
                code="policy_moved",
            )
        proposed = locked.policy.get("external_ci") or {}
        refused = ci_token_refusal(proposed) if proposed != current.external_ci else None
        if refused is not None:
            # Asked for under another binding (the operator has changed it since).
            raise Conflict(
                f"This request cannot be applied: {refused}. Its author may cancel it and ask "
                "again.",
                code="ci_token_not_allowed",
            )
        locked.applied_policy = _policy_apply(
            project=project,
            actor=actor,
            spec=PolicySpec(**locked.policy),
            author=locked.requested_by,
            note=locked.note,
            requested_by=locked.requested_by.get_username(),
            **why,
        )
    elif locked.is_group_mapping:
        # The identity area owns group mappings and imports this module, hence here.
        from releasegate.identity.services import group_mapping_confirmed

        group_mapping_confirmed(change=locked, actor=actor)
    else:
        subject = locked.subject
        assert subject is not None
        grant = locked.kind == GovernanceChange.Kind.ROLE_GRANT
        role = Role(locked.role)
        if (role in roles_for(subject, project)) != grant:
            _role_apply(
                project=project,
                user=subject,
                role=role,
                actor=actor,
                grant=grant,
                requested_by=locked.requested_by.get_username(),
                **why,
            )
    _decided(locked, actor=actor, status=GovernanceChange.Status.APPLIED, reason=text)
    return locked


@service
def governance_change_reject(
    *, change: GovernanceChange, actor: Actor, reason: Any = ""
) -> GovernanceChange:
    """Refuse a pending request, with a reason: whoever may confirm it may reject it instead."""
    text = required_text(reason)
    locked = _decidable(change)
    if not may_confirm_change(actor, locked):
        raise NotPermitted(
            "Only a holder of the guarding role other than its author may reject this request.",
            code="may_not_confirm",
        )
    _decided(locked, actor=actor, status=GovernanceChange.Status.REJECTED, reason=text)
    return locked


@service
def governance_change_cancel(
    *, change: GovernanceChange, actor: Actor, reason: Any = ""
) -> GovernanceChange:
    """Withdraw one's own pending request."""
    text = _optional_reason(reason)
    locked = _decidable(change)
    if not may_cancel_change(actor, locked):
        raise NotPermitted("Only its author may cancel a request.", code="not_the_author")
    _decided(locked, actor=actor, status=GovernanceChange.Status.CANCELLED, reason=text)
    return locked


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
    if not matches(VERSION_RE, version):
        errors.append(FieldError("version", VERSION_HELP))
    if not matches(DIGEST_RE, artifact_digest):
        errors.append(FieldError("artifact_digest", DIGEST_HELP))
    if not matches(ENVIRONMENT_RE, environment):
        errors.append(FieldError("environment", ENVIRONMENT_HELP))
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
    locked = _lock_for_gate(release)
    _refuse(edit_refusal(actor, locked))
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
        not isinstance(link, str) or not re.fullmatch(r"https?://\S+", link) or len(link) > 500
    ):
        raise InvalidInput("Invalid link.", errors=[FieldError("link", "an http(s) URL")])
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
    locked = _lock_for_gate(release)
    _refuse(submit_refusal(actor, locked))
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
    """Take a draft or a release in review out of the running, with a reason: its requester or a
    project admin (`may_withdraw`). A withdrawn release is never cleared and cannot be edited."""
    locked = _lock_for_gate(release)
    _refuse(withdraw_refusal(actor, locked))
    text = required_text(reason)
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


def _reviewer_role(actor: Actor, role: Any) -> Role:
    if actor.person is None:
        # A token is refused before its input is looked at.
        raise NotPermitted(
            "Only a person may sign off; a service token never signs off.", code="not_a_person"
        )
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            "Unknown role.",
            errors=[FieldError("role", f"must be one of {', '.join(sorted(REVIEWER_ROLES))}")],
        ) from None


@service
def approval_give(*, release: Release, actor: Actor, role: Any, comment: Any = "") -> Approval:
    """Approve in one role, bound to the release's current evidence manifest."""
    held = _reviewer_role(actor, role)
    person = actor.person
    assert person is not None
    locked = _lock_for_gate(release)
    mine = list(Approval.objects.filter(release=locked, user_id=person.pk))
    _refuse(approve_refusal(actor, locked, held, mine, timezone.now()))
    if not isinstance(comment, str) or len(comment) > MAX_TEXT:
        raise InvalidInput(
            "Invalid comment.", errors=[FieldError("reason", f"at most {MAX_TEXT} characters")]
        )
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
    held = _reviewer_role(actor, role)
    locked = _lock_for_gate(release)
    _refuse(veto_refusal(actor, locked, held))
    text = required_text(reason)
    if scope not in Veto.Scope.values:
        raise InvalidInput(
            "Unknown veto scope.",
            errors=[FieldError("scope", f"must be one of {', '.join(Veto.Scope.values)}")],
        )
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


@service
def veto_lift(*, veto: Veto, actor: Actor, reason: Any) -> Veto:
    """Lift a veto. Only a holder of the vetoing role on that project, never the requester."""
    locked = lock_one(Veto.objects.all(), LockRank.RELEASE_ROWS, pk=veto.pk)
    _refuse(lift_refusal(actor, locked))
    person = actor.person
    assert person is not None
    text = required_text(reason)
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
    decision = evaluate_gate(load_gate_facts(locked), timezone.now())
    _refuse(promote_refusal(actor, locked, decision))
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
