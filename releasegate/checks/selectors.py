"""Reads for the check workers."""

from django.db.models import F
from django.utils import timezone

from releasegate.checks.models import CheckResult, CheckStatus
from releasegate.releases.models import Release


def checks_due(*, release_ids: list[int] | None = None) -> list[tuple[int, str, str]]:
    """(release id, check, manifest digest) for every check a release in review requires that has
    no final result for its current manifest: none yet, pending, errored (tried again), relying on
    a waiver that has ended, or claimed by a worker whose lease ran out. Two queries."""
    now = timezone.now()
    releases = Release.objects.filter(state=Release.State.IN_REVIEW).select_related(
        "project__current_policy"
    )
    if release_ids is not None:
        releases = releases.filter(pk__in=release_ids)
    releases = releases.only("id", "manifest_digest", "project__current_policy__required_checks")
    settled: set[tuple[int, str]] = set()
    results = CheckResult.objects.filter(
        release__in=releases.values("pk"), release__manifest_digest=F("manifest_digest")
    ).values_list("release_id", "check_name", "status", "claimed_until", "valid_until")
    for release_id, check, status, claimed_until, valid_until in results:
        if valid_until is not None and valid_until < now:
            continue
        if status in {CheckStatus.PASSED, CheckStatus.FAILED} or (
            status == CheckStatus.RUNNING and claimed_until is not None and claimed_until >= now
        ):
            settled.add((release_id, check))
    due = []
    for release in releases:
        policy = release.project.current_policy
        for check in policy.required_checks if policy else ():
            if (release.pk, check) not in settled:
                due.append((release.pk, check, release.manifest_digest))
    return due
