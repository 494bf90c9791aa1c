"""The demo in a real Chromium: the dashboard for sam and olga, a 404 for oscar, and the pictures
in the docs (release page, veto dialog, dashboard) taken from the demo data.

`RELEASEGATE_DOCS_SCREENSHOTS=1` writes the pictures to docs/screenshots/ (see docs/demo.md);
otherwise they go to artifacts/screenshots/ with the others.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from releasegate.releases.demo import demo_password, seed_demo
from releasegate.releases.models import Release
from tests.browser.test_story import SCREENSHOTS, browser  # noqa: F401 - the shared Chromium

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
OUT = DOCS if os.environ.get("RELEASEGATE_DOCS_SCREENSHOTS") == "1" else SCREENSHOTS


@pytest.fixture
def demo(transactional_db: Any) -> None:
    seed_demo()


@pytest.fixture
def sign_in(browser: Any, live_server: Any) -> Iterator[Any]:  # noqa: F811
    contexts = []

    def open_as(username: str) -> Any:
        context = browser.new_context(viewport={"width": 1200, "height": 820})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(demo_password(username))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/")
        return page

    yield open_as
    for context in contexts:
        context.close()


def shot(page: Any, name: str, **kwargs: Any) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), **kwargs)


def test_sam_reads_the_dashboard_and_what_runs_where(demo, sign_in, live_server):
    page = sign_in("sam")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    # sam reviews one project only: the nav's Dashboard goes straight to its dashboard.
    page.wait_for_url(f"{live_server.url}/projects/support-assistant/dashboard/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Support assistant: dashboard")
    running = page.locator("#running")
    expect(running.locator("tr.running-cleared")).to_have_count(2)
    expect(running).to_contain_text("1.2.0")
    expect(running).to_contain_text("1.3.0")
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(6)
    for i in range(6):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
    expect(page.locator("#checks-failed")).to_contain_text("least_privilege")
    page.locator("#where-h").scroll_into_view_if_needed()
    shot(page, "dashboard")


def test_olga_reaches_the_dashboard_from_her_project(demo, sign_in, live_server):
    page = sign_in("olga")
    page.get_by_role("link", name="Support assistant").first.click()
    page.get_by_role("link", name="Dashboard", exact=True).last.click()
    page.wait_for_url(f"{live_server.url}/projects/support-assistant/dashboard/")
    expect(page.locator("#vetoes")).to_contain_text("Vetoes cast and lifted")
    expect(page.locator("#role-waits")).to_contain_text("security")
    page.locator("#blockers-h").scroll_into_view_if_needed()
    shot(page, "dashboard-blockers", full_page=False)


def test_oscar_gets_a_404_for_the_dashboard(demo, sign_in, live_server):
    page = sign_in("oscar")
    response = page.goto(f"{live_server.url}/projects/support-assistant/dashboard/")
    assert response is not None and response.status == 404
    response = page.goto(f"{live_server.url}/projects/claims-triage/dashboard/")
    assert response is not None and response.status == 404


def test_the_release_page_and_the_veto_dialog_from_the_demo(demo, sign_in, live_server):
    page = sign_in("sam")
    carried = Release.objects.get(project__slug="support-assistant", version="1.4.2")
    page.goto(f"{live_server.url}/releases/{carried.pk}/")
    expect(page.locator("main")).to_contain_text("carries forward")
    shot(page, "release-page")
    waiting = Release.objects.get(project__slug="support-assistant", version="1.4.0")
    page.goto(f"{live_server.url}/releases/{waiting.pk}/")
    page.get_by_role("link", name="Veto…").click()
    dialog = page.locator("#veto-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason (required)").fill(
        "Billing replies quote card numbers back to the customer."
    )
    shot(page, "veto-dialog")
