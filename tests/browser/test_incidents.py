"""Production closes the loop, in a real Chromium against the live server on PostgreSQL: an
alert from Alertmanager holds a promoted release and the security lead lifts it with a reason;
an emergency fix gets a break-glass requested by its requester and confirmed by the security lead
in a dialog, with a countdown; its overdue review then waits on the security lead's home page."""

import os
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from releasegate.accounts.tokens import token_create
from releasegate.incidents.models import BreakGlass, Hold
from tests.browser.test_story import Person, browser, people  # noqa: F401  (fixtures)
from tests.builders import submitted_release
from tests.incidents.conftest import promote
from tests.incidents.payloads import alert, notification

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.postgres]


def test_an_alert_holds_a_promoted_release_and_the_security_lead_lifts_it(
    browser: Any,  # noqa: F811
    live_server: Any,
    people: Any,  # noqa: F811
) -> None:
    base = live_server.url
    release = promote(people, version="1.4.2")
    _, token = token_create(
        actor=people.actor("admin"),
        kind="service",
        name="alertmanager",
        project=people.project,
        scopes=["alerts:write"],
    )
    # Alertmanager posts its notification over HTTP, with the bearer token of its
    # http_config.authorization.
    body = notification(
        alert(
            "ToxicOutputRate",
            releasegate_digest=release.artifact_digest,
            environment="production",
            signal="toxic output rate",
            summary="Toxic output rate 1.2% over 10 minutes",
        )
    )
    answer = httpx.post(
        f"{base}/api/v1/projects/support-assistant/alerts",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text

    sam = Person(browser, base, "security")
    page = sam.open(f"/releases/{release.pk}/")
    gate = page.locator("section.gate")
    expect(gate).to_contain_text("Blocked")
    expect(gate).to_contain_text("ToxicOutputRate")
    expect(gate).to_contain_text("Toxic output rate 1.2% over 10 minutes")
    hold = page.locator("li.hold")
    expect(hold).to_contain_text("signal: toxic output rate")
    sam.shot("release-held")
    hold.get_by_role("button", name="Lift hold").click()
    assert Hold.objects.get().is_active  # the browser refused: the reason is required
    hold.get_by_label("Reason for lifting (required)").fill(
        "Classifier threshold misconfigured; output verified by hand"
    )
    hold.get_by_role("button", name="Lift hold").click()
    expect(page.locator("main")).to_contain_text("Hold lifted.")
    expect(page.locator("section.gate")).to_contain_text("Cleared")
    expect(page.locator("li.hold")).to_contain_text("Lifted by security")

    # The requester sees the hold's history and has no lift button.
    alice = Person(browser, base, "requester")
    page = alice.open(f"/releases/{release.pk}/")
    expect(page.locator("li.hold")).to_contain_text("Hold lifted")
    assert page.get_by_role("button", name="Lift hold").count() == 0


def test_a_break_glass_requested_by_the_requester_and_confirmed_by_the_security_lead(
    browser: Any,  # noqa: F811
    live_server: Any,
    people: Any,  # noqa: F811
) -> None:
    base = live_server.url
    fix = submitted_release(people.project, people.requester, version="1.4.3")

    alice = Person(browser, base, "requester")
    page = alice.open(f"/releases/{fix.pk}/")
    expect(page.locator("section.gate")).to_contain_text("Blocked")
    page.get_by_text("Break the glass (emergency)…").click()
    page.get_by_label("Incident (ticket or page id)").fill("INC-2041")
    page.get_by_label("Why this cannot wait (required)").fill(
        "Prompt injection exfiltrates tickets; this build filters tool output"
    )
    page.get_by_role("button", name="Request break-glass").click()
    expect(page.locator("main")).to_contain_text("Break-glass requested")
    panel = page.locator("article.break-glass")
    expect(panel).to_contain_text("Awaiting confirmation")
    countdown = panel.locator(".countdown")
    expect(countdown).to_contain_text(" s left")  # the script counts down every second
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first)
    assert page.get_by_role("link", name="Confirm break-glass…").count() == 0
    expect(page.locator("section.gate")).to_contain_text("Blocked")
    alice.shot("break-glass-requested")

    sam = Person(browser, base, "security")
    page = sam.open(f"/releases/{fix.pk}/")
    page.get_by_role("link", name="Confirm break-glass…").click()
    bg = BreakGlass.objects.get()
    dialog = page.locator(f"#bg-confirm-{bg.pk}")
    assert dialog.is_visible()
    dialog.get_by_role("button", name="Confirm break-glass").click()
    assert dialog.is_visible()  # the reason is required
    dialog.get_by_label("Reason (required)").fill("Diff reviewed on the incident call")
    sam.shot("break-glass-confirm-dialog", full_page=False)
    dialog.get_by_role("button", name="Confirm break-glass").click()
    expect(page.locator("main")).to_contain_text("Break-glass confirmed")
    expect(page.locator("section.gate")).to_contain_text("Cleared")
    expect(page.locator("article.break-glass")).to_contain_text("In force")
    expect(page.locator("article.break-glass")).to_contain_text("confirmed by security")

    # The requester may now promote; the promotion records the break-glass.
    page = alice.open(f"/releases/{fix.pk}/")
    page.locator("#promote-button").click()
    page.locator("#promote-dialog").get_by_role("button", name="Confirm promotion").click()
    expect(page.locator("main")).to_contain_text("promoted to production")
    fix.refresh_from_db()
    assert fix.promotion.decision["break_glass"]["confirmed_by"] == "security"

    # A week on, the review is overdue: it waits on the security lead, and blocks new releases.
    BreakGlass.objects.filter(pk=bg.pk).update(review_due=timezone.now() - timedelta(hours=1))
    submitted_release(people.project, people.requester, version="1.5.0")
    page = sam.open("/")
    reviews = page.locator("section", has=page.locator("#reviews-due-h"))
    expect(reviews).to_contain_text("INC-2041")
    expect(reviews).to_contain_text("Overdue")
    sam.shot("home-review-overdue")
    reviews.get_by_role("link", name="support-assistant 1.4.3").click()
    page.get_by_label("Post-incident review (required)").fill(
        "Root cause: unfiltered tool output. Follow-ups SEC-88, SEC-89."
    )
    page.get_by_role("button", name="File the review").click()
    expect(page.locator("main")).to_contain_text("Post-incident review filed.")
    assert BreakGlass.objects.get().reviewed_by == people.security
