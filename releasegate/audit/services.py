"""Appending to the audit trail: one hash chain per project, no global lock.

Every act appends one event, inside the transaction of the act, to the chain of its project
(events that belong to no project go to the chain `_global`). A chain's head row (`AuditChain`)
holds its size and last hash; appending locks that one row `FOR UPDATE` (through
`releasegate.transactions.lock_audit_head`; only appenders of the same chain, which lock it first
themselves, reference it by foreign key), numbers the event `size + 1`, links it to `head_hash`
and moves the head. Writers of one project queue on their chain's row; writers of two projects
never meet.

Lock order: the chain head is the LAST lock a transaction takes (rank AUDIT in the order of
`releasegate/transactions.py`: artifact advisory lock -> project -> release -> other rows of that
release -> audit chain head), so a service calls `audit_record` after it has locked (and written)
everything else, and locks nothing afterwards; a lock requested after it raises
`LockOrderViolation`. A transaction that held a chain head while waiting for, say, a project row
would close a cycle with one holding that project row and waiting for the head. A transaction
appends to one chain; were one ever to append to two, it would have to lock them in name order.
"""

import hashlib
import json
from datetime import UTC
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.audit.models import GENESIS_HASH, AuditChain, AuditEvent
from releasegate.releases.models import Project
from releasegate.transactions import lock_audit_head, service

__all__ = ["GENESIS_HASH", "HASHED_FIELDS", "audit_record", "entry_hash", "link_hash"]


def _canonical(value: Any) -> Any:
    """Round-trip through JSON so the hash is computed over exactly what the database stores."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


# What an event's entry hash commits to, with the name of its chain: every field it was appended
# with. An export carries them under the same names.
HASHED_FIELDS = (
    "seq",
    "created_at",
    "action",
    "actor",
    "actor_user_id",
    "project_id",
    "release_id",
    "data",
)


def entry_hash(event: AuditEvent, *, chain: str) -> str:
    """SHA-256 of the event's every field and its chain's name, as canonical JSON (sorted keys,
    no spaces, ASCII)."""
    payload = {name: getattr(event, name) for name in HASHED_FIELDS}
    payload.update(
        chain=chain,
        created_at=event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        data=_canonical(event.data),
    )
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode()).hexdigest()


def link_hash(prev_hash: str, entry: str) -> str:
    """An event's hash: it commits to its entry and, through `prev_hash`, to all before it."""
    return hashlib.sha256(f"{prev_hash}{entry}".encode()).hexdigest()


def _chain_name(project_id: int | None) -> str:
    if project_id is None:
        return AuditChain.GLOBAL
    slug = Project.objects.filter(pk=project_id).values_list("slug", flat=True).first()
    # A slug never changes, so it names the chain for good; an id of no project keeps its number.
    return slug if slug is not None else f"project-{project_id}"


def _locked_chain(project_id: int | None) -> AuditChain:
    lookup: dict[str, Any] = (
        {"project_id": project_id} if project_id is not None else {"name": AuditChain.GLOBAL}
    )
    try:
        return lock_audit_head(AuditChain.objects.all(), **lookup)
    except AuditChain.DoesNotExist:
        pass
    # The chain's first event: two first writers both insert, one row survives, both lock it.
    AuditChain.objects.bulk_create(
        [AuditChain(name=_chain_name(project_id), project_id=project_id)], ignore_conflicts=True
    )
    return lock_audit_head(AuditChain.objects.all(), **lookup)


# Savepoint-free: a failed append must take the act down with it, never be caught and skipped.
@service(savepoint=False)
def audit_record(
    *,
    action: str,
    actor: Actor,
    data: dict[str, Any] | None = None,
    project_id: int | None = None,
    release_id: int | None = None,
) -> AuditEvent:
    """Append one event to its project's chain. Call inside the transaction of the act it
    records, after every other lock that transaction takes (see the module docstring)."""
    head = _locked_chain(project_id)
    seq = head.size + 1
    created_at = timezone.now()
    clean = _canonical(data or {})
    user = actor.user
    event = AuditEvent(
        chain=head,
        seq=seq,
        created_at=created_at,
        action=action,
        actor=actor.label,
        actor_user_id=user.pk if user is not None else None,
        project_id=project_id,
        release_id=release_id,
        data=clean,
        prev_hash=head.head_hash,
    )
    event.entry_hash = entry_hash(event, chain=head.name)
    event.hash = link_hash(head.head_hash, event.entry_hash)
    event.save(force_insert=True)
    head.size = seq
    head.head_hash = event.hash
    head.save(update_fields=["size", "head_hash"])
    return event
