"""When what a check reads beyond the evidence and the policy changes (a waiver, new advisories):
the results computed before stop counting, and the checks run again."""

from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from releasegate.checks.models import AdvisoryGeneration, CheckResult, CheckStatus, WaiverGeneration
from releasegate.checks.tasks import enqueue_checks
from releasegate.releases.models import Release


def _generation_bump(model: type[AdvisoryGeneration] | type[WaiverGeneration], **key: Any) -> None:
    if not model.objects.filter(**key).update(value=F("value") + 1):
        _, created = model.objects.get_or_create(**key, defaults={"value": 1})
        if not created:
            model.objects.filter(**key).update(value=F("value") + 1)


def check_results_invalidate(*, project_id: int | None, check: str) -> int:
    """The inputs of a check beyond the evidence and the policy changed for the project (a waiver)
    or, with None, for every project (new advisories). For `vulnerabilities` this bumps the
    waiver or advisory generation, so no result computed before counts again, on any manifest;
    and the worker results of releases in review go back to pending and run again after commit."""
    if check == "vulnerabilities":
        if project_id is None:
            _generation_bump(AdvisoryGeneration, pk=1)
        else:
            _generation_bump(WaiverGeneration, project_id=project_id)
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
        transaction.on_commit(lambda: enqueue_checks([(r, check, m) for r, m in due]))
    return count
