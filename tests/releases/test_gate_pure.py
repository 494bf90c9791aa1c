"""The gate as a pure function over hand-made facts: no database, every edge at once."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from releasegate.releases.gate import (
    ApprovalFact,
    CheckFact,
    EvidenceFact,
    GateFacts,
    PolicyFacts,
    ReleaseFacts,
    evaluate_gate,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
REQUESTER, SAM, ERIN = 1, 2, 3


def _facts(**overrides) -> GateFacts:
    release = ReleaseFacts(
        id=7,
        project_id=1,
        project_slug="support-assistant",
        version="1.4.2",
        artifact_digest="sha256:" + "a" * 64,
        environment="production",
        state="in_review",
        requester_id=REQUESTER,
    )
    policy = PolicyFacts(
        version=3,
        required_items=("sbom",),
        required_checks=("licenses",),
        required_approvals={"security": 1},
        max_approval_age=timedelta(days=14),
        max_review_age=timedelta(days=180),
    )
    base = GateFacts(release=release, policy=policy, evidence=(EvidenceFact("sbom", "sha256:e"),))
    manifest = base.manifest
    defaults = {
        "release": release,
        "policy": policy,
        "evidence": base.evidence,
        "approvals": (ApprovalFact(SAM, "sam", "security", manifest, NOW - timedelta(hours=1)),),
        "checks": (CheckFact("licenses", "passed", manifest, NOW - timedelta(hours=1)),),
    }
    facts = GateFacts(**(defaults | overrides))
    # Results hand-made without their inputs digest stand for results on the current inputs.
    inputs = facts.check_inputs
    return replace(
        facts,
        checks=tuple(
            c if c.inputs_digest else replace(c, inputs_digest=inputs.get(c.check, ""))
            for c in facts.checks
        ),
    )


def _manifest() -> str:
    return _facts().manifest


def test_hand_made_facts_clear():
    decision = evaluate_gate(_facts(), NOW)
    assert decision.cleared
    assert decision.as_dict()["policy_version"] == 3
    assert decision.as_dict()["evaluated_at"] == "2026-11-26T10:00:00Z"


@pytest.mark.parametrize("order", [1, -1])
def test_results_stamped_the_same_instant_fail_closed_in_any_order(order):
    at = NOW - timedelta(minutes=5)
    results = (
        CheckFact("licenses", "passed", _manifest(), at),
        CheckFact("licenses", "failed", _manifest(), at),
    )[::order]
    decision = evaluate_gate(_facts(checks=results), NOW)
    assert [b.code for b in decision.blockers] == ["check_failed"]


def test_newest_result_for_the_current_manifest_wins():
    results = (
        CheckFact("licenses", "failed", _manifest(), NOW - timedelta(hours=2)),
        CheckFact("licenses", "passed", _manifest(), NOW - timedelta(hours=1)),
        CheckFact("licenses", "failed", "sha256:older-manifest", NOW),
    )
    assert evaluate_gate(_facts(checks=results), NOW).cleared


def test_unknown_check_status_fails_closed():
    results = (CheckFact("licenses", "skipped", _manifest(), NOW),)
    decision = evaluate_gate(_facts(checks=results), NOW)
    assert [(b.code, b.details["status"]) for b in decision.blockers] == [
        ("check_pending", "skipped")
    ]


def test_approval_in_a_role_the_policy_does_not_require_counts_for_nothing():
    approvals = (ApprovalFact(ERIN, "erin", "sme", _manifest(), NOW),)
    decision = evaluate_gate(_facts(approvals=approvals), NOW)
    assert [b.code for b in decision.blockers] == ["approval_missing"]


def test_requester_approval_is_ignored_and_reported_missing_not_stale():
    approvals = (ApprovalFact(REQUESTER, "alice", "security", _manifest(), NOW),)
    decision = evaluate_gate(_facts(approvals=approvals), NOW)
    assert [b.code for b in decision.blockers] == ["approval_missing"]


def test_a_fresh_approval_by_another_person_outweighs_a_stale_one():
    approvals = (
        ApprovalFact(SAM, "sam", "security", "sha256:old", NOW - timedelta(days=1)),
        ApprovalFact(4, "sid", "security", _manifest(), NOW),
    )
    assert evaluate_gate(_facts(approvals=approvals), NOW).cleared


def test_approval_exactly_at_the_maximum_age_still_counts():
    approvals = (ApprovalFact(SAM, "sam", "security", _manifest(), NOW - timedelta(days=14)),)
    assert evaluate_gate(_facts(approvals=approvals), NOW).cleared
    decision = evaluate_gate(_facts(approvals=approvals), NOW + timedelta(microseconds=1))
    assert [b.code for b in decision.blockers] == ["approval_expired"]
