"""Writes for automated check results, from workers and from CI alike."""

from typing import Any

from django.db import transaction
from django.utils import timezone

from releasegate.accounts.actors import Actor, Capability
from releasegate.audit.services import audit_record
from releasegate.checks.models import CheckResult, CheckStatus
from releasegate.errors import FieldError, InvalidInput, NotPermitted
from releasegate.releases.models import Release
from releasegate.releases.policy import CHECK_NAMES
from releasegate.releases.signals import send_after_commit

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
    if not isinstance(details_url, str) or len(details_url) > 500 or (
        details_url and not details_url.startswith(("http://", "https://"))
    ):
        errors.append(FieldError("details_url", "an http(s) URL of at most 500 characters"))
    if not isinstance(details, dict):
        errors.append(FieldError("details", "must be an object"))
    if errors:
        raise InvalidInput("The check result is not valid.", errors=errors)


@transaction.atomic
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
) -> tuple[CheckResult, bool]:
    """Record a check result for a release's evidence manifest; returns (result, created).

    A worker's result is one row per (release, check, manifest), updated in place. A result pushed
    by CI is idempotent on its external id: the same id again updates the same row.
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
    locked = Release.objects.select_for_update().get(pk=release.pk)
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
    elif result.status in FINAL_STATUSES and result.manifest_digest == manifest and (
        result.status == status and result.summary == summary and result.details == details
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
