import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditEvent, AuditHead

GENESIS_HASH = "0" * 64


def _canonical(value: Any) -> Any:
    """Round-trip through JSON so the hash is computed over exactly what the database stores."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def event_hash(
    *,
    seq: int,
    created_at: datetime,
    action: str,
    actor: str,
    actor_user_id: int | None,
    project_id: int | None,
    release_id: int | None,
    data: Any,
    prev_hash: str,
) -> str:
    payload = {
        "seq": seq,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "action": action,
        "actor": actor,
        "actor_user_id": actor_user_id,
        "project_id": project_id,
        "release_id": release_id,
        "data": _canonical(data),
        "prev_hash": prev_hash,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode()).hexdigest()


def audit_record(
    *,
    action: str,
    actor: Actor,
    data: dict[str, Any] | None = None,
    project_id: int | None = None,
    release_id: int | None = None,
) -> AuditEvent:
    """Append one event to the chain. Call inside the transaction of the act it records."""
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(id=1)
        seq = head.last_seq + 1
        created_at = timezone.now()
        clean = _canonical(data or {})
        user = actor.user
        event = AuditEvent(
            seq=seq,
            created_at=created_at,
            action=action,
            actor=actor.label,
            actor_user_id=user.pk if user is not None else None,
            project_id=project_id,
            release_id=release_id,
            data=clean,
            prev_hash=head.last_hash,
        )
        event.hash = event_hash(
            seq=seq,
            created_at=created_at,
            action=action,
            actor=event.actor,
            actor_user_id=event.actor_user_id,
            project_id=project_id,
            release_id=release_id,
            data=clean,
            prev_hash=head.last_hash,
        )
        event.save(force_insert=True)
        head.last_seq = seq
        head.last_hash = event.hash
        head.save(update_fields=["last_seq", "last_hash"])
    return event
