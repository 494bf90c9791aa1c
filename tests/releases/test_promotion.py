"""Promotion: only a cleared release, once, and its evidence frozen afterwards."""

import pytest

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditEvent
from releasegate.checks.services import check_result_record
from releasegate.errors import Conflict
from releasegate.releases.models import Evidence, Promotion, Release
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    release_promote,
    release_submit,
    release_withdraw,
    veto_cast,
)
from tests.builders import document, make_release, pass_checks, submitted_release
from tests.releases.gatehelpers import cleared_release, codes, decide, load, snapshot


def test_cleared_release_is_promoted_with_its_decision_recorded(personas):
    p = personas
    release = cleared_release(p)
    promoted, decision = release_promote(release=release, actor=p.actor("requester"))
    assert promoted.state == Release.State.PROMOTED
    promotion = Promotion.objects.get(release=release)
    assert promotion.promoted_by == p.requester
    assert promotion.manifest_digest == release.manifest_digest == decision.manifest_digest
    assert promotion.policy_version == 1
    assert promotion.decision["cleared"] is True
    assert AuditEvent.objects.latest("id").action == "promoted"


def test_blocked_release_is_not_promoted_and_the_blockers_are_returned(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    pass_checks(release)
    approval_give(release=release, actor=p.actor("security"), role="security")
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        release_promote(release=release, actor=p.actor("requester"))
    assert refused.value.status == 409
    assert refused.value.code == "blocked"
    assert [(b["code"], b["role"]) for b in refused.value.extra["blockers"]] == [
        ("approval_missing", "sme")
    ]
    assert snapshot() == before


@pytest.mark.parametrize("state", ["draft", "withdrawn"])
def test_release_outside_review_cannot_be_promoted(personas, state):
    p = personas
    release = make_release(p.project, p.requester)
    if state == "withdrawn":
        release_withdraw(release=release, actor=p.actor("requester"), reason="superseded")
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        release_promote(release=release, actor=p.actor("requester"))
    assert refused.value.extra["blockers"][0]["code"] == (
        "not_submitted" if state == "draft" else "withdrawn"
    )
    assert snapshot() == before


def test_a_release_is_promoted_once(personas):
    p = personas
    release = cleared_release(p)
    release_promote(release=release, actor=p.actor("requester"))
    before = snapshot()
    with pytest.raises(Conflict) as again:
        release_promote(release=load(release), actor=p.actor("requester"))
    assert again.value.code == "already_promoted"
    assert snapshot() == before
    assert Promotion.objects.filter(release=release).count() == 1


def test_evidence_is_frozen_after_promotion(personas):
    p = personas
    release = cleared_release(p)
    release_promote(release=release, actor=p.actor("requester"))
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        evidence_attach(
            release=load(release),
            actor=p.actor("requester"),
            kind="sbom",
            document=document("sbom") | {"version": 7},
        )
    assert refused.value.status == 409
    assert refused.value.code == "not_editable"
    assert snapshot() == before


def test_promoted_release_stays_cleared_as_time_passes(personas):
    from datetime import timedelta

    from django.utils import timezone

    p = personas
    release = cleared_release(p)
    release_promote(release=release, actor=p.actor("requester"))
    # It was judged when promoted; only a veto can stop it now, not approvals ageing.
    assert decide(release, now=timezone.now() + timedelta(days=60)).cleared


def test_promoted_release_cannot_be_approved_or_withdrawn(personas):
    p = personas
    release = cleared_release(p)
    release_promote(release=release, actor=p.actor("requester"))
    before = snapshot()
    with pytest.raises(Conflict):
        approval_give(release=load(release), actor=p.actor("security"), role="security")
    with pytest.raises(Conflict):
        release_withdraw(release=load(release), actor=p.actor("requester"), reason="oops")
    with pytest.raises(Conflict):
        release_submit(release=load(release), actor=p.actor("requester"))
    assert snapshot() == before


def test_replacing_evidence_keeps_the_history(personas):
    p = personas
    release = make_release(p.project, p.requester)
    actor = p.actor("requester")
    first = evidence_attach(release=release, actor=actor, kind="sbom", document=document("sbom"))
    second = evidence_attach(
        release=release, actor=actor, kind="sbom", document=document("sbom") | {"version": 2}
    )
    rows = list(Evidence.objects.filter(release=release, kind="sbom").order_by("pk"))
    assert [(e.pk, e.is_current) for e in rows] == [(first.pk, False), (second.pk, True)]
    assert rows[0].digest != rows[1].digest
    assert rows[0].document == document("sbom")
    assert AuditEvent.objects.latest("id").data["replaced"] == first.digest


def test_replacing_evidence_changes_the_manifest(personas):
    p = personas
    release = cleared_release(p)
    old_manifest = release.manifest_digest
    evidence_attach(
        release=release,
        actor=p.actor("requester"),
        kind="agent_access_review",
        document=document("agent_access_review") | {"reviewed_by": "someone"},
    )
    assert load(release).manifest_digest != old_manifest
    assert not decide(release).cleared


def test_the_same_document_again_keeps_the_manifest(personas):
    p = personas
    release = cleared_release(p)
    evidence_attach(
        release=release, actor=p.actor("requester"), kind="sbom", document=document("sbom")
    )
    assert load(release).manifest_digest == release.manifest_digest
    assert decide(release).cleared


def test_a_newer_failed_result_overrides_an_earlier_pass(personas):
    p = personas
    release = cleared_release(p)
    check_result_record(
        release=release,
        actor=Actor.system_actor(),
        check="least_privilege",
        status="failed",
        summary="crm-mcp has auth none",
    )
    assert codes(decide(release)) == ["check_failed"]
    with pytest.raises(Conflict):
        release_promote(release=load(release), actor=p.actor("requester"))


def test_veto_between_clearance_and_promotion_stops_it(personas):
    p = personas
    release = cleared_release(p)
    assert decide(release).cleared
    veto_cast(release=release, actor=p.actor("security"), role="security", reason="late finding")
    with pytest.raises(Conflict) as refused:
        release_promote(release=release, actor=p.actor("requester"))
    assert [b["code"] for b in refused.value.extra["blockers"]] == ["veto"]
    assert load(release).state == "in_review"
