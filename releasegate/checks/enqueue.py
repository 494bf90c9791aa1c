"""Enqueueing checks. A broker that is down must not fail the request that triggered it: the
database keeps what is due, and the next sweep enqueues it again."""

import logging
from collections.abc import Iterable

from django.conf import settings
from kombu.exceptions import OperationalError

log = logging.getLogger(__name__)

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def _expires() -> float:
    # A message not started within two sweeps is dropped: the sweep has enqueued it again by then,
    # so a slow or stopped worker does not let duplicates pile up in the queue.
    return 2.0 * settings.RELEASEGATE_SWEEP_SECONDS


def enqueue_checks(due: Iterable[tuple[int, str, str]]) -> int:
    """Publish one run_check message per (release id, check, manifest digest); returns how many."""
    from releasegate.checks.tasks import run_check

    sent = 0
    for release_id, check, manifest in due:
        try:
            run_check.apply_async(
                args=(release_id, check, manifest),
                expires=_expires(),
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
        except OperationalError:
            log.warning("broker unavailable; the sweep will enqueue %s of %s", check, release_id)
            return sent
        sent += 1
    return sent
