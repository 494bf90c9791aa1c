"""Results pushed by CI go through the same service as the workers', idempotent on external_id."""

import pytest

from releasegate.accounts.actors import Actor
from releasegate.accounts.tokens import token_create
from releasegate.audit.models import AuditEvent
from releasegate.checks.models import CheckResult
from releasegate.checks.selectors import checks_due
from releasegate.checks.services import check_result_record
from releasegate.errors import InvalidInput, NotPermitted
from releasegate.releases.services import policy_change
from tests.builders import DEFAULT_CHECKS, submitted_release


@pytest.fixture
def release(personas):
    policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={
            "required_checks": [*DEFAULT_CHECKS, "external_ci"],
            "external_ci": {"url": "https://ci.example.com/p/1", "format": "gitlab"},
        },
    )
    return submitted_release(personas.project, personas.requester)


def ci_actor(personas, scopes=("checks:write",)):
    token, _ = token_create(
        actor=personas.actor("admin"),
        kind="service",
        name="ci",
        project=personas.project,
        scopes=list(scopes),
    )
    return Actor.for_token(token)


def push(release, actor, status, external_id="run-42", summary=""):
    return check_result_record(
        release=release,
        actor=actor,
        check="external_ci",
        status=status,
        external_id=external_id,
        summary=summary,
        details_url="https://ci.example.com/run/42",
    )


def test_the_same_external_id_updates_one_row(personas, release):
    ci = ci_actor(personas)
    first, created = push(release, ci, "running")
    assert created
    second, created_again = push(release, ci, "passed", summary="all green")
    assert (second.pk, created_again, second.status, second.source) == (
        first.pk,
        False,
        "passed",
        "ci",
    )
    push(release, ci, "passed", summary="all green")  # repeated: nothing changes
    assert CheckResult.objects.filter(release=release, check_name="external_ci").count() == 1
    assert AuditEvent.objects.filter(action="check_recorded").count() == 1


def test_a_pushed_final_result_means_the_worker_does_not_pull_it(personas, release):
    assert (release.pk, "external_ci", release.manifest_digest) in checks_due()
    push(release, ci_actor(personas), "passed")
    assert (release.pk, "external_ci", release.manifest_digest) not in checks_due()


def test_a_push_without_external_id_or_scope_is_refused(personas, release):
    with pytest.raises(InvalidInput):
        push(release, ci_actor(personas), "passed", external_id="")
    with pytest.raises(NotPermitted):
        push(release, ci_actor(personas, scopes=("gate:read",)), "passed")
    assert not CheckResult.objects.filter(check_name="external_ci").exists()


def test_ci_cannot_pass_a_check_the_workers_compute(personas, release):
    """A pipeline's token pushing `passed` would override the workers' failed vulnerabilities
    check (the latest result counts) or settle it before it ever ran."""
    check_result_record(
        release=release, actor=Actor.system_actor(), check="vulnerabilities", status="failed"
    )
    with pytest.raises(InvalidInput) as refused:
        check_result_record(
            release=release,
            actor=ci_actor(personas),
            check="vulnerabilities",
            status="passed",
            external_id="run-43",
        )
    assert refused.value.code == "computed_check"
    assert [e.field for e in refused.value.errors] == ["check"]
    assert list(
        CheckResult.objects.filter(check_name="vulnerabilities").values_list("status", "source")
    ) == [("failed", "worker")]
    assert (release.pk, "sbom_valid", release.manifest_digest) in checks_due()
