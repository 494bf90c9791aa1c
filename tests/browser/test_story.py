"""The whole story in a real Chromium against the live server on PostgreSQL: a requester prepares
and submits a release, the security lead vetoes it, the expert approves, the veto is lifted,
checks pass and the requester promotes it."""

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from releasegate.accounts.actors import Actor
from releasegate.checks.services import check_result_record
from releasegate.releases.models import Release
from tests.builders import DEFAULT_CHECKS, digest_of, document
from tests.conftest import make_personas

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made from the test
# body (setting up personas, recording checks) are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        from tests.conftest import _missing

        _missing(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def people(transactional_db: Any) -> Any:
    return make_personas()


class Person:
    """One signed-in browser context."""

    def __init__(self, browser: Any, base: str, username: str, *, mobile: bool = False):
        viewport = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 900}
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.base = base
        self.page.goto(f"{base}/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(f"{username}-password-123")
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(f"{base}/")

    def open(self, path: str) -> Any:
        self.page.goto(f"{self.base}{path}")
        return self.page

    def shot(self, name: str, *, full_page: bool = True) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def _attach_everything(page: Any, release_id: int, base: str, tmp_path: Path) -> None:
    def item(kind: str) -> None:
        page.goto(f"{base}/releases/{release_id}/evidence/{kind}/")

    def save() -> None:
        page.locator("form button.primary").click()
        page.wait_for_url(f"{base}/releases/{release_id}/")

    item("pipeline_review")
    page.get_by_label("Reviewer").fill("Sam Security")
    page.get_by_label("Reviewed on").fill("2026-11-20")
    page.get_by_label("Scope").fill("training, serving")
    page.locator("#id_findings-0-id").fill("PR-1")
    page.locator("#id_findings-0-severity").select_option("low")
    page.locator("#id_findings-0-title").fill("Verbose logs in staging")
    page.locator("#id_findings-0-status").select_option("open")
    save()

    item("data_flow_map")
    page.locator("#id_flows-0-source").fill("prompt")
    page.locator("#id_flows-0-destination").fill("LLM provider")
    page.locator("#id_flows-0-data_classes").fill("pii")
    page.locator("#id_flows-0-third_party").check()
    page.locator("#id_flows-0-customer_data").select_option("real")
    page.locator("#id_flows-0-agreement_ref").fill("DPA-12")
    page.get_by_label("Link (optional)").fill("https://wiki.example.com/dfd")
    save()

    sbom = tmp_path / "bom.json"
    sbom.write_text(json.dumps(document("sbom")))
    item("sbom")
    page.get_by_label("SBOM file (CycloneDX or SPDX JSON)").set_input_files(str(sbom))
    save()

    item("monitoring_plan")
    page.get_by_label("Owner").fill("ml-platform on-call")
    page.get_by_label("Escalation").fill("page #support-ai-oncall")
    signals = (
        ("toxic output", "output_anomaly"),
        ("PII in output", "data_exposure"),
        ("drift", "drift"),
    )
    page.get_by_role("button", name="Add a row").click()  # two blank rows are there; a third
    for i, (name, kind) in enumerate(signals):
        page.locator(f"#id_signals-{i}-name").fill(name)
        page.locator(f"#id_signals-{i}-kind").select_option(kind)
        page.locator(f"#id_signals-{i}-threshold").fill("> 0.5%")
        page.locator(f"#id_signals-{i}-runbook").fill(f"https://runbooks.example.com/{i}")
    save()

    item("agent_access_review")
    page.locator("#id_identities-0-name").fill("ticket-triage-agent")
    page.locator("#id_identities-0-kind").select_option("agent")
    page.locator("#id_identities-0-permissions_0").check()
    page.locator("#id_identities-0-resources").fill("tickets")
    page.locator("#id_identities-0-auth").select_option("oauth")
    save()


def test_the_whole_story(browser, live_server, people, tmp_path):
    base = live_server.url

    # The requester creates a release, attaches every item and submits it.
    alice = Person(browser, base, "requester")
    page = alice.open("/releases/new/")
    page.get_by_label("Version").fill("1.4.2")
    page.get_by_label("Artifact digest").fill(digest_of("story"))
    page.get_by_label("Summary").fill("Adds ticket summaries")
    page.get_by_role("button", name="Create release").click()
    page.wait_for_url(re.compile(r"/releases/\d+/$"))
    release = Release.objects.get(version="1.4.2")
    _attach_everything(page, release.pk, base, tmp_path)
    assert page.locator(".badge", has_text="Missing").count() == 0
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator("main")).to_contain_text("Submitted for review.")

    # The security lead sees it waiting, and vetoes it; the dialog refuses an empty reason.
    sam = Person(browser, base, "security")
    assert sam.page.get_by_role("link", name="support-assistant 1.4.2").is_visible()
    sam.shot("home-reviewer")
    page = sam.open(f"/releases/{release.pk}/")
    page.get_by_role("link", name="Veto…").click()
    dialog = page.locator("#veto-dialog")
    assert dialog.is_visible()
    dialog.get_by_role("button", name="Confirm veto").click()
    assert dialog.is_visible()  # the browser kept it open: the reason is required
    assert dialog.locator("textarea:invalid").count() == 1
    assert not release.vetoes.exists()
    dialog.get_by_label("Reason (required)").fill("Prompts reach the vendor unredacted")
    sam.shot("veto-dialog", full_page=False)
    dialog.get_by_role("button", name="Confirm veto").click()
    expect(page.locator("main")).to_contain_text("Veto recorded.")

    # The requester sees "blocked" with the reason, and no promote button.
    page = alice.open(f"/releases/{release.pk}/")
    assert page.locator("#ev-monitoring_plan td", has_text="drift").count() == 2
    gate = page.locator("section.gate")
    assert "Blocked" in gate.inner_text()
    assert "Prompts reach the vendor unredacted" in gate.inner_text()
    assert page.locator("#promote-button").count() == 0
    alice.shot("release-blocked")
    alice.open("/")
    alice.shot("home-requester")

    # The expert approves.
    erin = Person(browser, base, "sme")
    page = erin.open(f"/releases/{release.pk}/")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("main")).to_contain_text("Approved as sme.")

    # The security lead lifts the veto with a reason, then approves.
    page = sam.open(f"/releases/{release.pk}/")
    page.get_by_label("Reason for lifting (required)").fill("Redaction shipped in this build")
    page.get_by_role("button", name="Lift veto").click()
    expect(page.locator("main")).to_contain_text("Veto lifted.")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("main")).to_contain_text("Approved as security.")

    # Checks pass, recorded as a worker would.
    release.refresh_from_db()
    for check in DEFAULT_CHECKS:
        check_result_record(
            release=release, actor=Actor.system_actor(), check=check, status="passed", summary="ok"
        )

    # The requester promotes, after confirming.
    page = alice.open(f"/releases/{release.pk}/")
    assert "Cleared for production" in page.locator("section.gate").inner_text()
    alice.shot("release-cleared")
    page.locator("#promote-button").click()
    page.locator("#promote-dialog").get_by_role("button", name="Confirm promotion").click()
    expect(page.locator("main")).to_contain_text("1.4.2 promoted to production.")
    release.refresh_from_db()
    assert release.state == Release.State.PROMOTED

    for person in (alice, sam, erin):
        person.context.close()


def test_outsider_gets_404_for_the_release_page(browser, live_server, people):
    from tests.builders import submitted_release

    release = submitted_release(people.project, people.requester)
    oscar = Person(browser, live_server.url, "outsider")
    response = oscar.page.goto(f"{live_server.url}/releases/{release.pk}/")
    assert response.status == 404
    assert "Not found" in oscar.page.content()
    oscar.context.close()


def test_a_form_error_keeps_the_input(browser, live_server, people):
    alice = Person(browser, live_server.url, "requester", mobile=True)
    page = alice.open("/releases/new/")
    page.get_by_label("Version").fill("2.0.0")
    page.get_by_label("Artifact digest").fill("sha256:not-a-digest")
    page.get_by_label("Summary").fill("kept across the error")
    page.get_by_role("button", name="Create release").click()
    expect(page.locator("main")).to_contain_text(
        "must be sha256: followed by 64 lowercase hex digits"
    )
    assert page.get_by_label("Version").input_value() == "2.0.0"
    assert page.get_by_label("Artifact digest").input_value() == "sha256:not-a-digest"
    assert page.get_by_label("Summary").input_value() == "kept across the error"
    alice.shot("form-error-phone")
    assert not Release.objects.exists()
    alice.context.close()


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
    .map(e => e.name || e.id)"""


def test_every_input_has_a_label_and_the_veto_dialog_works_by_keyboard(
    browser, live_server, people
):
    from tests.builders import submitted_release

    release = submitted_release(people.project, people.requester)
    base = live_server.url
    pages = {
        "requester": [
            "/",
            "/releases/",
            "/releases/new/",
            "/tokens/",
            *(
                f"/releases/{release.pk}/evidence/{kind}/"
                for kind in (
                    "pipeline_review",
                    "data_flow_map",
                    "sbom",
                    "monitoring_plan",
                    "agent_access_review",
                )
            ),
        ],
        "security": [f"/releases/{release.pk}/", f"/releases/{release.pk}/veto/"],
        "admin": ["/projects/support-assistant/"],
    }
    for username, paths in pages.items():
        person = Person(browser, base, username, mobile=username == "security")
        for path in paths:
            assert person.open(path).evaluate(UNLABELLED) == [], path
            if path.endswith("/monitoring_plan/"):
                person.shot("evidence-form")
        if username == "security":
            page = person.open(f"/releases/{release.pk}/")
            person.shot("release-phone")
            page.locator("#veto-button").focus()
            page.keyboard.press("Enter")
            dialog = page.locator("#veto-dialog")
            assert dialog.is_visible()
            assert page.evaluate("document.activeElement.closest('dialog') !== null")
            page.keyboard.press("Escape")
            assert not dialog.is_visible()
        person.context.close()
