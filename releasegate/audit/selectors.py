"""Reading the audit trail: a release's events with their proof, a project's own events."""

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from releasegate.accounts.actors import Actor, Capability
from releasegate.audit.models import AuditChain, AuditEvent
from releasegate.releases.models import Project, Release

PROJECT_TRAIL_PAGE = 50
PROJECT_TRAIL_MAX_PAGE = 200
# Acts on one release that concern the whole project's guard (PRODUCT.md, "The project's audit
# trail"): a hold or a break-glass is recorded on its release's trail and also exported with the
# project's own events, so an auditor sees every time the gate was stopped or bypassed.
PROJECT_TRAIL_RELEASE_ACTIONS = frozenset(
    {
        "hold_placed",
        "hold_alert_resolved",
        "hold_alert_firing_again",
        "hold_lifted",
        "break_glass_requested",
        "break_glass_confirmed",
        "break_glass_reviewed",
    }
)


@dataclass(frozen=True)
class ChainProof:
    """What links a run of a chain's events to any checkpoint of that chain taken after them:
    the entry hash of every event of the chain from `from_seq` to its head, in order."""

    chain: str
    from_seq: int
    entry_hashes: list[str]
    size: int
    head_hash: str

    def as_dict(self) -> dict[str, object]:
        return {
            "chain": self.chain,
            "from_seq": self.from_seq,
            "size": self.size,
            "head_hash": self.head_hash,
            "entry_hashes": self.entry_hashes,
        }


def release_events(release: Release) -> QuerySet[AuditEvent]:
    """The release's events in chain order (they all are on its project's chain)."""
    return AuditEvent.objects.filter(release_id=release.pk).select_related("chain").order_by("seq")


def chain_proof(events: list[AuditEvent]) -> ChainProof | None:
    """The proof for `events`, all of one chain, up to that chain's head as it stands."""
    if not events:
        return None
    chain_id = events[0].chain_id
    head = AuditChain.objects.filter(pk=chain_id).values_list("name", "size", "head_hash").get()
    name, size, head_hash = head
    from_seq = events[0].seq
    # Only events up to the head just read: they committed with it, later ones may not have.
    entries = list(
        AuditEvent.objects.filter(chain_id=chain_id, seq__gte=from_seq, seq__lte=size)
        .order_by("seq")
        .values_list("entry_hash", flat=True)
    )
    return ChainProof(name, from_seq, entries, size, head_hash)


def project_events(
    project: Project, *, action: str | None, before: int | None, limit: int
) -> list[AuditEvent]:
    """The project's events that belong to no release, and its holds and break-glasses, newest
    first; `before` is a seq of the project's chain (the cursor of the next page)."""
    events = AuditEvent.objects.filter(
        Q(release_id__isnull=True) | Q(action__in=PROJECT_TRAIL_RELEASE_ACTIONS),
        project_id=project.pk,
    )
    if action is not None:
        events = events.filter(action=action)
    if before is not None:
        events = events.filter(seq__lt=before)
    return list(events.select_related("chain").order_by("-seq")[:limit])


def may_read_project_trail(actor: Actor, project: Project) -> bool:
    """The project's own trail (roles, policies, tokens...) is for its auditors and admins."""
    return actor.can(project, Capability.EXPORT_AUDIT)
