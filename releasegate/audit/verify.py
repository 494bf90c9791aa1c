from dataclasses import dataclass

from releasegate.audit.models import AuditEvent, AuditHead
from releasegate.audit.services import GENESIS_HASH, event_hash


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    message: str


def verify_chain(*, batch_size: int = 2000) -> tuple[int, ChainProblem | None]:
    """Recompute the whole chain. Returns how many events were checked and the first problem."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    last_seen = 0
    while True:
        batch = list(AuditEvent.objects.filter(seq__gt=last_seen).order_by("seq")[:batch_size])
        if not batch:
            break
        for event in batch:
            if event.seq != expected_seq:
                return checked, ChainProblem(
                    expected_seq, f"event #{expected_seq} is missing (next present is #{event.seq})"
                )
            recomputed = event_hash(
                seq=event.seq,
                created_at=event.created_at,
                action=event.action,
                actor=event.actor,
                actor_user_id=event.actor_user_id,
                project_id=event.project_id,
                release_id=event.release_id,
                data=event.data,
                prev_hash=event.prev_hash,
            )
            if event.prev_hash != prev_hash:
                if recomputed == event.hash:
                    # This event is intact and chains to what its predecessor used to be: the
                    # predecessor was altered and its hash recomputed to hide it.
                    return checked, ChainProblem(
                        event.seq - 1,
                        f"event #{event.seq - 1} was altered (event #{event.seq} no longer "
                        "chains to it)",
                    )
                return checked, ChainProblem(
                    event.seq, f"event #{event.seq} does not chain to event #{event.seq - 1}"
                )
            if recomputed != event.hash:
                return checked, ChainProblem(
                    event.seq, f"event #{event.seq} ({event.action}) was altered"
                )
            prev_hash = event.hash
            expected_seq += 1
            checked += 1
            last_seen = event.seq
    head = AuditHead.objects.filter(id=1).first()
    if head is not None and head.last_seq >= expected_seq:
        return checked, ChainProblem(
            expected_seq,
            f"event #{expected_seq} is missing (the chain was written up to #{head.last_seq})",
        )
    if head is not None and head.last_seq and head.last_hash != prev_hash:
        return checked, ChainProblem(head.last_seq, f"event #{head.last_seq} was altered")
    return checked, None
