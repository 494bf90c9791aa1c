"""Property test of issue 10, item 1: a check result counts only for the inputs it was computed
from. Over generated facts (a release otherwise cleared, its checks passed on the inputs current
then) and generated changes of the policy, the advisory set, the waivers and the evidence, the
very next answer is blocked exactly when a required check reads what changed, and a result
recomputed on the new inputs clears it again."""

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
    evaluate_gate,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
CHECKS = ("sbom_valid", "vulnerabilities", "licenses", "external_ci", "data_flow")
# Which checks read which input besides the evidence (which every check reads).
READS = {
    "license_denylist": {"licenses"},
    "vulnerability_threshold": {"vulnerabilities"},
    "external_ci": {"external_ci"},
    "advisory_generation": {"vulnerabilities"},
    "waiver_generation": {"vulnerabilities"},
    "evidence": set(CHECKS),
}
RELEASE = ReleaseFacts(
    id=7,
    project_id=1,
    project_slug="p",
    version="1",
    artifact_digest="sha256:" + "a" * 64,
    environment="production",
    state="in_review",
    requester_id=1,
)


@st.composite
def passed_facts(draw) -> GateFacts:
    """A release that is cleared: evidence, approvals, and every required check passed on the
    inputs current when it ran."""
    policy = PolicyFacts(
        version=1,
        required_items=("sbom",),
        required_checks=tuple(draw(st.lists(st.sampled_from(CHECKS), unique=True, min_size=1))),
        required_approvals={"security": 1},
        max_approval_age=timedelta(days=14),
        max_review_age=timedelta(days=180),
        vulnerability_threshold=draw(st.sampled_from(["low", "medium", "high", "critical"])),
        license_denylist=tuple(draw(st.lists(st.sampled_from(["AGPL-3.0-only", "SSPL-1.0"])))),
        external_ci=draw(st.sampled_from([{}, {"url": "https://ci.example.com/a"}])),
    )
    facts = GateFacts(
        release=RELEASE,
        policy=policy,
        evidence=(EvidenceFact("sbom", "sha256:" + "b" * 64),),
        advisory_generation=draw(st.integers(min_value=0, max_value=5)),
        waiver_generation=draw(st.integers(min_value=0, max_value=5)),
    )
    manifest = facts.manifest
    facts = replace(
        facts,
        approvals=(ApprovalFact(2, "sam", "security", manifest, NOW - timedelta(hours=1)),),
    )
    return recomputed(facts)


def recomputed(facts: GateFacts) -> GateFacts:
    """What the workers do: a passed result for every required check, on the current inputs."""
    manifest = facts.manifest
    inputs = facts.check_inputs
    newer = tuple(
        CheckFact(check, "passed", manifest, NOW - timedelta(minutes=1), inputs_digest=digest)
        for check, digest in inputs.items()
    )
    return replace(facts, checks=facts.checks + newer)


def changed(facts: GateFacts, what: str, data: st.DataObject) -> GateFacts:
    policy = facts.policy
    match what:
        case "license_denylist":
            extra = data.draw(st.sampled_from(["Apache-2.0", "MIT", "GPL-3.0-only"]))
            return replace(
                facts, policy=replace(policy, license_denylist=(*policy.license_denylist, extra))
            )
        case "vulnerability_threshold":
            severities = ("low", "medium", "high", "critical")
            other = data.draw(
                st.sampled_from([t for t in severities if t != policy.vulnerability_threshold])
            )
            return replace(facts, policy=replace(policy, vulnerability_threshold=other))
        case "external_ci":
            url = data.draw(st.sampled_from(["https://ci.example.com/b", "https://other.test/c"]))
            return replace(facts, policy=replace(policy, external_ci={"url": url}))
        case "advisory_generation":
            return replace(facts, advisory_generation=facts.advisory_generation + 1)
        case "waiver_generation":
            return replace(facts, waiver_generation=facts.waiver_generation + 1)
        case "evidence":
            digest = "sha256:" + data.draw(st.sampled_from("cdef")) * 64
            fresh = replace(facts, evidence=(EvidenceFact("sbom", digest),))
            # The approval is re-given on the new evidence: only the checks are in question.
            approval = replace(facts.approvals[0], manifest_digest=fresh.manifest)
            return replace(fresh, approvals=(approval,))
    raise AssertionError(what)


def pending_checks(facts: GateFacts) -> set[str]:
    decision = evaluate_gate(facts, NOW)
    return {b.details["check"] for b in decision.blockers if b.code == "check_pending"}


@settings(max_examples=200, deadline=None)
@given(passed_facts(), st.sampled_from(sorted(READS)), st.data())
def test_a_change_of_any_input_is_seen_by_the_next_answer(facts, what, data):
    assert evaluate_gate(facts, NOW).cleared
    after = changed(facts, what, data)
    expected = READS[what] & set(facts.policy.required_checks)
    assert pending_checks(after) == expected
    assert evaluate_gate(after, NOW).cleared == (not expected)
    # The workers recompute on the new inputs: cleared again.
    assert evaluate_gate(recomputed(after), NOW).cleared


@settings(max_examples=200, deadline=None)
@given(
    passed_facts(),
    st.lists(st.sampled_from(["evidence", "vulnerability_threshold"]), min_size=1, max_size=2),
    st.data(),
)
def test_going_back_to_earlier_inputs_does_not_resurrect_a_pass_from_before_an_advisory(
    facts, detour, data
):
    """Hole 2 in general: the evidence or threshold moves, a new advisory set comes in and the
    workers recompute, then the evidence and policy go back to what they were: the results of
    back then were computed on the old advisory set and do not count."""
    moved = facts
    for what in detour:
        moved = recomputed(changed(moved, what, data))
    # A detour that ends where it began is no detour: the workers computed on those very inputs.
    assume((moved.policy, moved.evidence) != (facts.policy, facts.evidence))
    moved = recomputed(changed(moved, "advisory_generation", data))
    back = replace(moved, policy=facts.policy, evidence=facts.evidence, approvals=facts.approvals)
    expected = {"vulnerabilities"} & set(facts.policy.required_checks)
    assert pending_checks(back) == expected
    assert evaluate_gate(back, NOW).cleared == (not expected)


@settings(max_examples=100, deadline=None)
@given(passed_facts(), st.sampled_from(sorted(READS)), st.data())
def test_a_promoted_release_keeps_what_it_was_judged_on(facts, what, data):
    promoted = replace(
        facts, release=replace(RELEASE, state="promoted", promoted_at=NOW - timedelta(minutes=1))
    )
    if what == "evidence":
        return  # evidence is frozen after promotion
    assert evaluate_gate(changed(promoted, what, data), NOW).cleared
