"""Notifications from release events: the outbox rows of an act, written in its transaction."""

from typing import Any

from django.db import transaction
from django.dispatch import receiver

from releasegate.notifications.services import notices_record
from releasegate.notifications.tasks import enqueue_notices
from releasegate.releases.signals import release_event_in_transaction

# Told as they happen, about the release they happened to.
DIRECT_EVENTS = frozenset(
    {"review_requested", "veto_cast", "veto_lifted", "promoted", "attestation_revoked"}
)
# Holds and break-glass: `incident_id` names the hold or the break-glass.
INCIDENT_EVENTS = frozenset(
    {
        "hold_placed",
        "hold_lifted",
        "break_glass_requested",
        "break_glass_confirmed",
        "break_glass_reviewed",
    }
)
# Acts after which a release may have become cleared.
MAY_CLEAR_EVENTS = frozenset(
    {"approved", "check_recorded", "veto_lifted", "hold_lifted", "break_glass_confirmed"}
)


@receiver(release_event_in_transaction, dispatch_uid="notifications.release_event")
def record_notices(sender: Any, event: str, release_id: int | None, **extra: Any) -> None:
    """Runs inside the act's transaction: the outbox rows commit with the act. Their enqueue
    runs after commit and may fail with the broker down: the act and its notices are committed,
    and `sweep_notices` enqueues them again. An act nobody listens to sends no message."""
    if release_id is None:
        return
    wanted = []
    if event in DIRECT_EVENTS or event in INCIDENT_EVENTS:
        wanted.append(event)
    # A check that did not pass cannot have cleared the release.
    if event in MAY_CLEAR_EVENTS and (event != "check_recorded" or extra.get("status") == "passed"):
        wanted.append("cleared")
    if not wanted:
        return
    notices = notices_record(
        release_id=release_id,
        events=wanted,
        veto_id=extra.get("veto_id"),
        incident_id=extra.get("incident_id") if event in INCIDENT_EVENTS else None,
    )
    if notices:
        ids = [n.pk for n in notices]
        transaction.on_commit(lambda: enqueue_notices(ids))
