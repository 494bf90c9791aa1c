"""Alert intake: Alertmanager notifications (payload version 4) hold promoted releases."""

import copy
from typing import Any

import pytest

from releasegate.audit.models import AuditEvent
from releasegate.incidents.models import Hold
from releasegate.releases.models import Release
from releasegate.releases.services import policy_change
from tests.api.conftest import Caller, personal_token, service_token
from tests.builders import submitted_release
from tests.conftest import Personas, make_personas
from tests.incidents.conftest import post_alerts, promote
from tests.incidents.payloads import alert, notification
from tests.releases.gatehelpers import blockers, decide


def _state() -> tuple[int, int, list[tuple[Any, ...]]]:
    return (
        Hold.objects.count(),
        AuditEvent.objects.count(),
        list(Hold.objects.values_list("id", "alert_status", "resolved_at", "lifted_at")),
    )


def test_a_grouped_notification_holds_the_release_its_critical_alerts_name(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    body = notification(
        alert(
            "ToxicOutputRate",
            releasegate_digest=promoted.artifact_digest,
            environment="production",
            signal="toxic output rate",
            pod="support-assistant-7d9f-abcde",
            summary="Toxic output rate 1.2% over 10 minutes",
        ),
        alert(
            "PIIInResponses",
            releasegate_version=promoted.version,
            environment="production",
            pod="support-assistant-7d9f-fghij",
        ),
        alert("LatencyHigh", severity="warning", releasegate_digest=promoted.artifact_digest),
        group_by=("namespace",),
    )
    answer = post_alerts(alertmanager, body)
    assert answer.status_code == 200, answer.json()
    held = {h["alert"]: h for h in answer.json()["holds"]}
    assert set(held) == {"ToxicOutputRate", "PIIInResponses"}
    assert held["ToxicOutputRate"]["signal"] == "toxic output rate"
    # The alert name matches the plan's "PII in responses" without case or spaces.
    assert held["PIIInResponses"]["signal"] == "PII in responses"
    assert {h["outcome"] for h in held.values()} == {"placed"}
    [ignored] = answer.json()["unmatched"]
    assert ignored["alert"] == "LatencyHigh" and "severity warning" in ignored["reason"]

    decision = decide(promoted)
    assert not decision.cleared
    found = {b["alert"]: b for b in blockers(decision, "hold")}
    toxic = found["ToxicOutputRate"]
    assert toxic["hold_id"] == held["ToxicOutputRate"]["hold_id"]
    assert toxic["summary"] == "Toxic output rate 1.2% over 10 minutes"
    assert toxic["signal"] == "toxic output rate"
    assert toxic["since"] == "2026-12-01T09:58:30.123456Z"
    # The gate over the API says the same to CI.
    ci = Caller("ci", token=service_token(personas, "gate:read")[1])
    gate = ci.request("GET", f"/api/v1/releases/{promoted.pk}/gate").json()
    assert not gate["cleared"]
    assert {b["code"] for b in gate["blockers"]} == {"hold"}
    placed = AuditEvent.objects.filter(action="hold_placed", release_id=promoted.pk)
    assert placed.count() == 2
    assert placed.first().actor == "token:ci"  # type: ignore[union-attr]


def test_an_alert_naming_no_signal_of_the_plan_says_so(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    body = notification(alert("CostSpike", releasegate_digest=promoted.artifact_digest))
    [hold] = post_alerts(alertmanager, body).json()["holds"]
    assert hold["signal"] == "no signal of the plan"
    [blocker] = blockers(decide(promoted), "hold")
    assert blocker["signal"] is None
    assert "no signal of the plan" in blocker["message"]


def test_the_same_alert_again_never_stacks_holds(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    body = notification(alert("ToxicOutputRate", releasegate_digest=promoted.artifact_digest))
    first = post_alerts(alertmanager, body)
    # The repeat_interval resend, and the same notification from a second HA replica.
    again = post_alerts(alertmanager, body)
    replica = post_alerts(alertmanager, body)
    assert first.status_code == again.status_code == replica.status_code == 200
    assert [h["outcome"] for h in again.json()["holds"]] == ["unchanged"]
    assert Hold.objects.filter(release=promoted).count() == 1
    assert len(blockers(decide(promoted), "hold")) == 1
    assert AuditEvent.objects.filter(action="hold_placed").count() == 1


def test_a_resolved_alert_is_noted_on_its_hold_but_never_lifts_it(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    firing = alert("ToxicOutputRate", seed="toxic", releasegate_digest=promoted.artifact_digest)
    other = alert("PIILeak", seed="pii", releasegate_digest=promoted.artifact_digest)
    post_alerts(alertmanager, notification(firing, other))
    resolved = dict(firing, status="resolved", endsAt="2026-12-01T10:20:00.5Z")
    # Grouped: one resolved, the other still firing.
    answer = post_alerts(alertmanager, notification(resolved, other))
    assert answer.status_code == 200
    outcomes = {h["alert"]: h["outcome"] for h in answer.json()["holds"]}
    assert outcomes == {"ToxicOutputRate": "resolved_noted", "PIILeak": "unchanged"}
    hold = Hold.objects.get(alert_name="ToxicOutputRate")
    assert hold.alert_status == "resolved" and hold.is_active
    assert hold.resolved_at is not None and hold.resolved_at.isoformat().startswith(
        "2026-12-01T10:20:00.5"
    )
    decision = decide(promoted)
    assert not decision.cleared
    toxic = next(b for b in blockers(decision, "hold") if b["alert"] == "ToxicOutputRate")
    assert toxic["alert_status"] == "resolved" and "resolved at" in toxic["message"]
    assert AuditEvent.objects.filter(action="hold_alert_resolved").count() == 1


def test_alerts_that_match_no_promoted_release_are_202_and_change_nothing(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    in_review = submitted_release(personas.project, personas.requester, version="2.0.0")
    elsewhere = make_personas(slug="elsewhere", prefix="x-")
    foreign = promote(elsewhere)
    before = _state()
    body = notification(
        alert("NodeDown"),  # no release label at all
        alert("ToxicOutputRate", releasegate_digest=in_review.artifact_digest),
        alert("ToxicOutputRate", releasegate_digest=foreign.artifact_digest),
        alert("ToxicOutputRate", releasegate_version=promoted.version),  # no environment
        alert("ToxicOutputRate", releasegate_version=promoted.version, environment="staging"),
        alert("ToxicOutputRate", releasegate_digest=promoted.artifact_digest.upper()),
        alert(
            "ToxicOutputRate",
            status="resolved",
            seed="never held",
            releasegate_digest=promoted.artifact_digest,
        ),
    )
    answer = post_alerts(alertmanager, body)
    assert answer.status_code == 202
    assert answer.json()["holds"] == []
    reasons = [u["reason"] for u in answer.json()["unmatched"]]
    assert len(reasons) == 7
    assert reasons[0].startswith("no label names a release")
    assert "no promoted release of support-assistant" in reasons[1]
    assert "no promoted release" in reasons[2]  # another project's release is never found
    assert reasons[3].startswith("no label names a release")
    assert "lower-case hex" in reasons[5]
    assert "resolved" in reasons[6]
    assert _state() == before
    assert decide(promoted).cleared and decide(foreign).cleared


def test_a_severity_the_policy_does_not_hold_on_is_ignored_until_the_policy_says_so(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    warning = notification(
        alert("DriftHigh", severity="warning", releasegate_digest=promoted.artifact_digest),
        alert("DriftUnknown", severity=None, releasegate_digest=promoted.artifact_digest),
    )
    before = _state()
    answer = post_alerts(alertmanager, warning)
    assert answer.status_code == 202
    assert [u["reason"] for u in answer.json()["unmatched"]] == [
        "severity warning is not one this project holds on (critical)",
        "severity (none) is not one this project holds on (critical)",
    ]
    assert _state() == before
    policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={"hold_severities": ["critical", "warning"]},
    )
    answer = post_alerts(alertmanager, warning)
    assert answer.status_code == 200
    assert [h["alert"] for h in answer.json()["holds"]] == ["DriftHigh"]


def test_hold_severities_are_validated_in_the_policy(personas: Personas) -> None:
    from releasegate.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        policy_change(
            project=personas.project,
            actor=personas.actor("admin"),
            changes={"hold_severities": ["critical", "no spaces"], "break_glass_hours": 0},
        )
    assert {e.field for e in refused.value.errors} == {"hold_severities", "break_glass_hours"}
    policy = personas.project.current_policy
    assert policy is not None
    assert (policy.hold_severities, policy.break_glass_hours, policy.break_glass_review_days) == (
        ["critical"],
        4,
        7,
    )


def test_callers_without_alerts_write_on_the_project_get_nothing(
    personas: Personas, promoted: Release
) -> None:
    body = notification(alert("ToxicOutputRate", releasegate_digest=promoted.artifact_digest))
    elsewhere = make_personas(slug="elsewhere", prefix="x-")
    others = service_token(elsewhere, "alerts:write", project=elsewhere.project)[1]
    statuses = {
        "no token": post_alerts(Caller("none"), body).status_code,
        "forged": post_alerts(Caller("f", token="rgs_forged_0000000000"), body).status_code,
        "gate:read": post_alerts(
            Caller("g", token=service_token(personas, "gate:read")[1]), body
        ).status_code,
        "other project's token": post_alerts(Caller("o", token=others), body).status_code,
        "outsider": post_alerts(
            Caller("p", token=personal_token(personas.outsider)), body
        ).status_code,
        "security person": post_alerts(Caller("s", user=personas.security), body).status_code,
        "unknown project": post_alerts(
            Caller("u", token=service_token(personas, "alerts:write")[1]), body, slug="nope"
        ).status_code,
    }
    assert statuses == {
        "no token": 401,
        "forged": 401,
        "gate:read": 403,
        "other project's token": 404,
        "outsider": 404,
        "security person": 403,
        "unknown project": 404,
    }
    assert not Hold.objects.exists()


def _broken(mutate: Any, digest: str) -> dict[str, Any]:
    body = notification(
        alert("ToxicOutputRate", releasegate_digest=digest),
        alert("PIILeak", releasegate_digest=digest),
    )
    mutate(body)
    return body


MALFORMED = [
    (lambda b: b.update(version="3"), "version"),
    (lambda b: b.pop("groupKey"), "groupKey"),
    (lambda b: b.update(status="pending"), "status"),
    (lambda b: b.update(truncatedAlerts=-1), "truncatedAlerts"),
    (lambda b: b.update(commonLabels=["severity"]), "commonLabels"),
    (lambda b: b.pop("alerts"), "alerts"),
    (lambda b: b["alerts"].append("firing"), "alerts[2]"),
    (lambda b: b["alerts"][1]["labels"].update(severity=5), "alerts[1].labels.severity"),
    (lambda b: b["alerts"][0]["labels"].pop("alertname"), "alerts[0].labels.alertname"),
    (lambda b: b["alerts"][1].update(startsAt="yesterday"), "alerts[1].startsAt"),
    (lambda b: b["alerts"][1].update(startsAt="2026-12-01T10:00:00"), "alerts[1].startsAt"),
    (lambda b: b["alerts"][0].update(endsAt=None), "alerts[0].endsAt"),
    (lambda b: b["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint"),
    (lambda b: b["alerts"][0].update(fingerprint="../../etc"), "alerts[0].fingerprint"),
    (lambda b: b["alerts"][0].update(status="silenced"), "alerts[0].status"),
    (lambda b: b["alerts"][0].update(annotations={"summary": ["a"]}), "alerts[0].annotations"),
]


@pytest.mark.parametrize(("mutate", "field"), MALFORMED)
def test_a_malformed_notification_is_400_naming_the_field_and_changes_nothing(
    personas: Personas, promoted: Release, alertmanager: Caller, mutate: Any, field: str
) -> None:
    body = _broken(mutate, promoted.artifact_digest)
    before = _state()
    answer = post_alerts(alertmanager, body)
    assert answer.status_code == 400, answer.json()
    assert answer.json()["code"] == "invalid_alert_payload"
    assert any(e["field"].startswith(field) for e in answer.json()["errors"]), answer.json()
    assert _state() == before


def test_a_body_that_is_not_an_object_is_400(alertmanager: Caller) -> None:
    answer = post_alerts(alertmanager, [notification()])
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "(document)"


def test_a_lifted_hold_is_not_placed_again_by_a_resend_but_a_new_firing_holds(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    firing = alert("ToxicOutputRate", seed="toxic", releasegate_digest=promoted.artifact_digest)
    [hold] = post_alerts(alertmanager, notification(firing)).json()["holds"]
    sam = Caller("sam", user=personas.security)
    lifted = sam.request(
        "POST",
        f"/api/v1/releases/{promoted.pk}/holds/{hold['hold_id']}/lift",
        {"reason": "false positive: the toxicity classifier was mis-deployed"},
    )
    assert lifted.status_code == 200, lifted.json()
    assert decide(promoted).cleared
    resend = post_alerts(alertmanager, notification(firing))
    assert [h["outcome"] for h in resend.json()["holds"]] == ["lifted_already"]
    assert decide(promoted).cleared
    refired = copy.deepcopy(firing)
    refired["startsAt"] = "2026-12-01T14:02:00.000000001Z"
    again = post_alerts(alertmanager, notification(refired))
    assert [h["outcome"] for h in again.json()["holds"]] == ["placed"]
    assert not decide(promoted).cleared


def test_a_hold_revokes_the_release_attestations_and_a_repeat_revokes_nothing_more(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    from releasegate.attestations.models import Revocation

    reader = Caller("ci", token=service_token(personas, "attestations:read")[1])
    for _ in range(2):
        issued = reader.request("GET", f"/api/v1/releases/{promoted.pk}/attestation")
        assert issued.status_code == 200, issued.json()
    body = notification(alert("ToxicOutputRate", releasegate_digest=promoted.artifact_digest))
    post_alerts(alertmanager, body)
    revoked = Revocation.objects.filter(attestation__release=promoted)
    assert revoked.count() == 2
    assert {r.cause for r in revoked} == {f"hold:{body['alerts'][0]['fingerprint']}"}
    assert {r.reason for r in revoked} == {"held by the production alert ToxicOutputRate"}
    post_alerts(alertmanager, body)
    assert AuditEvent.objects.filter(action="attestation_revoked").count() == 1
    # While held, no new attestation is issued.
    assert reader.request("GET", f"/api/v1/releases/{promoted.pk}/attestation").status_code == 409
