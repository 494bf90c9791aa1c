"""The check task in this process: claims, idempotency, stale evidence, fail closed, external CI."""

from datetime import timedelta

import pytest
from django.utils import timezone

from releasegate.audit.models import AuditEvent
from releasegate.checks.external_ci import check_external_ci
from releasegate.checks.models import CheckResult
from releasegate.checks.selectors import checks_due, current_inputs_digest
from releasegate.checks.services import check_claim
from releasegate.checks.tasks import MAX_ATTEMPTS, MAX_RETRIES, run_check, sweep
from releasegate.releases.models import GatePolicy
from releasegate.releases.selectors import gate_decision, gate_release_queryset
from releasegate.releases.services import evidence_attach, policy_change
from tests.builders import DEFAULT_CHECKS, document, submitted_release
from tests.checks.ci_server import FakeCI


@pytest.fixture
def release(personas, advisory_db):
    return submitted_release(personas.project, personas.requester)


@pytest.fixture
def ci():
    fake = FakeCI().start()
    yield fake
    fake.stop()


def inputs_of(release, check):
    return current_inputs_digest(
        release_id=release.pk, check=check, manifest=release.manifest_digest
    )


def run(release, check):
    return run_check.apply(args=(release.pk, check, release.manifest_digest)).get()


def results(release, check):
    return list(CheckResult.objects.filter(release=release, check_name=check))


def blockers(release):
    return gate_decision(gate_release_queryset().get(pk=release.pk)).blockers


def check_blocker(release, check):
    found = [
        (b.code, b.details["status"]) for b in blockers(release) if b.details.get("check") == check
    ]
    return found[0] if found else None


def test_every_default_check_passes_on_good_evidence_and_the_check_blockers_clear(release):
    assert {b.code for b in blockers(release)} >= {"check_pending"}
    for check in DEFAULT_CHECKS:
        assert run(release, check) == "passed", results(release, check)[0].summary
    assert {b.code for b in blockers(release)} == {"approval_missing"}


def test_a_repeated_message_changes_nothing(release):
    assert run(release, "data_flow") == "passed"
    assert run(release, "data_flow") == "nothing to do"
    assert len(results(release, "data_flow")) == 1
    assert AuditEvent.objects.filter(action="check_recorded").count() == 1


def test_a_failing_check_records_failed_with_its_reason_and_blocks(personas, release):
    plan = document("monitoring_plan")
    plan["signals"] = plan["signals"][:1]
    evidence_attach(
        release=release, actor=personas.actor("requester"), kind="monitoring_plan", document=plan
    )
    release.refresh_from_db()
    assert run(release, "monitoring_coverage") == "failed"
    [row] = results(release, "monitoring_coverage")
    assert row.details["problems"] == ["no data_exposure signal"]
    assert check_blocker(release, "monitoring_coverage") == ("check_failed", "failed")


def test_a_result_for_older_evidence_is_never_recorded(personas, release):
    old = release.manifest_digest
    evidence_attach(
        release=release,
        actor=personas.actor("requester"),
        kind="data_flow_map",
        document=document("data_flow_map") | {"note": "v2"},
    )
    assert run_check.apply(args=(release.pk, "data_flow", old)).get() == "stale manifest"
    assert not CheckResult.objects.filter(release=release, status="passed").exists()
    release.refresh_from_db()
    assert (release.pk, "data_flow", release.manifest_digest) in checks_due()


def test_a_check_claimed_by_a_live_worker_is_left_alone(release):
    claim = check_claim(
        release_id=release.pk,
        check="licenses",
        manifest_digest=release.manifest_digest,
        inputs_digest=inputs_of(release, "licenses"),
        lease=timedelta(minutes=5),
    )
    assert claim is not None and claim.attempt == 1
    assert run(release, "licenses") == "nothing to do"
    assert (release.pk, "licenses", release.manifest_digest) not in checks_due()


def test_a_check_whose_worker_died_is_taken_over_then_given_up_as_error(release):
    key = {
        "release_id": release.pk,
        "check": "licenses",
        "manifest_digest": release.manifest_digest,
    }
    for _ in range(MAX_ATTEMPTS):
        check_claim(
            **key, inputs_digest=inputs_of(release, "licenses"), lease=timedelta(seconds=-1)
        )  # claimed, then the worker vanished
    assert (release.pk, "licenses", release.manifest_digest) in checks_due()
    assert run(release, "licenses") == "error"
    [row] = results(release, "licenses")
    assert "gave up after" in row.summary
    assert check_blocker(release, "licenses") == ("check_failed", "error")


def test_sweep_enqueues_only_what_has_no_final_result(release):
    assert sorted(c for _, c, _ in checks_due()) == sorted(DEFAULT_CHECKS)
    for check in DEFAULT_CHECKS[:3]:
        run(release, check)
    assert sorted(c for _, c, _ in checks_due()) == sorted(DEFAULT_CHECKS[3:])
    assert sweep.apply().get() == len(DEFAULT_CHECKS) - 3


def external(personas, url, fmt="github", **extra):
    policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={
            "required_checks": [*DEFAULT_CHECKS, "external_ci"],
            "external_ci": {"url": url, "format": fmt, **extra},
        },
    )


@pytest.mark.parametrize(
    "body, status",
    [
        (
            {
                "check_runs": [
                    {"name": "build", "status": "completed", "conclusion": "success"},
                    {"name": "lint", "status": "completed", "conclusion": "skipped"},
                ]
            },
            "passed",
        ),
        (
            {"check_runs": [{"name": "build", "status": "completed", "conclusion": "failure"}]},
            "failed",
        ),
        (
            {"check_runs": [{"name": "build", "status": "in_progress", "conclusion": None}]},
            "pending",
        ),
        ({"check_runs": []}, "pending"),
        ({"message": "Not Found"}, "error"),
    ],
)
def test_github_check_runs(personas, release, ci, body, status):
    ci.body = body
    external(personas, ci.url)
    assert run(release, "external_ci") == status


@pytest.mark.parametrize(
    "pipeline, status",
    [
        ("success", "passed"),
        ("failed", "failed"),
        ("canceled", "failed"),
        ("running", "pending"),
        ("pending", "pending"),
    ],
)
def test_gitlab_pipeline(personas, release, ci, pipeline, status):
    ci.body = {"status": pipeline, "web_url": "https://gitlab.example.com/p/1"}
    external(personas, ci.url, "gitlab")
    assert run(release, "external_ci") == status


def test_a_pending_pipeline_is_pulled_again_by_the_next_sweep(personas, release, ci):
    ci.body = {"status": "running"}
    external(personas, ci.url, "gitlab")
    run(release, "external_ci")
    assert (release.pk, "external_ci", release.manifest_digest) in checks_due()
    ci.body = {"status": "success"}
    assert run(release, "external_ci") == "passed"


def test_a_long_running_pipeline_never_turns_into_an_error(personas, release, ci):
    ci.body = {"status": "running"}
    external(personas, ci.url, "gitlab")
    for _ in range(MAX_ATTEMPTS + 2):
        assert run(release, "external_ci") == "pending"
    assert len(ci.requests) == MAX_ATTEMPTS + 2


def test_the_bearer_token_comes_from_the_named_environment_variable(
    release, ci, monkeypatch, settings
):
    origin = ci.url.split("/pipelines")[0]
    settings.RELEASEGATE_EXTERNAL_CI_TOKENS = {"RG_TEST_CI_TOKEN": origin}
    monkeypatch.setenv("RG_TEST_CI_TOKEN", "s3cret")
    ci.body = {"status": "success"}
    outcome = check_external_ci(
        {"url": ci.url + "?v={version}", "format": "gitlab", "token_env": "RG_TEST_CI_TOKEN"},
        version="1.0.0",
        artifact_digest="sha256:x",
    )
    assert outcome.status == "passed"
    assert ci.requests[0]["Authorization"] == "Bearer s3cret"
    assert ci.requests[0]["path"].endswith("?v=1.0.0")
    monkeypatch.delenv("RG_TEST_CI_TOKEN")
    missing = check_external_ci(
        {"url": ci.url, "format": "gitlab", "token_env": "RG_TEST_CI_TOKEN"},
        version="1",
        artifact_digest="x",
    )
    assert missing.status == "error" and "RG_TEST_CI_TOKEN" in missing.summary


@pytest.mark.parametrize(
    "bindings",
    [{}, {"RG_TEST_CI_TOKEN": "https://ci.example.com"}],
    ids=["not listed", "bound elsewhere"],
)
def test_a_policy_row_naming_a_token_it_may_not_send_gets_an_error_and_sends_nothing(
    personas, release, ci, monkeypatch, settings, bindings
):
    # A row written before the binding existed (or under another one): `policy_change` would
    # refuse it now, and the worker refuses to send it as well.
    monkeypatch.setenv("RG_TEST_CI_TOKEN", "s3cret")
    external(personas, ci.url, "gitlab")
    GatePolicy.objects.filter(pk=personas.project.current_policy_id).update(
        external_ci={"url": ci.url, "format": "gitlab", "token_env": "RG_TEST_CI_TOKEN"}
    )
    settings.RELEASEGATE_EXTERNAL_CI_TOKENS = bindings

    assert run(release, "external_ci") == "error"

    assert ci.requests == []
    [row] = results(release, "external_ci")
    assert row.summary.startswith("the CI token is not sent: ")
    assert "RELEASEGATE_EXTERNAL_CI_TOKENS" in row.summary
    assert "s3cret" not in row.summary + str(row.details)
    assert check_blocker(release, "external_ci") == ("check_failed", "error")


def test_a_ci_that_keeps_failing_is_retried_then_recorded_as_error(personas, release, ci, settings):
    settings.RELEASEGATE_EXTERNAL_CI_TIMEOUT_SECONDS = 1
    ci.status = 503
    external(personas, ci.url, "gitlab")
    assert run(release, "external_ci") == "error"
    assert len(ci.requests) == MAX_RETRIES + 1
    [row] = results(release, "external_ci")
    assert "answered 503" in row.summary and "gave up" in row.summary
    assert check_blocker(release, "external_ci") == ("check_failed", "error")
    ci.status = 200
    ci.body = {"status": "success"}
    assert (release.pk, "external_ci", release.manifest_digest) in checks_due()
    assert run(release, "external_ci") == "passed"


def test_a_ci_answer_of_404_is_an_error_without_retries(personas, release, ci):
    ci.status = 404
    external(personas, ci.url, "gitlab")
    assert run(release, "external_ci") == "error"
    assert len(ci.requests) == 1


def test_an_old_claim_that_lost_its_lease_cannot_record(release):
    key = {
        "release_id": release.pk,
        "check": "licenses",
        "manifest_digest": release.manifest_digest,
    }
    inputs = inputs_of(release, "licenses")
    first = check_claim(**key, inputs_digest=inputs, lease=timedelta(seconds=-1))
    second = check_claim(**key, inputs_digest=inputs, lease=timedelta(minutes=1))
    assert (first.attempt, second.attempt, second.taken_over) == (1, 2, True)
    from releasegate.checks.services import check_complete

    assert (
        check_complete(
            **key,
            attempt=first.attempt,
            inputs_digest=inputs,
            status="passed",
            summary="late",
            details={},
        )
        is None
    )
    assert (
        check_complete(
            **key,
            attempt=second.attempt,
            inputs_digest=inputs,
            status="passed",
            summary="ok",
            details={},
        )
        is not None
    )
    assert results(release, "licenses")[0].summary == "ok"
    assert timezone.now()  # keep the import honest for the time-based lease above


def test_vulnerabilities_fail_closed_when_no_advisories_are_imported(personas):
    release = submitted_release(personas.project, personas.requester)
    assert run(release, "vulnerabilities") == "error"
    assert "import_osv" in results(release, "vulnerabilities")[0].summary
    assert check_blocker(release, "vulnerabilities") == ("check_failed", "error")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_task_that_meets_a_busy_database_gives_its_claim_back_at_once(personas, advisory_db):
    """The release row is held by another transaction past every retry of the result's write:
    the task must not leave its check `running` until the lease runs out, but pending again, for
    the next delivery of the task (Celery's retry, a second later) to claim."""
    import threading

    from django.db import connection, transaction

    from releasegate.errors import Unavailable

    release = submitted_release(personas.project, personas.requester)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                # As a service holds it: a claim's insert (its foreign-key check) still goes by.
                cursor.execute(
                    "SELECT id FROM releases_release WHERE id = %s FOR NO KEY UPDATE", [release.pk]
                )
                holding.set()
                done.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '50ms'")
        # Called directly, a task's retry re-raises what it retries on.
        with pytest.raises(Unavailable):
            run_check(release.pk, "data_flow", release.manifest_digest)
    finally:
        done.set()
        holder.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    (row,) = results(release, "data_flow")
    assert row.status == "pending" and row.claimed_until is None
    assert run(release, "data_flow") == "passed"
