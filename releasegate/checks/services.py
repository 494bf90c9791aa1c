"""Writes for automated check results, from workers and from CI alike."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability
from releasegate.audit.services import audit_record
from releasegate.checks.models import CheckResult, CheckStatus
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
) -> tuple[CheckResult, bool]:
    """Record a check result for a release's evidence manifest; returns (result, created).

    A worker's result is one row per (release, check, manifest), updated in place. A result pushed
    by CI is idempotent on its external id: the same id again updates the same row. `valid_until`
    marks a result that must be computed again after that moment (a waiver it relied on ends).
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
        and (
            result.status == status
            and result.summary == summary
            and result.details == details
            and result.valid_until == valid_until
        )
    ):
        return result, False  # a repeated message changes nothing
    result.manifest_digest = manifest
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
        audit_record(
            action="check_recorded",
            actor=actor,
            project_id=locked.project_id,
            release_id=locked.pk,
            data={
                "check": check,
                "status": status,
                "manifest_digest": manifest,
                "external_id": external_id or None,
                "summary": summary,
            },
        )
        send_after_commit("check_recorded", release_id=locked.pk, check=check, status=status)
    return result, created


@dataclass(frozen=True)
class Claim:
    attempt: int
    taken_over: bool


def check_claim(
    *, release_id: int, check: str, manifest_digest: str, lease: timedelta
) -> Claim | None:
    """Claim one check of one release for one manifest, for `lease`; None when there is nothing to
    do (a final result stands, or another worker holds a live claim).

    Idempotent and race-free: the row is created if missing (the unique constraint settles a race)
    and taken with a conditional UPDATE, as healthchecks' `sendalerts` claims work. A row may be
    taken when it is pending, errored (fail closed, but worth another try), relying on a waiver that
    has ended, or claimed by a worker whose lease ran out (it died: `taken_over`).
    """
    now = timezone.now()
    worker_row = CheckResult.objects.filter(
        release_id=release_id,
        check_name=check,
        manifest_digest=manifest_digest,
        source=CheckResult.Source.WORKER,
    )
    if not worker_row.exists():
        try:
            with transaction.atomic():
                CheckResult.objects.create(
                    release_id=release_id,
                    check_name=check,
                    manifest_digest=manifest_digest,
                    source=CheckResult.Source.WORKER,
                    status=CheckStatus.PENDING,
                    reported_by_label="system",
                    created_at=now,
                    updated_at=now,
                )
        except IntegrityError:
            pass  # another worker created it first; the UPDATE below decides who runs
    claim = {"status": CheckStatus.RUNNING, "claimed_until": now + lease, "updated_at": now}
    # A fresh run after a final result starts counting attempts again.
    if worker_row.filter(
        Q(status=CheckStatus.ERROR) | Q(status__in=FINAL_STATUSES, valid_until__lt=now)
    ).update(**claim, attempts=1):
        return Claim(attempt=1, taken_over=False)
    if worker_row.filter(status=CheckStatus.PENDING).update(**claim, attempts=F("attempts") + 1):
        return Claim(attempt=worker_row.values_list("attempts", flat=True).get(), taken_over=False)
    if worker_row.filter(status=CheckStatus.RUNNING, claimed_until__lt=now).update(
        **claim, attempts=F("attempts") + 1
    ):
        return Claim(attempt=worker_row.values_list("attempts", flat=True).get(), taken_over=True)
    return None


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
    valid_until: datetime | None = None,
) -> CheckResult | None:
    """Record a worker's result if its claim numbered `attempt` still holds; None if it was taken
    over or invalidated meanwhile (what this worker computed no longer counts)."""
    release = lock_one(Release.objects.select_related("project"), LockRank.RELEASE, pk=release_id)
    holds = CheckResult.objects.filter(
        release_id=release_id,
        check_name=check,
        manifest_digest=manifest_digest,
        source=CheckResult.Source.WORKER,
        status=CheckStatus.RUNNING,
        attempts=attempt,
    ).exists()
    if not holds:
        return None
    result, _ = check_result_record(
        release=release,
        actor=Actor.system_actor(),
        check=check,
        status=status,
        manifest_digest=manifest_digest,
        summary=summary[:1000],
        details=details,
        valid_until=valid_until,
        # Waiting on CI is not a failed attempt: the next pull starts counting afresh.
        attempts=0 if status == CheckStatus.PENDING else None,
    )
    return result


def check_claim_release(*, release_id: int, check: str, manifest_digest: str, attempt: int) -> None:
    """Let go of a claim before a retry, so the retried task (or the sweep) may claim it again."""
    CheckResult.objects.filter(
        release_id=release_id,
        check_name=check,
        manifest_digest=manifest_digest,
        source=CheckResult.Source.WORKER,
        status=CheckStatus.RUNNING,
        attempts=attempt,
    ).update(status=CheckStatus.PENDING, claimed_until=None, updated_at=timezone.now())


def check_results_invalidate(*, project_id: int | None, check: str) -> int:
    """Set a check's worker results for the project's (or, with None, every) releases in review back
    to pending: their inputs changed (a waiver, new advisories). They run again after commit."""
    rows = CheckResult.objects.filter(
        release__state=Release.State.IN_REVIEW,
        release__manifest_digest=F("manifest_digest"),
        check_name=check,
        source=CheckResult.Source.WORKER,
    )
    if project_id is not None:
        rows = rows.filter(release__project_id=project_id)
    due = list(rows.values_list("release_id", "manifest_digest"))
    # A running worker loses its claim too: what it computed predates the change and is dropped.
    count = rows.update(status=CheckStatus.PENDING, claimed_until=None, updated_at=timezone.now())
    if due:
        from releasegate.checks.enqueue import enqueue_checks

        transaction.on_commit(lambda: enqueue_checks([(r, check, m) for r, m in due]))
    return count
