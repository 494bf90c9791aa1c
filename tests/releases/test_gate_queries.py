"""The gate loads its facts in a fixed number of queries, whatever the number of facts."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import token_create
from releasegate.checks.models import CheckResult
from releasegate.incidents.models import BreakGlass, Hold
from releasegate.releases.gate_statement import read_visible
from releasegate.releases.models import Approval, Evidence, Release, Veto
from releasegate.releases.questions import GateQuestion
from releasegate.releases.selectors import (
    gate_decision,
    gate_release_queryset,
)
from releasegate.releases.services import approval_give, release_promote
from tests.builders import digest_of, document, pass_checks, submitted_release
from tests.releases.gatehelpers import blockers

# The release with its project, policy and promotion; current evidence; approvals with their
# people; vetoes that reach it, with their people; check results for its manifest.
GATE_QUERIES = 5
# When the release's query says there are some: its active holds; the confirmed break-glasses
# of the release, and the unreviewed ones of its project.
INCIDENT_QUERIES = 2


def _earlier_release(p, version, environment="production"):
    return Release.objects.create(
        project=p.project,
        version=version,
        artifact_digest=digest_of(version),
        environment=environment,
        requester=p.requester,
        manifest_digest=digest_of(f"manifest {version}"),
    )


def _release_with(p, n: int) -> Release:
    earlier = _earlier_release(p, "0.9.0")
    elsewhere = _earlier_release(p, "0.9.1", environment="staging")
    release = submitted_release(p.project, p.requester, version="1.0.0")
    pass_checks(release)
    now = timezone.now()
    Evidence.objects.bulk_create(
        Evidence(
            release=release,
            kind="pipeline_review",
            document=document("pipeline_review") | {"reviewer": f"reviewer {i}"},
            digest=digest_of(f"old review {i}"),
            is_current=False,
            attached_by_label="requester",
        )
        for i in range(n)
    )
    reviewers = get_user_model().objects.bulk_create(
        get_user_model()(username=f"reviewer{i}") for i in range(n)
    )
    Approval.objects.bulk_create(
        Approval(
            release=release,
            role="security" if i % 2 else "sme",
            user=user,
            # Half on older evidence, half on the current: both kinds are read.
            manifest_digest=release.manifest_digest if i % 4 < 2 else digest_of(f"old {i}"),
        )
        for i, user in enumerate(reviewers)
    )
    kinds = [
        # (release, scope, lifted): carried, lifted, own, another environment, release-only
        (earlier, Veto.Scope.CARRY_FORWARD, False),
        (earlier, Veto.Scope.CARRY_FORWARD, True),
        (release, Veto.Scope.RELEASE, False),
        (elsewhere, Veto.Scope.CARRY_FORWARD, False),
        (earlier, Veto.Scope.RELEASE, False),
    ]
    Veto.objects.bulk_create(
        Veto(
            release=target,
            project=p.project,
            environment=target.environment,
            artifact_digest=target.artifact_digest,
            role="security",
            user=reviewers[i],
            reason=f"reason {i}",
            scope=scope,
            lifted_at=now if lifted else None,
            lifted_by=p.security if lifted else None,
        )
        for i, (target, scope, lifted) in ((i, kinds[i % len(kinds)]) for i in range(n))
    )
    CheckResult.objects.bulk_create(
        CheckResult(
            release=release,
            check_name="licenses",
            manifest_digest=release.manifest_digest,
            status="passed",
            source=CheckResult.Source.CI,
            external_id=f"ci-run-{i}",
        )
        for i in range(n)
    )
    Hold.objects.bulk_create(
        Hold(
            project=p.project,
            release=release,
            fingerprint=f"{i:016x}",
            alert_name=f"Alert{i}",
            severity="critical",
            since=now - timedelta(minutes=i),
            # Every other one lifted, so a fingerprint holds once at most.
            lifted_at=now if i % 2 else None,
        )
        for i in range(n)
    )
    BreakGlass.objects.bulk_create(
        BreakGlass(
            project=p.project,
            release=earlier if i % 2 else release,
            reason="incident",
            incident=f"INC-{i}",
            requested_by=p.requester,
            requested_at=now - timedelta(days=30),
            confirm_by=now - timedelta(days=30),
            confirmed_by=p.security,
            confirmed_at=now - timedelta(days=30),
            until=now - timedelta(days=29),
            review_due=now - timedelta(days=23),
            reviewed_at=now if i % 3 == 0 else None,
        )
        for i in range(n)
    )
    return release


def _active_holds(n: int) -> int:
    return sum(1 for i in range(n) if i % 2 == 0)


def _reviews_due(n: int) -> int:
    return sum(1 for i in range(n) if i % 3 != 0)


def _blocking_vetoes(n: int) -> int:
    # Of every five: the carried one and the release's own block; the lifted one, the one in
    # another environment and the earlier release-only one do not.
    return sum(1 for i in range(n) if i % 5 in (0, 2))


@pytest.mark.parametrize("n", [1, 50])
def test_gate_query_count_is_the_same_for_1_and_50_of_each_fact(
    personas, django_assert_num_queries, n
):
    release = _release_with(personas, n)
    with django_assert_num_queries(GATE_QUERIES + INCIDENT_QUERIES):
        decision = gate_decision(gate_release_queryset().get(pk=release.pk))
    # The facts were all read: every blocking veto, hold and overdue review is reported.
    assert len(blockers(decision, "veto")) == _blocking_vetoes(n)
    assert len(blockers(decision, "hold")) == _active_holds(n)
    assert len(blockers(decision, "review_overdue")) == _reviews_due(n)
    assert not blockers(decision, "check_pending")
    assert not blockers(decision, "evidence_missing")


@pytest.mark.postgres
@pytest.mark.parametrize("n", [1, 50])
def test_the_api_gate_reads_a_release_and_all_its_facts_in_one_query(
    personas, django_assert_num_queries, n
):
    release = _release_with(personas, n)
    with django_assert_num_queries(1):
        facts = read_visible([personas.project.pk], GateQuestion(release_id=release.pk))
    assert facts is not None
    assert len(facts.vetoes) == _blocking_vetoes(n)
    assert len(facts.evidence) == 5
    assert len(facts.holds) == _active_holds(n)
    assert len(facts.reviews_due) == _reviews_due(n)


def _token(p, kind: str) -> str:
    if kind == "service":
        token, raw = token_create(
            actor=Actor.system_actor(),
            kind="service",
            name="ci",
            project=p.project,
            scopes=["gate:read"],
        )
    else:
        token, raw = token_create(
            actor=p.actor("auditor"), kind="personal", name="t", user=p.auditor
        )
    # Used a moment ago, so this request does not record its use (a write once a minute).
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return raw


@pytest.mark.postgres
@pytest.mark.parametrize("kind", ["service", "personal"])
@pytest.mark.parametrize("n", [1, 50])
def test_a_gate_request_with_a_token_is_answered_in_one_round_trip(
    personas, django_assert_num_queries, kind, n
):
    release = _release_with(personas, n)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {_token(personas, kind)}")
    by_version = f"/api/v1/gate?project={personas.project.slug}&version={release.version}"
    for path in (
        f"/api/v1/releases/{release.pk}/gate",
        by_version,
        by_version + "&environment=staging",
    ):
        with django_assert_num_queries(1):
            response = client.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["release"]["id"] == release.pk
        codes = [b["code"] for b in body["blockers"]]
        assert codes.count("veto") == _blocking_vetoes(n)
        assert codes.count("hold") == _active_holds(n)


def test_gate_query_count_is_the_same_for_a_promoted_release(personas, django_assert_num_queries):
    p = personas
    release = submitted_release(p.project, p.requester)
    pass_checks(release)
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    release_promote(release=release, actor=p.actor("requester"))
    with django_assert_num_queries(GATE_QUERIES):
        decision = gate_decision(gate_release_queryset().get(pk=release.pk))
    assert decision.cleared
