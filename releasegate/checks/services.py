"""Writes for automated check results, from workers and from CI alike."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability
from releasegate.audit.services import audit_record
from releasegate.checks.models import (
    CheckResult,
    CheckStatus,
)
from releasegate.checks.selectors import current_inputs_digest
from releasegate.errors import FieldError, InvalidInput, NotPermitted
from releasegate.releases.models import Release
from releasegate.releases.policy import CHECK_NAMES
from releasegate.releases.signals import send_after_commit
from releasegate.transactions import LockRank, lock_one, service

FINAL_STATUSES = frozenset({CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.ERROR})


def _validate(
    check: Any, status: Any, external_id: Any, summary: Any, details_url: Any, details: Any
) -> None:
    errors = []
    if check not in CHECK_NAMES:
        errors.append(FieldError("check", f"must be one of {', '.join(CHECK_NAMES)}"))
    if status not in CheckStatus.values:
        errors.append(FieldError("status", f"must be one of {', '.join(CheckStatus.values)}"))
    if not isinstance(external_id, str) or len(external_id) > 200:
        errors.append(FieldError("external_id", "text of at most 200 characters"))
    if not isinstance(summary, str) or len(summary) > 1000:
        errors.append(FieldError("summary", "text of at most 1000 characters"))
    if (
        not isinstance(details_url, str)
        or len(details_url) > 500
        or (details_url and not details_url.startswith(("http://", "https://")))
    ):
        errors.append(FieldError("details_url", "an http(s) URL of at most 500 characters"))
    if not isinstance(details, dict):
        errors.append(FieldError("details", "must be an object"))
    if errors:
        raise InvalidInput("The check result is not valid.", errors=errors)


@service
def check_result_record(
    *,
    release: Release,
    actor: Actor,
    check: Any,
    status: Any,
    manifest_digest: str | None = None,
    external_id: Any = "",
    summary: Any = "",
    details: Any = None,
    details_url: Any = "",
    attempts: int | None = None,
    valid_until: datetime | None = None,
    inputs_digest: str | None = None,
) -> tuple[CheckResult, bool]:
    """Record a check result for a release's evidence manifest; returns (result, created).

    A worker's result is one row per (release, check, manifest), updated in place. A result pushed
    by CI is idempotent on its external id: the same id again updates the same row. `valid_until`
    marks a result that must be computed again after that moment (a waiver it relied on ends).
    `inputs_digest` names what the result was computed from (`gate.check_inputs_digest`); when
    not given (a result pushed by CI), the inputs current now.
    """
    details = {} if details is None else details
    _validate(check, status, external_id, summary, details_url, details)
    if not actor.can(release.project, Capability.REPORT_CHECK):
        raise NotPermitted("You may not report check results for this project.")
    source = CheckResult.Source.WORKER if actor.system else CheckResult.Source.CI
    if source == CheckResult.Source.CI and not external_id:
        raise InvalidInput(
            "A pushed check result needs an external id.",
            errors=[FieldError("external_id", "must not be empty")],
        )
    if source == CheckResult.Source.CI and check != "external_ci":
        # Every other check is computed by the workers from the evidence; a pushed `passed` would
        # override a computed failure (the latest result counts) or settle the check before the
        # workers ever ran it, so a pipeline's token could clear its own release's checks.
        raise InvalidInput(
            "CI reports the external_ci check only; the workers compute the others.",
            code="computed_check",
            errors=[FieldError("check", "must be external_ci when reported by CI")],
        )
    locked = lock_one(Release.objects.all(), LockRank.RELEASE, pk=release.pk)
    manifest = manifest_digest or locked.manifest_digest
    if inputs_digest is None:
        inputs_digest = current_inputs_digest(release_id=locked.pk, check=check, manifest=manifest)
    now = timezone.now()
    key: dict[str, Any] = {"release": locked, "check_name": check, "source": source}
    if source == CheckResult.Source.WORKER:
        key["manifest_digest"] = manifest
    else:
        key["external_id"] = external_id
    result = CheckResult.objects.filter(**key).first()
    created = result is None
    if result is None:
        result = CheckResult(**key, created_at=now)
    elif (
        result.status in FINAL_STATUSES
        and result.manifest_digest == manifest
        and result.inputs_digest == inputs_digest
        and (
            result.status == status
            and result.summary == summary
            and result.details == details
            and result.valid_until == valid_until
        )
    ):
        return result, False  # a repeated message changes nothing
    _store(
        result,
        release=locked,
        actor=actor,
        status=status,
        manifest=manifest,
        inputs_digest=inputs_digest,
        external_id=external_id,
        summary=summary,
        details=details,
        details_url=details_url,
        valid_until=valid_until,
        attempts=attempts,
        now=now,
    )
    return result, created


def _store(
    result: CheckResult,
    *,
    release: Release,
    actor: Actor,
    status: str,
    manifest: str,
    inputs_digest: str,
    external_id: str,
    summary: str,
    details: dict[str, Any],
    details_url: str,
    valid_until: datetime | None,
    attempts: int | None,
    now: datetime,
) -> None:
    """Write a result, validated, into its row (new or existing) under the locked `release`; a
    final one is audited and announced after commit."""
    result.manifest_digest = manifest
    result.inputs_digest = inputs_digest
    result.status = status
    result.external_id = external_id
    result.summary = summary
    result.details = details
    result.details_url = details_url
    result.reported_by_label = actor.label
    result.updated_at = now
    result.valid_until = valid_until
    if status != CheckStatus.RUNNING:
        result.claimed_until = None
    if attempts is not None:
        result.attempts = attempts
    result.save()
    if status in FINAL_STATUSES:
        check = result.check_name
        audit_record(
            action="check_recorded",
            actor=actor,
            project_id=release.project_id,
            release_id=release.pk,
            data={
                "check": check,
                "status": status,
                "manifest_digest": manifest,
                "external_id": external_id or None,
                "summary": summary,
            },
        )
        send_after_commit("check_recorded", release_id=release.pk, check=check, status=status)


@dataclass(frozen=True)
class Claim:
    attempt: int
    taken_over: bool


# The claim as one upsert on the partial unique index of worker rows (PostgreSQL and SQLite both
# have ON CONFLICT ... WHERE and RETURNING); the ORM's upsert can neither target a partial index
# nor make the update conditional. A fresh run after a final result starts counting attempts again.
# The conflict target spells the condition of the partial unique index
# `one_worker_result_per_manifest` as a literal: SQLite (the demo's database) matches an upsert to
# a partial index only when it can read the condition, never through a bound parameter.
_CLAIM_SQL = """
    INSERT INTO checks_checkresult (release_id, check_name, manifest_digest, source, status,
        attempts, claimed_until, inputs_digest, external_id, summary, details, details_url,
        valid_until, reported_by_label, created_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, 1, %s, '', '', '', '{}', '', NULL, 'system', %s, %s)
    ON CONFLICT (release_id, check_name, manifest_digest) WHERE source = 'worker'
    DO UPDATE SET status = excluded.status, claimed_until = excluded.claimed_until,
        updated_at = excluded.updated_at,
        attempts = CASE WHEN checks_checkresult.status = %s
            THEN checks_checkresult.attempts + 1 ELSE 1 END
    WHERE checks_checkresult.status IN (%s, %s)
        OR (checks_checkresult.status IN (%s, %s)
            AND (checks_checkresult.valid_until < %s OR checks_checkresult.inputs_digest <> %s))
    RETURNING attempts
"""
_TAKEOVER_SQL = """
    UPDATE checks_checkresult SET status = %s, claimed_until = %s, updated_at = %s,
        attempts = attempts + 1
    WHERE release_id = %s AND check_name = %s AND manifest_digest = %s AND source = %s
        AND status = %s AND claimed_until < %s
    RETURNING attempts
"""


def check_claim(
    *, release_id: int, check: str, manifest_digest: str, inputs_digest: str, lease: timedelta
) -> Claim | None:
    """Claim one check of one release for one manifest, for `lease`; None when there is nothing to
    do (a final result for `inputs_digest`, the current inputs, stands, or another worker holds a
    live claim).

    Idempotent and race-free, in one statement in the usual case: an upsert on the worker row's
    natural key that inserts it already claimed, or takes the existing row only if it may be taken
    (the database evaluates that condition on the row's latest version, under its lock, so of
    two workers exactly one claims; healthchecks' `sendalerts` claims work the same way). A row
    may be taken when it is pending, errored (fail closed, but worth another try), computed on
    other inputs, or relying on a waiver that has ended; a second statement then tries a row
    claimed by a worker whose lease ran out (it died: `taken_over`).
    """
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    until = connection.ops.adapt_datetimefield_value(now + lease)
    running, pending, error = CheckStatus.RUNNING, CheckStatus.PENDING, CheckStatus.ERROR
    worker = CheckResult.Source.WORKER
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            [
                *(release_id, check, manifest_digest, worker, running, until, at, at),
                *(pending, pending, error, CheckStatus.PASSED, CheckStatus.FAILED),
                *(at, inputs_digest),
            ],
        )
        row = cursor.fetchone()
        if row is not None:
            return Claim(attempt=row[0], taken_over=False)
        cursor.execute(
            _TAKEOVER_SQL,
            [running, until, at, release_id, check, manifest_digest, worker, running, at],
        )
        row = cursor.fetchone()
    return Claim(attempt=row[0], taken_over=True) if row is not None else None


def _claimed_row(
    *, release_id: int, check: str, manifest_digest: str, attempt: int
) -> QuerySet[CheckResult]:
    """The worker row of one check while the claim numbered `attempt` still holds it: empty once
    the claim was taken over, given back or invalidated."""
    return CheckResult.objects.filter(
        release_id=release_id,
        check_name=check,
        manifest_digest=manifest_digest,
        source=CheckResult.Source.WORKER,
        status=CheckStatus.RUNNING,
        attempts=attempt,
    )


@service
def check_complete(
    *,
    release_id: int,
    check: str,
    manifest_digest: str,
    attempt: int,
    status: str,
    summary: str,
    details: dict[str, Any],
    inputs_digest: str,
    valid_until: datetime | None = None,
) -> CheckResult | None:
    """Record a worker's result if its claim numbered `attempt` still holds; None if it was taken
    over or invalidated meanwhile (what this worker computed no longer counts)."""
    summary = summary[:1000]
    _validate(check, status, "", summary, "", details)
    # The release first, then its result row (the lock order), then the audit chain: the row is
    # locked only while this worker's claim on it still holds.
    release = lock_one(Release.objects.only("id", "project_id"), LockRank.RELEASE, pk=release_id)
    claimed = _claimed_row(
        release_id=release_id, check=check, manifest_digest=manifest_digest, attempt=attempt
    )
    try:
        result = lock_one(claimed, LockRank.RELEASE_ROWS)
    except CheckResult.DoesNotExist:
        return None
    _store(
        result,
        release=release,
        actor=Actor.system_actor(),
        status=status,
        manifest=manifest_digest,
        inputs_digest=inputs_digest,
        external_id="",
        summary=summary,
        details=details,
        details_url="",
        valid_until=valid_until,
        # Waiting on CI is not a failed attempt: the next pull starts counting afresh.
        attempts=0 if status == CheckStatus.PENDING else None,
        now=timezone.now(),
    )
    return result


def check_claim_release(*, release_id: int, check: str, manifest_digest: str, attempt: int) -> None:
    """Let go of a claim before a retry, so the retried task (or the sweep) may claim it again."""
    _claimed_row(
        release_id=release_id, check=check, manifest_digest=manifest_digest, attempt=attempt
    ).update(status=CheckStatus.PENDING, claimed_until=None, updated_at=timezone.now())
