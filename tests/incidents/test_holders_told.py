"""Every role holder of the project is told in person, by e-mail, of a hold and of each
break-glass step; nobody outside the project is."""

from typing import Any

import pytest
from django.core import mail

from releasegate.errors import NotPermitted
from releasegate.incidents.services import (
    break_glass_confirm,
    break_glass_request,
    break_glass_review,
)
from releasegate.releases.models import Release
from tests.api.conftest import Caller
from tests.builders import submitted_release
from tests.conftest import Personas, make_personas
from tests.incidents.conftest import post_alerts
from tests.incidents.payloads import alert, notification
from tests.notifications.test_notifications import eager_tasks  # noqa: F401  (fixture)

HOLDERS = sorted(
    f"{name}@example.com" for name in ("admin", "auditor", "requester", "security", "sme")
)


@pytest.fixture
def addressed(personas: Personas) -> Personas:
    """Everyone has an address, the outsider and another project's people too."""
    other = make_personas("other-assistant", prefix="other-")
    for p in (personas, other):
        for name in ("requester", "security", "sme", "admin", "auditor", "outsider"):
            user = getattr(p, name)
            user.email = f"{user.username}@example.com"
            user.save(update_fields=["email"])
    return personas


def test_the_role_holders_are_told_of_a_hold_placed_and_lifted(
    addressed: Personas,
    promoted: Release,
    alertmanager: Caller,
    eager_tasks: None,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    body = notification(
        alert("ToxicOutputRate", releasegate_digest=promoted.artifact_digest, summary="0.8% toxic")
    )
    with django_capture_on_commit_callbacks(execute=True):
        [placed] = post_alerts(alertmanager, body).json()["holds"]
    with django_capture_on_commit_callbacks(execute=True):
        lifted = Caller("sam", user=addressed.security).request(
            "POST",
            f"/api/v1/releases/{promoted.pk}/holds/{placed['hold_id']}/lift",
            {"reason": "rolled back the prompt"},
        )
    assert lifted.status_code == 200, lifted.json()
    held, freed = mail.outbox
    assert held.bcc == HOLDERS and freed.bcc == HOLDERS
    assert held.to == [] and freed.to == []
    assert held.subject == (
        "[releasegate] support-assistant 1.0.0 (production): held by a production alert"
    )
    assert "held by the production alert ToxicOutputRate (critical" in held.body
    assert "0.8% toxic" in held.body
    assert f"/releases/{promoted.pk}/" in held.body
    assert "a hold was lifted" in freed.subject
    assert "lifted by security: rolled back the prompt" in freed.body


def test_the_role_holders_are_told_of_every_break_glass_step(
    addressed: Personas,
    eager_tasks: None,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    p = addressed
    release = submitted_release(p.project, p.requester, version="1.0.1")
    with django_capture_on_commit_callbacks(execute=True):
        bg = break_glass_request(
            release=release, actor=p.actor("requester"), reason="tickets leak", incident="INC-5"
        )
    with django_capture_on_commit_callbacks(execute=True):
        bg = break_glass_confirm(break_glass=bg, actor=p.actor("security"), reason="seen")
    with django_capture_on_commit_callbacks(execute=True):
        break_glass_review(break_glass=bg, actor=p.actor("security"), summary="filter kept")
    assert [m.bcc for m in mail.outbox] == [HOLDERS] * 3
    assert [m.subject.rsplit(": ", 1)[1] for m in mail.outbox] == [
        "break-glass requested",
        "break-glass in force",
        "break-glass reviewed",
    ]
    requested, confirmed, reviewed = (m.body for m in mail.outbox)
    assert "requester asks to break the glass (INC-5): tickets leak" in requested
    assert "confirmed by security, in force until" in confirmed
    assert "review of break-glass (INC-5) was filed by security" in reviewed


def test_nobody_is_told_when_the_act_is_refused(
    addressed: Personas,
    eager_tasks: None,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    p = addressed
    release = submitted_release(p.project, p.requester, version="1.0.1")
    with django_capture_on_commit_callbacks(execute=True):
        bg = break_glass_request(
            release=release, actor=p.actor("requester"), reason="tickets leak", incident="INC-5"
        )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(NotPermitted):
        break_glass_confirm(break_glass=bg, actor=p.actor("requester"), reason="mine")
    assert mail.outbox == []
