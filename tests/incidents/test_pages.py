"""The hold and break-glass panel through the pages: what each person is offered, and what the
page acts refuse."""

from typing import Any

from releasegate.incidents.models import BreakGlass, Hold
from releasegate.incidents.services import break_glass_confirm, break_glass_request
from releasegate.releases.models import Release
from tests.api.conftest import Caller
from tests.builders import submitted_release
from tests.conftest import Personas
from tests.incidents.conftest import post_alerts
from tests.incidents.payloads import alert, notification
from tests.web.helpers import signed_in, text


def _page(client: Any, user: Any, release: Release) -> str:
    signed_in(client, user)
    return text(client.get(f"/releases/{release.pk}/"))


def test_only_the_requester_and_admins_are_offered_the_break_glass(
    client: Any, personas: Personas
) -> None:
    fix = submitted_release(personas.project, personas.requester)
    offered = {
        name: "Request break-glass" in _page(client, getattr(personas, name), fix)
        for name in ("requester", "admin", "security", "sme", "auditor")
    }
    assert offered == {
        "requester": True,
        "admin": True,
        "security": False,
        "sme": False,
        "auditor": False,
    }


def test_the_confirm_button_shows_to_a_security_holder_who_did_not_ask(
    client: Any, personas: Personas
) -> None:
    fix = submitted_release(personas.project, personas.requester)
    break_glass_request(
        release=fix, actor=personas.actor("requester"), reason="outage", incident="INC-3"
    )
    assert "Confirm break-glass…" in _page(client, personas.security, fix)
    requester_page = _page(client, personas.requester, fix)
    assert "Confirm break-glass…" not in requester_page
    assert "Awaiting confirmation" in requester_page
    assert "Request break-glass" not in requester_page  # one open at a time


def test_page_acts_refuse_who_may_not_and_hide_from_outsiders(
    client: Any, personas: Personas, promoted: Release, alertmanager: Caller
) -> None:
    body = notification(alert("ToxicOutputRate", releasegate_digest=promoted.artifact_digest))
    hold_id = post_alerts(alertmanager, body).json()["holds"][0]["hold_id"]
    fix = submitted_release(personas.project, personas.requester, version="2.0.0")
    bg = break_glass_request(
        release=fix, actor=personas.actor("requester"), reason="outage", incident="INC-3"
    )
    signed_in(client, personas.sme)
    lift = f"/releases/{promoted.pk}/holds/{hold_id}/lift/"
    assert client.post(lift, {"reason": "fine"}).status_code == 403
    confirm = f"/releases/{fix.pk}/break-glass/{bg.pk}/confirm/"
    assert client.post(confirm, {"reason": "fine"}).status_code == 403
    signed_in(client, personas.outsider)
    assert client.get(lift).status_code == 404
    assert client.post(confirm, {"reason": "fine"}).status_code == 404
    assert client.post(f"/releases/{fix.pk}/break-glass/", {}).status_code == 404
    signed_in(client, personas.security)
    assert client.post(lift, {"reason": "  "}).status_code == 400
    assert client.get(f"/releases/{fix.pk}/break-glass/99999/confirm/").status_code == 404
    assert Hold.objects.get().is_active
    assert BreakGlass.objects.get().confirmed_at is None


def test_the_panel_shows_the_review_due_and_its_form_files_it(
    client: Any, personas: Personas
) -> None:
    fix = submitted_release(personas.project, personas.requester)
    bg = break_glass_request(
        release=fix, actor=personas.actor("requester"), reason="outage", incident="INC-3"
    )
    break_glass_confirm(break_glass=bg, actor=personas.actor("security"), reason="seen")
    page = _page(client, personas.security, fix)
    assert "In force" in page and "Post-incident review due" in page
    assert "File the post-incident review" in page
    assert "INC-3" in text(client.get("/"))  # due, on the security lead's home page
    answer = client.post(
        f"/releases/{fix.pk}/break-glass/{bg.pk}/review/", {"summary": "root cause found"}
    )
    assert answer.status_code == 302
    bg.refresh_from_db()
    assert bg.review_summary == "root cause found"
    assert "INC-3" not in text(client.get("/"))
