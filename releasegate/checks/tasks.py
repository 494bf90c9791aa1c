"""Celery tasks: take ids, claim the work in the database, compute, record, return; and their
publishing (`enqueue_checks`).

Reliability lives in settings (late acks, re-queue on a lost worker, prefetch of one, time limits,
a broker visibility timeout longer than any of them) and here: bounded retries with exponential
backoff and full jitter for transient failures, and `error` recorded when a check raises, times out
or runs out of retries (fail closed). The database decides what runs: a duplicate message finds
nothing to claim, a lost one is enqueued again by the sweep. A broker that is down must not fail
the request that enqueues a check: the database keeps what is due, and the next sweep enqueues it.
"""

import logging
import random
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.db import DatabaseError
from kombu.exceptions import OperationalError

from releasegate.checks.external_ci import TransientCheckError
from releasegate.checks.outcome import Outcome
from releasegate.checks.runner import StaleManifest, compute_check
from releasegate.checks.selectors import checks_due, inputs_digest_of, release_for_checks
from releasegate.checks.services import Claim, check_claim, check_claim_release, check_complete
from releasegate.transactions import database_failed

log = logging.getLogger(__name__)

MAX_RETRIES = settings.RELEASEGATE_CHECK_MAX_RETRIES
# Claims beyond the retries come from workers lost mid-check (killed, or past the hard limit).
MAX_ATTEMPTS = MAX_RETRIES + 3
LEASE = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 5)


# A retry after a transient database error comes soon: the claim was given back at once.
DATABASE_RETRY_SECONDS = 1.0


@shared_task(bind=True, name="releasegate.checks.run_check", max_retries=MAX_RETRIES)
def run_check(self: Task, release_id: int, check: str, manifest_digest: str) -> str:
    key: dict[str, Any] = {
        "release_id": release_id,
        "check": check,
        "manifest_digest": manifest_digest,
    }
    claimed: list[Claim] = []
    try:
        return _run_claimed(self, key, claimed)
    except Exception as exc:
        if not database_failed(exc):
            raise
        # The database failed under us (a deadlock it resolved against us, a failover): give the
        # claim back now, so the check runs again within seconds instead of after the lease.
        if claimed:
            try:
                check_claim_release(**key, attempt=claimed[0].attempt)
            except DatabaseError:
                log.warning("could not give back the claim of %s on %s", check, release_id)
        countdown = random.uniform(0.5, 1.5) * DATABASE_RETRY_SECONDS  # noqa: S311 - jitter
        raise self.retry(exc=exc, countdown=countdown) from exc


def _run_claimed(self: Task, key: dict[str, Any], claimed: list[Claim]) -> str:
    release_id, check, manifest_digest = key["release_id"], key["check"], key["manifest_digest"]
    release = release_for_checks(release_id)
    inputs = inputs_digest_of(release, check, manifest_digest)
    claim = check_claim(**key, inputs_digest=inputs, lease=LEASE)
    if claim is None:
        return "nothing to do"
    claimed.append(claim)
    if claim.attempt > MAX_ATTEMPTS:
        outcome = Outcome(
            "error",
            f"gave up after {claim.attempt - 1} attempts: worker lost or over the time limit",
            {"attempts": claim.attempt - 1},
        )
    else:
        try:
            outcome, inputs = compute_check(
                release_id=release_id, check=check, manifest=manifest_digest, release=release
            )
        except StaleManifest:
            check_claim_release(**key, attempt=claim.attempt)
            return "stale manifest"
        except TransientCheckError as exc:
            if self.request.retries < MAX_RETRIES:
                check_claim_release(**key, attempt=claim.attempt)
                countdown = get_exponential_backoff_interval(
                    factor=settings.RELEASEGATE_CHECK_RETRY_BACKOFF_SECONDS,
                    retries=self.request.retries,
                    maximum=settings.RELEASEGATE_CHECK_RETRY_BACKOFF_MAX_SECONDS,
                    full_jitter=True,
                )
                raise self.retry(exc=exc, countdown=countdown) from exc
            outcome = Outcome(
                "error",
                f"{exc} (gave up after {MAX_RETRIES + 1} tries)"[:1000],
                {"error": str(exc), "tries": MAX_RETRIES + 1},
            )
        except SoftTimeLimitExceeded:
            outcome = Outcome(
                "error",
                f"the check did not finish within {settings.CELERY_TASK_SOFT_TIME_LIMIT}s",
                {"error": "time limit"},
            )
        except Exception as exc:
            if database_failed(exc):
                raise  # not the check's fault: run it again, do not record an error
            log.exception("check %s of release %s raised", check, release_id)
            outcome = Outcome(
                "error",
                f"the check raised {type(exc).__name__}: {exc}"[:1000],
                {"error": type(exc).__name__},
            )
    recorded = check_complete(
        **key,
        attempt=claim.attempt,
        inputs_digest=inputs,
        status=outcome.status,
        summary=outcome.summary,
        details=outcome.details,
        valid_until=outcome.valid_until,
    )
    return outcome.status if recorded is not None else "superseded"


# Publishing checks

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def _expires() -> float:
    # A message not started within two sweeps is dropped: the sweep has enqueued it again by then,
    # so a slow or stopped worker does not let duplicates pile up in the queue.
    return 2.0 * settings.RELEASEGATE_SWEEP_SECONDS


def enqueue_checks(due: Iterable[tuple[int, str, str]]) -> int:
    """Publish one run_check message per (release id, check, manifest digest); returns how many."""
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


@shared_task(name="releasegate.checks.sweep")
def sweep() -> int:
    """Enqueue every required check of every release in review that has no final result for
    its current evidence (the beat schedule runs this every RELEASEGATE_SWEEP_SECONDS)."""
    due = checks_due()
    enqueue_checks(due)
    return len(due)
