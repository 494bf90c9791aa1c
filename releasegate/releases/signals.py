"""Events other areas react to (checks are enqueued, notifications sent).

Receivers get `event` (a name from RELEASE_EVENTS) and `release_id`, plus event-specific keywords.
`release_event_in_transaction` runs inside the act's transaction, for rows that must commit or
roll back with the act (the notification outbox); `release_event` runs after commit.
"""

from django.db import transaction
from django.dispatch import Signal

RELEASE_EVENTS = frozenset(
    {
        "release_created",
        "evidence_attached",
        "review_requested",
        "withdrawn",
        "approved",
        "veto_cast",
        "veto_lifted",
        "promoted",
        "check_recorded",
        "policy_changed",
        "attestation_revoked",
        "hold_placed",
        "hold_lifted",
        "break_glass_requested",
        "break_glass_confirmed",
        "break_glass_reviewed",
    }
)

release_event = Signal()
release_event_in_transaction = Signal()


def send_after_commit(event: str, *, release_id: int | None, **extra: object) -> None:
    assert event in RELEASE_EVENTS, event
    release_event_in_transaction.send(sender=None, event=event, release_id=release_id, **extra)

    def send() -> None:
        release_event.send(sender=None, event=event, release_id=release_id, **extra)

    transaction.on_commit(send)


# Sent after every gate evaluation that answers a caller (API, pages, CLI): `decision` keyword.
# Receivers must not touch the database: the gate endpoint's query count is pinned.
gate_evaluated = Signal()
