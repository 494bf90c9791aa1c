"""Every blocker code of the gate, each produced by the situation that causes it."""

from datetime import date, timedelta

from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.checks.services import check_result_record
from releasegate.releases.models import Approval
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    policy_change,
    release_submit,
    release_withdraw,
    veto_cast,
)
from tests.builders import (
    DEFAULT_CHECKS,
    attach_all,
    document,
    make_release,
    pass_checks,
    submitted_release,
)
from tests.releases.gatehelpers import blockers, cleared_release, codes, decide, load


def test_cleared_release_has_no_blockers(personas):
    decision = decide(cleared_release(personas))
    assert decision.cleared
    assert decision.blockers == ()


def test_draft_release_is_not_submitted(personas):
    p = personas
    release = make_release(p.project, p.requester)
    attach_all(release, p.requester)
    pass_checks(release)
    decision = decide(release)
    assert not decision.cleared
    assert codes(decision)[0] == "not_submitted"
    assert "withdrawn" not in codes(decision)


def test_withdrawn_release_is_blocked_as_withdrawn(personas):
    p = personas
    release = cleared_release(p)
    assert decide(release).cleared
    release_withdraw(release=release, actor=p.actor("requester"), reason="wrong build")
    decision = decide(release)
    assert codes(decision) == ["withdrawn"]


def test_missing_evidence_is_named_per_item(personas):
    p = personas
    release = make_release(p.project, p.requester)
    for kind in ("pipeline_review", "data_flow_map", "monitoring_plan"):
        evidence_attach(
            release=release, actor=p.actor("requester"), kind=kind, document=document(kind)
        )
    release_submit(release=release, actor=p.actor("requester"))
    missing = blockers(decide(release), "evidence_missing")
    assert sorted(b["kind"] for b in missing) == ["agent_access_review", "sbom"]


def test_pipeline_review_dated_in_the_future_is_invalid(personas):
    release = cleared_release(personas)
    reviewed = date.fromisoformat(document("pipeline_review")["reviewed_at"])
    # Evaluated on the day before the review's date, the review lies in the future.
    the_day_before = timezone.now().replace(
        year=reviewed.year, month=reviewed.month, day=reviewed.day
    ) - timedelta(days=1)
    decision = decide(release, now=the_day_before)
    invalid = blockers(decision, "evidence_invalid")
    assert [b["kind"] for b in invalid] == ["pipeline_review"]
    assert "future" in invalid[0]["message"]


def _attach_review_dated(p, release, reviewed_at: date) -> None:
    review = document("pipeline_review")
    review["reviewed_at"] = reviewed_at.isoformat()
    evidence_attach(
        release=release, actor=p.actor("requester"), kind="pipeline_review", document=review
    )


def test_pipeline_review_older_than_policy_allows_is_invalid(personas):
    p = personas
    policy_change(project=p.project, actor=p.actor("admin"), changes={"max_review_age_days": 30})
    old = make_release(p.project, p.requester, version="1.0.0")
    attach_all(old, p.requester)
    _attach_review_dated(p, old, timezone.now().date() - timedelta(days=31))
    fresh = make_release(p.project, p.requester, version="1.0.1")
    attach_all(fresh, p.requester)
    _attach_review_dated(p, fresh, timezone.now().date() - timedelta(days=29))
    for release in (old, fresh):
        release_submit(release=release, actor=p.actor("requester"))
    invalid = blockers(decide(old), "evidence_invalid")
    assert [b["kind"] for b in invalid] == ["pipeline_review"]
    assert "older than 30 days" in invalid[0]["message"]
    assert blockers(decide(fresh), "evidence_invalid") == []


def test_check_without_any_result_is_pending(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    pending = blockers(decide(release), "check_pending")
    assert sorted(b["check"] for b in pending) == sorted(DEFAULT_CHECKS)
    assert {b["status"] for b in pending} == {"missing"}


def test_pending_and_running_checks_do_not_clear(personas):
    p = personas
    release = cleared_release(p)
    system = Actor.system_actor()
    check_result_record(release=release, actor=system, check="licenses", status="pending")
    check_result_record(release=release, actor=system, check="sbom_valid", status="running")
    # Worker rows update in place, so the running/pending status replaces the earlier pass.
    decision = decide(release)
    assert not decision.cleared
    assert {b["check"]: b["status"] for b in blockers(decision, "check_pending")} == {
        "licenses": "pending",
        "sbom_valid": "running",
    }


def test_check_passed_only_for_older_evidence_is_pending(personas):
    p = personas
    release = cleared_release(p)
    review = document("pipeline_review")
    review["reviewer"] = "Someone Else"
    evidence_attach(
        release=release, actor=p.actor("requester"), kind="pipeline_review", document=review
    )
    pending = blockers(decide(release), "check_pending")
    assert sorted(b["check"] for b in pending) == sorted(DEFAULT_CHECKS)


def test_failed_and_errored_checks_block(personas):
    p = personas
    release = cleared_release(p)
    system = Actor.system_actor()
    check_result_record(
        release=release, actor=system, check="vulnerabilities", status="failed", summary="CVE-1"
    )
    check_result_record(release=release, actor=system, check="licenses", status="error")
    failed = {b["check"]: b["status"] for b in blockers(decide(release), "check_failed")}
    assert failed == {"vulnerabilities": "failed", "licenses": "error"}


def test_missing_approvals_are_counted_per_role(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    pass_checks(release)
    approval_give(release=release, actor=p.actor("security"), role="security")
    decision = decide(release)
    assert codes(decision) == ["approval_missing"]
    assert blockers(decision, "approval_missing")[0] | {"message": ""} == {
        "code": "approval_missing",
        "role": "sme",
        "have": 0,
        "need": 1,
        "message": "",
    }


def test_approval_becomes_stale_when_evidence_is_replaced(personas):
    p = personas
    release = cleared_release(p)
    monitoring = document("monitoring_plan")
    monitoring["owner"] = "another team"
    evidence_attach(
        release=release, actor=p.actor("requester"), kind="monitoring_plan", document=monitoring
    )
    pass_checks(release)  # the checks pass again on the new evidence; the approvals do not carry
    decision = decide(release)
    assert sorted(b["role"] for b in blockers(decision, "approval_stale")) == ["security", "sme"]
    assert set(codes(decision)) == {"approval_stale"}


def test_approval_given_again_on_new_evidence_clears(personas):
    p = personas
    release = cleared_release(p)
    evidence_attach(
        release=release,
        actor=p.actor("requester"),
        kind="sbom",
        document=document("sbom") | {"version": 2},
    )
    pass_checks(release)
    approval_give(release=load(release), actor=p.actor("security"), role="security")
    approval_give(release=load(release), actor=p.actor("sme"), role="sme")
    assert decide(release).cleared


def test_approval_expires_after_the_policy_age(personas):
    release = cleared_release(personas)
    given = max(Approval.objects.filter(release=release).values_list("created_at", flat=True))
    assert decide(release, now=given + timedelta(days=13, hours=23)).cleared
    decision = decide(release, now=given + timedelta(days=14, seconds=1))
    assert sorted(b["role"] for b in blockers(decision, "approval_expired")) == ["security", "sme"]
    assert set(codes(decision)) == {"approval_expired"}


def test_approval_age_follows_the_policy(personas):
    p = personas
    release = cleared_release(p)
    Approval.objects.filter(release=release).update(created_at=timezone.now() - timedelta(days=3))
    assert decide(release).cleared
    policy_change(project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 2})
    assert set(codes(decide(release))) == {"approval_expired"}


def test_veto_blocks_with_vetoer_role_and_reason(personas):
    p = personas
    release = cleared_release(p)
    veto_cast(release=release, actor=p.actor("sme"), role="sme", reason="hallucinates refunds")
    decision = decide(release)
    assert codes(decision) == ["veto"]
    veto = blockers(decision, "veto")[0]
    assert (veto["role"], veto["by"], veto["reason"]) == ("sme", "sme", "hallucinates refunds")
    assert veto["since"].endswith("Z")


def test_every_failing_condition_is_reported_at_once(personas):
    p = personas
    release = make_release(p.project, p.requester)
    veto_cast(release=release, actor=p.actor("security"), role="security", reason="not yet")
    assert set(codes(decide(release))) == {
        "not_submitted",
        "veto",
        "evidence_missing",
        "check_pending",
        "approval_missing",
    }


def test_expired_approval_can_be_renewed_on_the_same_evidence(personas):
    p = personas
    release = cleared_release(p)
    Approval.objects.filter(release=release).update(created_at=timezone.now() - timedelta(days=15))
    assert set(codes(decide(release))) == {"approval_expired"}
    approval_give(release=load(release), actor=p.actor("security"), role="security")
    approval_give(release=load(release), actor=p.actor("sme"), role="sme")
    assert decide(release).cleared
