"""Lifting a hold: a security holder with a reason; never the requester, never by the alert."""

from typing import Any

from django.core import mail

from releasegate.audit.models import AuditEvent
from releasegate.incidents.models import Hold
from releasegate.notifications.models import Delivery
from releasegate.notifications.services import notification_target_add
from releasegate.releases.models import Release
from releasegate.releases.services import role_grant
from tests.api.conftest import Caller, service_token
from tests.conftest import Personas
from tests.incidents.conftest import post_alerts, promote
from tests.incidents.payloads import alert, notification
from tests.notifications.test_notifications import eager_tasks  # noqa: F401  (fixture)
from tests.releases.gatehelpers import decide


def _hold(alertmanager: Caller, release: Release, name: str = "ToxicOutputRate") -> int:
    body = notification(alert(name, releasegate_digest=release.artifact_digest))
    [placed] = post_alerts(alertmanager, body).json()["holds"]
    return int(placed["hold_id"])


def _lift(caller: Caller, release: Release, hold_id: int, reason: Any = "checked") -> Any:
    return caller.request(
        "POST", f"/api/v1/releases/{release.pk}/holds/{hold_id}/lift", {"reason": reason}
    )


def test_a_security_holder_lifts_a_hold_with_a_reason(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    hold_id = _hold(alertmanager, promoted)
    answer = _lift(Caller("sam", user=personas.security), promoted, hold_id, "rolled back config")
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert (body["active"], body["lifted_by"], body["lift_reason"]) == (
        False,
        "security",
        "rolled back config",
    )
    assert decide(promoted).cleared
    event = AuditEvent.objects.get(action="hold_lifted")
    assert event.data == {
        "hold_id": hold_id,
        "alert": "ToxicOutputRate",
        "reason": "rolled back config",
    }
    again = _lift(Caller("sam", user=personas.security), promoted, hold_id)
    assert again.status_code == 409 and again.json()["code"] == "already_lifted"


def test_nobody_else_lifts_a_hold(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    hold_id = _hold(alertmanager, promoted)
    # The requester holding the security role too still may not lift their own release's hold.
    role_grant(
        project=personas.project,
        user=personas.requester,
        role="security",
        actor=personas.actor("admin"),
    )
    statuses = {
        name: _lift(Caller(name, user=getattr(personas, name)), promoted, hold_id).status_code
        for name in ("requester", "sme", "admin", "auditor", "outsider")
    }
    statuses["service token"] = _lift(
        Caller("t", token=service_token(personas, "alerts:write", "releases:promote")[1]),
        promoted,
        hold_id,
    ).status_code
    assert statuses == {
        "requester": 403,
        "sme": 403,
        "admin": 403,
        "auditor": 403,
        "outsider": 404,
        "service token": 403,
    }
    assert Hold.objects.get(pk=hold_id).is_active


def test_a_lift_without_a_reason_is_400_and_changes_nothing(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    hold_id = _hold(alertmanager, promoted)
    answer = _lift(Caller("sam", user=personas.security), promoted, hold_id, "   ")
    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"field": "reason", "message": "must not be empty"}]
    assert Hold.objects.get(pk=hold_id).is_active


def test_a_hold_is_lifted_only_through_its_own_release(
    personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    hold_id = _hold(alertmanager, promoted)
    other = promote(personas, version="1.1.0")
    sam = Caller("sam", user=personas.security)
    assert _lift(sam, other, hold_id).status_code == 404
    assert _lift(sam, promoted, 2**63).status_code == 404
    assert Hold.objects.get(pk=hold_id).is_active


def test_holds_placed_and_lifted_are_told_to_the_project(
    personas: Personas,
    promoted: Release,
    alertmanager: Caller,
    eager_tasks: None,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    notification_target_add(
        project=personas.project,
        actor=personas.actor("admin"),
        kind="email",
        address="support-ai-oncall@example.com",
        events=["hold_placed", "hold_lifted"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        hold_id = _hold(alertmanager, promoted)
    with django_capture_on_commit_callbacks(execute=True):
        _lift(Caller("sam", user=personas.security), promoted, hold_id, "false alarm")
    subjects = [m.subject for m in mail.outbox]
    assert len(subjects) == 2
    assert "held by the production alert ToxicOutputRate (critical" in subjects[0]
    assert "lifted by security: false alarm" in subjects[1]
    assert set(Delivery.objects.values_list("event", "status")) == {
        ("hold_placed", "delivered"),
        ("hold_lifted", "delivered"),
    }
