"""Reads for attestations: who may fetch them, what a veto revokes, the revocation list."""

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability
from releasegate.attestations.models import IssuedAttestation, Revocation
from releasegate.errors import NotFound
from releasegate.releases.gate import BlockerCode, evaluate_gate
from releasegate.releases.models import Project, Release, Veto
from releasegate.releases.selectors import (
    gate_release_queryset,
    load_gate_facts,
    visible_project_ids,
)


def may_read_attestations(actor: Actor, project: Project) -> bool:
    """A service token needs `gate:read` or `attestations:read` on the project; a person needs to
    see the project: an attestation says no more than the gate answer they may read already."""
    if actor.is_service:
        return actor.can(project, Capability.READ_ATTESTATION)
    return actor.can(project, Capability.READ)


def release_for_attestation(actor: Actor, release_id: int) -> Release:
    """The release, if the actor may read it or fetch its attestations (an attestations:read
    token reads nothing else); a 404 otherwise, never a 403 that tells it exists."""
    release = gate_release_queryset().filter(pk=release_id).first()
    if release is None or not (
        actor.can(release.project, Capability.READ) or may_read_attestations(actor, release.project)
    ):
        raise NotFound("No such release.")
    return release


def attestation_project_ids(actor: Actor) -> list[int]:
    """The projects whose revocations the actor is told: those it may read, and for a service
    token its project when it may fetch attestations."""
    token = actor.token
    if actor.is_service and token is not None and token.project_id:
        grants = actor.token_grants(Capability.READ) or actor.token_grants(
            Capability.READ_ATTESTATION
        )
        return [token.project_id] if grants else []
    return visible_project_ids(actor)


def releases_a_veto_revokes(veto: Veto) -> list[int]:
    """Releases holding an unrevoked attestation that `veto` (just cast, in this transaction) now
    blocks, as the gate says: the vetoed release, and for a carried-forward veto the releases of
    its project and environment and those with its artifact digest that the gate finds vetoed."""
    reach = Q(pk=veto.release_id)
    if veto.scope == Veto.Scope.CARRY_FORWARD:
        reach |= Q(project_id=veto.project_id, environment=veto.environment) | Q(
            artifact_digest=veto.artifact_digest
        )
    candidates = (
        gate_release_queryset()
        .filter(
            reach,
            Exists(
                IssuedAttestation.objects.filter(release_id=OuterRef("pk"), revocation__isnull=True)
            ),
            state__in=[Release.State.IN_REVIEW, Release.State.PROMOTED],
        )
        .order_by("id")
    )
    now = timezone.now()
    blocked = []
    for release in candidates:
        decision = evaluate_gate(load_gate_facts(release), now)
        if any(b.code == BlockerCode.VETO for b in decision.blockers):
            blocked.append(release.pk)
    return blocked


def revocations_visible_to(actor: Actor) -> QuerySet[Revocation]:
    """Revocations of attestations of the projects the actor may read, oldest first."""
    return (
        Revocation.objects.filter(project_id__in=attestation_project_ids(actor))
        .select_related("attestation")
        .order_by("revoked_at", "id")
    )
