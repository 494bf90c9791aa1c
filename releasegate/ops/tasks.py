"""Notification tasks: decide who is told about what, then deliver each message with retries.

Like every task here they are acknowledged late, time-limited and keep no result (the project's
CELERY_* settings); the database records each delivery.
"""

import logging
import random
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from releasegate.ops.models import Delivery
from releasegate.ops.notifications import cleared_payload, event_payload
from releasegate.ops.selectors import stale_pending_deliveries
from releasegate.ops.services import (
    deliveries_create,
    delivery_attempt,
    delivery_give_up,
    targets_for,
)
from releasegate.releases.gate import evaluate_gate
from releasegate.releases.models import Release
from releasegate.releases.selectors import gate_release_queryset, load_gate_facts

logger = logging.getLogger(__name__)


def _enqueue(deliveries: list[Delivery]) -> int:
    for delivery in deliveries:
        deliver_notification.delay(delivery.pk)
    return len(deliveries)


@shared_task
def notify_release_event(
    event: str, release_id: int, veto_id: int | None = None, incident_id: int | None = None
) -> int:
    """Record one delivery per subscribed target for `event` and enqueue them."""
    release = Release.objects.select_related("project", "requester").get(pk=release_id)
    targets = targets_for(release.project_id, event)
    if not targets:
        return 0
    payload, dedupe_key = event_payload(
        event=event, release=release, veto_id=veto_id, incident_id=incident_id
    )
    return _enqueue(
        deliveries_create(
            targets=targets, event=event, release=release, dedupe_key=dedupe_key, payload=payload
        )
    )


@shared_task
def notify_if_cleared(release_id: int) -> int:
    """After an approval, a check result or a lifted veto: tell "cleared" once per manifest.

    The gate is evaluated here, in the worker, so the request that caused it never pays for it.
    """
    release = gate_release_queryset().get(pk=release_id)
    if release.state != Release.State.IN_REVIEW:
        return 0
    targets = targets_for(release.project_id, "cleared")
    if not targets:
        return 0
    decision = evaluate_gate(load_gate_facts(release), timezone.now())
    if not decision.cleared:
        return 0
    return _enqueue(
        deliveries_create(
            targets=targets,
            event="cleared",
            release=release,
            dedupe_key=decision.manifest_digest,
            payload=cleared_payload(release=release, decision=decision),
        )
    )


# Below the broker's visibility timeout (an hour), so a task waiting out its delay is never
# handed to a second worker.
BACKOFF_CAP_SECONDS = 1800


def _backoff_base(attempts: int) -> float:
    base = settings.RELEASEGATE_NOTIFY_BACKOFF_SECONDS * (2 ** max(attempts - 1, 0))
    return float(min(base, BACKOFF_CAP_SECONDS))


def backoff_seconds(attempts: int) -> float:
    """Exponential back-off with jitter, so a recovering receiver is not hit all at once."""
    return _backoff_base(attempts) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto


def stale_after() -> timedelta:
    """How long a pending delivery may wait before the sweep takes it up: longer than its
    longest retry delay plus one attempt, so a sweep never races a retry that is on its way."""
    longest = _backoff_base(settings.RELEASEGATE_NOTIFY_MAX_ATTEMPTS) * 1.2
    return timedelta(seconds=longest + settings.CELERY_TASK_TIME_LIMIT + 60)


# Attempts are counted in the database, not by Celery: a delivery taken up again by the sweep
# keeps its count, and stops at RELEASEGATE_NOTIFY_MAX_ATTEMPTS whichever task runs it.
@shared_task(bind=True, max_retries=None)
def deliver_notification(self: Any, delivery_id: int) -> str:
    attempt = delivery_attempt(delivery_id=delivery_id)
    delivery = attempt.delivery
    if delivery is None:
        return "skipped"
    if attempt.delivered:
        return "delivered"
    log = {"delivery_id": delivery_id, "attempts": delivery.attempts, "error": delivery.last_error}
    if attempt.permanent or delivery.attempts >= settings.RELEASEGATE_NOTIFY_MAX_ATTEMPTS:
        delivery_give_up(delivery_id=delivery_id)
        logger.warning("notification failed for good", extra=log)
        return "failed"
    logger.info("notification attempt failed, will retry", extra=log)
    raise self.retry(countdown=backoff_seconds(delivery.attempts))


@shared_task
def sweep_deliveries() -> int:
    """Take up deliveries left pending: a worker lost mid-attempt, or the broker down when a
    delivery or its retry was to be enqueued. Run by the scheduler."""
    return _enqueue(list(stale_pending_deliveries(older_than=timezone.now() - stale_after())))
