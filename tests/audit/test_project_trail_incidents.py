"""The project's own trail exports its holds and break-glasses, which are acts on one release."""

import pytest

from releasegate.incidents.services import (
    break_glass_confirm,
    break_glass_request,
    break_glass_review,
)
from tests.api.conftest import Caller, service_token
from tests.builders import submitted_release
from tests.incidents.conftest import post_alerts, promote
from tests.incidents.payloads import alert, notification

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/support-assistant/audit"


def _incidents(p) -> tuple[int, int]:
    """A hold placed and lifted on a promoted release, then a break-glass on a fix, from request
    to review; the ids of the hold and of the break-glass."""
    promoted = promote(p)
    alertmanager = Caller("alertmanager", token=service_token(p, "alerts:write")[1])
    body = notification(alert("ToxicOutputRate", releasegate_digest=promoted.artifact_digest))
    [placed] = post_alerts(alertmanager, body).json()["holds"]
    hold_id = int(placed["hold_id"])
    lifted = Caller("sam", user=p.security).request(
        "POST", f"/api/v1/releases/{promoted.pk}/holds/{hold_id}/lift", {"reason": "rolled back"}
    )
    assert lifted.status_code == 200, lifted.json()
    fix = submitted_release(p.project, p.requester, version="1.0.1")
    bg = break_glass_request(
        release=fix, actor=p.actor("requester"), reason="tickets leak", incident="INC-7"
    )
    bg = break_glass_confirm(break_glass=bg, actor=p.actor("security"), reason="fix reviewed")
    break_glass_review(break_glass=bg, actor=p.actor("security"), summary="filter kept")
    return hold_id, bg.pk


@pytest.mark.parametrize("who", ["auditor", "admin"])
def test_project_trail_exports_holds_and_break_glass_but_not_other_release_acts(
    personas, person, who
):
    hold_id, bg_id = _incidents(personas)
    events = person(who).request("GET", URL).json()["events"]
    incident_actions = [e["action"] for e in events if e["release_id"] is not None]
    assert incident_actions == [
        "break_glass_reviewed",
        "break_glass_confirmed",
        "break_glass_requested",
        "hold_lifted",
        "hold_placed",
    ]
    by_action = {e["action"]: e for e in events}
    assert by_action["hold_placed"]["data"]["hold_id"] == hold_id
    assert by_action["break_glass_reviewed"]["data"]["break_glass_id"] == bg_id
    # The releases' own acts stay on their trails.
    assert not {"release_created", "promoted", "approved"} & {e["action"] for e in events}


def test_project_trail_filters_holds_by_action(personas, person):
    hold_id, _ = _incidents(personas)
    events = person("auditor").request("GET", f"{URL}?action=hold_placed").json()["events"]
    assert [(e["action"], e["data"]["hold_id"]) for e in events] == [("hold_placed", hold_id)]


def test_project_trail_with_incidents_takes_a_fixed_number_of_queries(
    personas, person, django_assert_num_queries
):
    _incidents(personas)
    caller = person("auditor")
    caller.request("GET", URL)
    # token, project, the caller's roles, one page of events with their chain
    with django_assert_num_queries(4):
        assert caller.request("GET", URL).status_code == 200
