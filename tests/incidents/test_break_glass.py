"""Break-glass: two people, 30 minutes to confirm, a time box, never past a veto or a hold, and a
post-incident review that comes due. Time is passed in as `now`, never slept."""

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditEvent
from releasegate.errors import Conflict, InvalidInput, NotPermitted
from releasegate.incidents.models import BreakGlass
from releasegate.incidents.services import (
    break_glass_confirm,
    break_glass_request,
    break_glass_review,
)
from releasegate.notifications.services import notification_target_add
from releasegate.releases.models import Promotion, Release
from releasegate.releases.services import (
    approval_give,
    policy_change,
    release_promote,
    role_grant,
    veto_cast,
)
from tests.api.conftest import Caller, service_token
from tests.builders import pass_checks, submitted_release
from tests.conftest import Personas
from tests.incidents.conftest import post_alerts
from tests.incidents.payloads import alert, notification
from tests.notifications.test_notifications import eager_tasks  # noqa: F401  (fixture)
from tests.releases.gatehelpers import codes, decide, load


def _emergency_fix(p: Personas, version: str = "1.0.1") -> Release:
    """In review, every item attached, checks still running, no approvals yet."""
    return submitted_release(p.project, p.requester, version=version)


def _confirmed(p: Personas, release: Release, now: Any = None) -> BreakGlass:
    now = now or timezone.now()
    bg = break_glass_request(
        release=release,
        actor=p.actor("requester"),
        reason="prompt injection exfiltrates tickets; the fix filters tool output",
        incident="INC-2041",
        now=now,
    )
    return break_glass_confirm(
        break_glass=bg, actor=p.actor("security"), reason="fix reviewed on the call", now=now
    )


def test_a_confirmed_break_glass_clears_and_names_what_it_bypassed(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    before = decide(release)
    assert set(codes(before)) == {"check_pending", "approval_missing"}
    bg = _confirmed(p, release)
    decision = decide(release)
    assert decision.cleared and decision.blockers == ()
    answer = decision.as_dict()["break_glass"]
    assert answer["id"] == bg.pk
    assert (answer["requested_by"], answer["confirmed_by"]) == ("requester", "security")
    assert answer["until"] == bg.until.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    assert bg.until - bg.confirmed_at == timedelta(hours=4)  # type: ignore[operator]
    assert [b["code"] for b in answer["bypassed"]] == [b.code for b in before.blockers]
    assert [b["message"] for b in answer["bypassed"]] == [b.message for b in before.blockers]
    # CI sees the same over the API.
    ci = Caller("ci", token=service_token(p, "gate:read")[1])
    gate = ci.request("GET", f"/api/v1/releases/{release.pk}/gate").json()
    assert gate["cleared"] and gate["break_glass"]["confirmed_by"] == "security"


def test_a_promotion_during_break_glass_is_recorded_as_one(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    bg = _confirmed(p, release)
    promoted, decision = release_promote(release=load(release), actor=p.actor("requester"))
    assert promoted.state == "promoted"
    promotion = Promotion.objects.get(release=release)
    assert promotion.decision["break_glass"]["id"] == bg.pk
    event = AuditEvent.objects.get(action="promoted", release_id=release.pk)
    assert event.data["break_glass"]["id"] == bg.pk
    assert {b["code"] for b in event.data["break_glass"]["bypassed"]} == {
        "check_pending",
        "approval_missing",
    }
    # Judged when it was promoted: still cleared by the break-glass after the time box.
    later = decide(release, timezone.now() + timedelta(hours=5))
    assert later.cleared and later.break_glass is not None


def test_the_requester_cannot_confirm_their_own_break_glass(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    role_grant(project=p.project, user=p.requester, role="security", actor=p.actor("admin"))
    bg = break_glass_request(
        release=release, actor=p.actor("requester"), reason="outage", incident="INC-1"
    )
    with pytest.raises(NotPermitted):
        break_glass_confirm(break_glass=bg, actor=p.actor("requester"), reason="mine")
    assert not decide(release).cleared


def test_the_admin_who_opened_it_cannot_confirm_it_nor_can_the_release_requester(
    personas: Personas,
) -> None:
    p = personas
    release = _emergency_fix(p)
    role_grant(project=p.project, user=p.admin, role="security", actor=Actor.system_actor())
    role_grant(project=p.project, user=p.requester, role="security", actor=p.actor("admin"))
    bg = break_glass_request(release=release, actor=p.actor("admin"), reason="outage", incident="I")
    for who in ("admin", "requester", "sme"):
        with pytest.raises(NotPermitted):
            break_glass_confirm(break_glass=bg, actor=p.actor(who), reason="ok")
    assert not decide(release).cleared
    confirmed = break_glass_confirm(break_glass=bg, actor=p.actor("security"), reason="ok")
    assert confirmed.confirmed_by == p.security


def test_only_the_requester_or_a_project_admin_may_break_the_glass(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    body = {"reason": "outage", "incident": "INC-9"}
    path = f"/api/v1/releases/{release.pk}/break-glass"
    statuses = {
        name: Caller(name, user=getattr(p, name)).request("POST", path, body).status_code
        for name in ("security", "sme", "auditor", "outsider")
    }
    statuses["service token"] = (
        Caller("t", token=service_token(p, "releases:write", "releases:promote")[1])
        .request("POST", path, body)
        .status_code
    )
    assert statuses == {
        "security": 403,
        "sme": 403,
        "auditor": 403,
        "outsider": 404,
        "service token": 403,
    }
    assert not BreakGlass.objects.exists()
    assert Caller("r", user=p.requester).request("POST", path, body).status_code == 201
    # One open at a time.
    assert Caller("a", user=p.admin).request("POST", path, body).status_code == 409


def test_reason_and_incident_are_required(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    path = f"/api/v1/releases/{release.pk}/break-glass"
    caller = Caller("r", user=p.requester)
    missing = caller.request("POST", path, {"reason": "outage"})
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "incident"
    empty = caller.request("POST", path, {"reason": " ", "incident": "INC-1"})
    assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "reason"
    assert not BreakGlass.objects.exists()


def test_confirmation_must_come_within_30_minutes(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    asked = timezone.now()
    bg = break_glass_request(
        release=release, actor=p.actor("requester"), reason="outage", incident="I", now=asked
    )
    with pytest.raises(Conflict) as late:
        break_glass_confirm(
            break_glass=bg,
            actor=p.actor("security"),
            reason="ok",
            now=asked + timedelta(minutes=30),
        )
    assert late.value.code == "break_glass_lapsed"
    assert not decide(release).cleared
    # A lapsed request no longer counts as open: a new one may be made and confirmed in time.
    fresh = break_glass_request(
        release=release,
        actor=p.actor("requester"),
        reason="outage",
        incident="I",
        now=asked + timedelta(minutes=31),
    )
    confirmed = break_glass_confirm(
        break_glass=fresh,
        actor=p.actor("security"),
        reason="ok",
        now=asked + timedelta(minutes=60),
    )
    assert confirmed.confirmed_at is not None


def test_the_time_box_ends_the_bypass(personas: Personas) -> None:
    p = personas
    policy_change(project=p.project, actor=p.actor("admin"), changes={"break_glass_hours": 2})
    release = _emergency_fix(p)
    start = timezone.now()
    bg = _confirmed(p, release, start)
    assert bg.until == start + timedelta(hours=2)
    inside = decide(release, start + timedelta(hours=2) - timedelta(seconds=1))
    assert inside.cleared
    after = decide(release, start + timedelta(hours=2))
    assert not after.cleared and after.break_glass is None
    assert set(codes(after)) == {"check_pending", "approval_missing"}
    # Its hours spent (timestamps moved back through the ORM): promotion is refused again.
    BreakGlass.objects.filter(pk=bg.pk).update(
        confirmed_at=start - timedelta(hours=3), until=start - timedelta(hours=1)
    )
    with pytest.raises(Conflict):
        release_promote(release=load(release), actor=p.actor("requester"))


def test_a_veto_is_never_bypassed(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    _confirmed(p, release)
    veto_cast(release=release, actor=p.actor("sme"), role="sme", reason="the fix leaks PII too")
    decision = decide(release)
    assert not decision.cleared
    assert codes(decision) == ["veto"]
    assert decision.break_glass is not None
    assert {b.code for b in decision.break_glass.bypassed} == {"check_pending", "approval_missing"}
    with pytest.raises(Conflict):
        release_promote(release=load(release), actor=p.actor("requester"))


def test_a_hold_is_never_bypassed(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    _confirmed(p, release)
    release_promote(release=load(release), actor=p.actor("requester"))
    alertmanager = Caller("am", token=service_token(p, "alerts:write")[1])
    body = notification(alert("ToxicOutputRate", releasegate_digest=release.artifact_digest))
    assert post_alerts(alertmanager, body).status_code == 200
    decision = decide(release)
    assert not decision.cleared and codes(decision) == ["hold"]


def test_evidence_is_not_bypassed(personas: Personas) -> None:
    p = personas
    release = submitted_release(p.project, p.requester, version="1.0.1")
    from releasegate.releases.models import Evidence

    Evidence.objects.filter(release=release, kind="sbom").update(is_current=False)
    _confirmed(p, release)
    assert codes(decide(release)) == ["evidence_missing"]


def test_the_review_is_due_within_the_policy_days_then_blocks_every_new_release(
    personas: Personas,
) -> None:
    p = personas
    fix = _emergency_fix(p)
    start = timezone.now()
    bg = _confirmed(p, fix, start)
    assert bg.review_due == start + timedelta(days=7)
    release_promote(release=load(fix), actor=p.actor("requester"))
    nxt = submitted_release(p.project, p.requester, version="1.1.0")
    pass_checks(nxt)
    approval_give(release=nxt, actor=p.actor("security"), role="security")
    approval_give(release=nxt, actor=p.actor("sme"), role="sme")
    due = bg.review_due
    assert due is not None
    assert decide(nxt, due - timedelta(seconds=1)).cleared
    overdue = decide(nxt, due)
    assert codes(overdue) == ["review_overdue"]
    [blocker] = overdue.as_dict()["blockers"]
    assert blocker["break_glass_id"] == bg.pk and blocker["release_id"] == fix.pk
    # A release created later is blocked too; the promoted fix itself was judged already.
    later = submitted_release(p.project, p.requester, version="1.2.0")
    assert "review_overdue" in codes(decide(later, due + timedelta(days=1)))
    assert decide(fix, due + timedelta(days=1)).cleared
    # Filing the review clears it.
    with pytest.raises(NotPermitted):
        break_glass_review(break_glass=bg, actor=p.actor("requester"), summary="all good")
    with pytest.raises(InvalidInput):
        break_glass_review(break_glass=bg, actor=p.actor("security"), summary="")
    reviewed = break_glass_review(
        break_glass=bg,
        actor=p.actor("security"),
        summary="root cause: unfiltered tool output; follow-ups SEC-88, SEC-89",
        now=due + timedelta(days=1),
    )
    assert reviewed.reviewed_by == p.security
    assert decide(nxt, due + timedelta(days=1)).cleared
    event = AuditEvent.objects.get(action="break_glass_reviewed")
    assert event.data["was_overdue"] is True
    with pytest.raises(Conflict):
        break_glass_review(break_glass=bg, actor=p.actor("security"), summary="again")


def test_an_unconfirmed_request_has_no_review_and_blocks_nothing(personas: Personas) -> None:
    p = personas
    fix = _emergency_fix(p)
    bg = break_glass_request(release=fix, actor=p.actor("requester"), reason="x", incident="I")
    with pytest.raises(Conflict):
        break_glass_review(break_glass=bg, actor=p.actor("security"), summary="nothing")
    assert "review_overdue" not in codes(decide(fix, timezone.now() + timedelta(days=30)))


def test_every_step_is_audited_and_told_over_the_api(personas: Personas) -> None:
    p = personas
    release = _emergency_fix(p)
    base = f"/api/v1/releases/{release.pk}/break-glass"
    opened = Caller("alice", user=p.requester).request(
        "POST", base, {"reason": "outage", "incident": "INC-7"}
    )
    assert opened.status_code == 201, opened.json()
    bg_id = opened.json()["id"]
    assert opened.json()["state"] == "pending"
    sam = Caller("sam", user=p.security)
    confirmed = sam.request("POST", f"{base}/{bg_id}/confirm", {"reason": "seen the diff"})
    assert confirmed.status_code == 200 and confirmed.json()["state"] == "active"
    twice = sam.request("POST", f"{base}/{bg_id}/confirm", {"reason": "again"})
    assert twice.status_code == 409
    reviewed = sam.request("POST", f"{base}/{bg_id}/review", {"summary": "done"})
    assert reviewed.status_code == 200 and reviewed.json()["reviewed_by"] == "security"
    assert sam.request("POST", f"{base}/999999/confirm", {"reason": "x"}).status_code == 404
    outsider = Caller("o", user=p.outsider)
    assert outsider.request("POST", f"{base}/{bg_id}/review", {"summary": "x"}).status_code == 404
    actions = list(
        AuditEvent.objects.filter(release_id=release.pk, action__startswith="break_glass")
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions == ["break_glass_requested", "break_glass_confirmed", "break_glass_reviewed"]


def test_each_break_glass_step_is_told_to_the_project(
    personas: Personas,
    eager_tasks: None,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    p = personas
    notification_target_add(
        project=p.project,
        actor=p.actor("admin"),
        kind="email",
        address="support-ai-oncall@example.com",
        events=["break_glass_requested", "break_glass_confirmed", "break_glass_reviewed"],
    )
    release = _emergency_fix(p)
    with django_capture_on_commit_callbacks(execute=True):
        bg = break_glass_request(
            release=release, actor=p.actor("requester"), reason="outage", incident="INC-5"
        )
    with django_capture_on_commit_callbacks(execute=True):
        break_glass_confirm(break_glass=bg, actor=p.actor("security"), reason="seen")
    with django_capture_on_commit_callbacks(execute=True):
        break_glass_review(break_glass=bg, actor=p.actor("security"), summary="done")
    subjects = [m.subject for m in mail.outbox]
    assert len(subjects) == 3
    assert "requester asks to break the glass (INC-5)" in subjects[0]
    assert "confirmed by security, in force until" in subjects[1]
    assert "review of break-glass (INC-5) was filed by security" in subjects[2]
