"""Reads for the check workers."""

from django.db.models import F
from django.utils import timezone

from releasegate.checks.models import CheckResult, CheckStatus
from releasegate.releases.gate import check_inputs_digest
from releasegate.releases.models import Release
from releasegate.releases.selectors import (
    GenerationsRelease,
    policy_facts,
    with_check_generations,
)


def inputs_digest_of(release: GenerationsRelease, check: str, manifest: str) -> str:
    """The digest of the current inputs of `check` on `manifest`, for a release loaded with
    `release_for_checks` (its policy and check generations)."""
    policy = release.project.current_policy
    assert policy is not None
    return check_inputs_digest(
        check,
        manifest=manifest,
        policy=policy_facts(policy),
        advisory_generation=release.advisory_generation,
        waiver_generation=release.waiver_generation,
    )


def release_for_checks(release_id: int) -> GenerationsRelease:
    """The release with its project, policy and check generations, in one query."""
    return with_check_generations(Release.objects.select_related("project__current_policy")).get(
        pk=release_id
    )


def current_inputs_digest(*, release_id: int, check: str, manifest: str) -> str:
    return inputs_digest_of(release_for_checks(release_id), check, manifest)


def checks_due(
    *, release_ids: list[int] | None = None, project_id: int | None = None
) -> list[tuple[int, str, str]]:
    """(release id, check, manifest digest) for every check a release in review requires that has
    no final result for its current inputs (manifest, policy parameters, advisory and waiver
    generations): none yet, pending, errored (tried again), computed on other inputs, relying on a
    waiver that has ended, or claimed by a worker whose lease ran out. Two queries."""
    now = timezone.now()
    in_review = with_check_generations(
        Release.objects.filter(state=Release.State.IN_REVIEW).select_related(
            "project__current_policy"
        )
    )
    if release_ids is not None:
        in_review = in_review.filter(pk__in=release_ids)
    if project_id is not None:
        in_review = in_review.filter(project_id=project_id)
    releases = list(in_review)
    current = {
        (release.pk, check): inputs_digest_of(release, check, release.manifest_digest)
        for release in releases
        if release.project.current_policy is not None
        for check in release.project.current_policy.required_checks
    }
    settled: set[tuple[int, str]] = set()
    results = CheckResult.objects.filter(
        release__in=in_review.values("pk"), release__manifest_digest=F("manifest_digest")
    ).values_list(
        "release_id", "check_name", "status", "claimed_until", "valid_until", "inputs_digest"
    )
    for release_id, check, status, claimed_until, valid_until, inputs in results:
        if valid_until is not None and valid_until < now:
            continue
        if (
            status in {CheckStatus.PASSED, CheckStatus.FAILED}
            and inputs == current.get((release_id, check))
        ) or (status == CheckStatus.RUNNING and claimed_until is not None and claimed_until >= now):
            settled.add((release_id, check))
    due = []
    for release in releases:
        policy = release.project.current_policy
        for check in policy.required_checks if policy else ():
            if (release.pk, check) not in settled:
                due.append((release.pk, check, release.manifest_digest))
    return due
