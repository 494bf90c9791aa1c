"""Notification tasks: expand each outbox notice into deliveries, then deliver each message with
retries; sweeps take up what a broker outage or a lost worker left behind.

Like every task here they are acknowledged late, time-limited and keep no result (the project's
CELERY_* settings); the database records each delivery.

The tasks keep the names they were registered under before notifications were an app of their own
(`releasegate.ops.tasks.*`, `releasegate.accounts.tasks.tell_people`): the beat schedule, retries
waiting in the broker and messages enqueued by a process not yet upgraded name them so.
"""

import logging
import random
import smtplib
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.utils import timezone

from releasegate.notifications.models import Delivery
from releasegate.notifications.selectors import stale_pending_deliveries, unprocessed_notices
from releasegate.notifications.services import delivery_attempt, delivery_give_up, notice_expand

logger = logging.getLogger(__name__)

# Publishing gives a broker that is down about a second, then gives up: the rows are in the
# database and a sweep enqueues them again.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def _publish(task: Any, ids: list[int], what: str) -> int:
    sent = 0
    for pk in ids:
        try:
            task.apply_async(args=(pk,), retry=True, retry_policy=PUBLISH_RETRY)
        except Exception:  # kombu's and redis-py's connection errors alike: none may undo the act
            logger.warning(
                "broker unavailable; the sweep will enqueue the rest",
                exc_info=True,
                extra={what: pk, "left": len(ids) - sent},
            )
            break
        sent += 1
    return sent


def enqueue_notices(notice_ids: list[int]) -> int:
    """After the act's commit: one notify_release_event message per notice."""
    return _publish(notify_release_event, notice_ids, "notice_id")


def _enqueue(deliveries: list[Delivery]) -> int:
    return _publish(deliver_notification, [d.pk for d in deliveries], "delivery_id")


@shared_task(name="releasegate.ops.tasks.notify_release_event")
def notify_release_event(notice_id: int) -> int:
    """Expand one outbox notice into a delivery per subscribed target, and enqueue them."""
    return _enqueue(notice_expand(notice_id=notice_id))


@shared_task(name="releasegate.ops.tasks.sweep_notices")
def sweep_notices() -> int:
    """Enqueue the notices a broker outage (or a lost worker) left unprocessed: those older than
    one sweep interval, so a notice whose own enqueue is on its way is left to it. Run by the
    scheduler every RELEASEGATE_OUTBOX_SWEEP_SECONDS."""
    older_than = timezone.now() - timedelta(seconds=settings.RELEASEGATE_OUTBOX_SWEEP_SECONDS)
    return enqueue_notices(list(unprocessed_notices(older_than=older_than)))


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
@shared_task(bind=True, name="releasegate.ops.tasks.deliver_notification", max_retries=None)
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


@shared_task(name="releasegate.ops.tasks.sweep_deliveries")
def sweep_deliveries() -> int:
    """Take up deliveries left pending: a worker lost mid-attempt, or the broker down when a
    delivery or its retry was to be enqueued. Run by the scheduler."""
    return _enqueue(list(stale_pending_deliveries(older_than=timezone.now() - stale_after())))


# E-mail to persons (see notifications.people).
@shared_task(
    name="releasegate.accounts.tasks.tell_people",
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=8,
)
def tell_people(user_ids: list[int], subject: str, body: str) -> int:
    """Send `subject`/`body` to each active person with an e-mail address; how many were sent."""
    addresses = sorted(
        {
            email
            for email in get_user_model()
            .objects.filter(pk__in=user_ids, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        }
    )
    if addresses:
        # One message, blind copies: a retry after a failure never sends anyone a second copy
        # of what the first attempt delivered, and recipients do not see each other.
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, bcc=addresses).send()
    return len(addresses)
