"""Properties of the pure gate over generated facts: it fails closed and never errs towards cleared.

Taking away a fact that clearance needs (an approval, a piece of evidence) or adding one that
blocks (a veto, a newer result that did not pass) never turns a blocked release into a cleared one.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from releasegate.releases.gate import (
    ApprovalFact,
    CheckFact,
    EvidenceFact,
    GateFacts,
    PolicyFacts,
    ReleaseFacts,
    VetoFact,
    evaluate_gate,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
KINDS = ("pipeline_review", "data_flow_map", "sbom")
CHECKS = ("licenses", "least_privilege")
ROLES = ("security", "sme")
STATUSES = ("passed", "failed", "error", "pending", "running")
REQUESTER = 1

RELEASE = ReleaseFacts(
    id=7,
    project_id=1,
    project_slug="p",
    version="1",
    artifact_digest="sha256:" + "a" * 64,
    environment="production",
    state="in_review",
    requester_id=REQUESTER,
)
POLICY = PolicyFacts(
    version=1,
    required_items=KINDS,
    required_checks=CHECKS,
    required_approvals={"security": 1, "sme": 1},
    max_approval_age=timedelta(days=14),
    max_review_age=timedelta(days=180),
)


@st.composite
def gate_facts(draw) -> GateFacts:
    kinds = draw(st.lists(st.sampled_from(KINDS), unique=True))
    evidence = tuple(
        EvidenceFact(
            kind,
            f"sha256:{kind}",
            reviewed_at=draw(st.sampled_from(["2026-11-20", "2025-01-01", "2027-01-01", None]))
            if kind == "pipeline_review"
            else None,
        )
        for kind in kinds
    )
    base = GateFacts(release=RELEASE, policy=POLICY, evidence=evidence)
    manifest = base.manifest
    manifests = st.sampled_from([manifest, manifest, "sha256:old"])
    ages = st.integers(min_value=0, max_value=20).map(lambda d: NOW - timedelta(days=d))
    approvals = draw(
        st.lists(
            st.builds(
                ApprovalFact,
                user_id=st.integers(min_value=1, max_value=5),
                username=st.just("u"),
                role=st.sampled_from(ROLES),
                manifest_digest=manifests,
                created_at=ages,
            ),
            max_size=6,
        )
    )
    checks = draw(
        st.lists(
            st.builds(
                CheckFact,
                check=st.sampled_from(CHECKS),
                status=st.sampled_from(STATUSES),
                manifest_digest=manifests,
                updated_at=ages,
            ),
            max_size=6,
        )
    )
    state = draw(st.sampled_from(["in_review", "in_review", "draft", "withdrawn"]))
    return replace(
        base,
        release=replace(RELEASE, state=state),
        approvals=tuple(approvals),
        checks=tuple(checks),
        vetoes=(),
    )


def _veto() -> VetoFact:
    return VetoFact(1, RELEASE.id, RELEASE.project_id, "security", "sam", "no", NOW, "release")


@settings(max_examples=100, deadline=None)
@given(gate_facts())
def test_cleared_exactly_when_there_is_no_blocker(facts):
    decision = evaluate_gate(facts, NOW)
    assert decision.cleared == (decision.blockers == ())
    assert all(b.code for b in decision.blockers)


@settings(max_examples=100, deadline=None)
@given(gate_facts())
def test_an_active_veto_always_blocks(facts):
    decision = evaluate_gate(replace(facts, vetoes=(_veto(),)), NOW)
    assert not decision.cleared
    assert "veto" in [b.code for b in decision.blockers]


@settings(max_examples=100, deadline=None)
@given(gate_facts(), st.data())
def test_taking_away_an_approval_or_evidence_never_clears(facts, data):
    # A person counts for the first role they approved in; the services never let one person
    # approve in two roles, so a person's approvals here stay in one role.
    assume(
        len({(a.user_id, a.role) for a in facts.approvals})
        == len({a.user_id for a in facts.approvals})
    )
    if evaluate_gate(facts, NOW).cleared:
        return
    if facts.approvals:
        drop = data.draw(st.integers(min_value=0, max_value=len(facts.approvals) - 1))
        fewer = facts.approvals[:drop] + facts.approvals[drop + 1 :]
        assert not evaluate_gate(replace(facts, approvals=fewer), NOW).cleared
    if facts.evidence:
        assert not evaluate_gate(replace(facts, evidence=facts.evidence[1:]), NOW).cleared


@settings(max_examples=100, deadline=None)
@given(gate_facts(), st.sampled_from(CHECKS), st.sampled_from(["failed", "error", "pending"]))
def test_a_newest_result_that_is_not_passed_always_blocks(facts, check, status):
    newest = CheckFact(check, status, facts.manifest, NOW + timedelta(seconds=1))
    decision = evaluate_gate(replace(facts, checks=(*facts.checks, newest)), NOW)
    assert not decision.cleared


@settings(max_examples=100, deadline=None)
@given(gate_facts())
def test_approvals_by_the_requester_never_count(facts):
    by_requester = tuple(replace(a, user_id=REQUESTER) for a in facts.approvals)
    decision = evaluate_gate(replace(facts, approvals=by_requester), NOW)
    assert not decision.cleared
