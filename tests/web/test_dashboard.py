"""The project dashboard: who may see it, its numbers against a hand-computed fixture, and a query
count that does not grow with the number of releases."""

import copy
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from releasegate.releases.demo import OPEN_MCP_SERVER, Story, _evidence
from releasegate.releases.models import Release
from releasegate.releases.services import release_create, release_submit, release_withdraw
from releasegate.web.dashboard import median, p90, project_dashboard
from tests.builders import digest_of
from tests.web.helpers import signed_in, text

# The fixture's present: Wednesday noon of a week safely in the past, so every act below happened
# before the real present the services stamp, and the pipeline review stays young enough to promote.
_today = datetime.now(UTC).date() - timedelta(days=7)
W0 = datetime.combine(_today - timedelta(days=_today.weekday()), time.min, tzinfo=UTC)
NOW = W0 + timedelta(days=2, hours=12)


def moment(week: int, day: int, hour: int) -> datetime:
    """`hour` o'clock on weekday `day` (0 = Monday) of the week `week` weeks from W0."""
    return W0 + timedelta(weeks=week, days=day, hours=hour)


class Fixture(Story):
    def requested(self, version: str, at: datetime, **kwargs: Any) -> Release:
        days_ago = (NOW - at + timedelta(hours=2)) / timedelta(days=1)
        release = self.release(
            version, by="requester", days_ago=days_ago, summary=version, **kwargs
        )
        self.submit(release, by="requester", at=at)
        return release


@pytest.fixture
def board_project(personas: Any, advisory_db: int) -> Any:
    """Five releases whose every number is worked out by hand in the test below."""
    people = {"requester": personas.requester, "sec": personas.security, "sme": personas.sme}
    s = Fixture(personas.project, people, NOW)
    h = timedelta(hours=1)
    # A: requested W-2 Monday 10:00; sme +4h, security +10h (cleared), promoted +12h.
    t = moment(-2, 0, 10)
    a = s.requested("1.0.0", t)
    s.approve(a, by="sme", role="sme", at=t + 4 * h)
    s.approve(a, by="sec", role="security", at=t + 10 * h)
    s.promote(a, by="requester", at=t + 12 * h)
    # B: requested W-2 Tuesday 10:00; sme +2h, security +30h (cleared), promoted +50h.
    t = moment(-2, 1, 10)
    b = s.requested("1.1.0", t)
    s.approve(b, by="sme", role="sme", at=t + 2 * h)
    s.approve(b, by="sec", role="security", at=t + 30 * h)
    s.promote(b, by="requester", at=t + 50 * h)
    # E: requested W-1 Tuesday 10:00 with an MCP server without auth (least_privilege fails),
    # withdrawn +30h, nobody answered.
    t = moment(-1, 1, 10)
    evidence = _evidence(t - 48 * h)
    evidence["agent_access_review"]["identities"].append(copy.deepcopy(OPEN_MCP_SERVER))
    e = s.requested("1.1.5", t, evidence=evidence)
    release_withdraw(release=e, actor=s.actor("requester"), reason="wrong build")
    s.move(Release.objects.filter(pk=e.pk), withdrawn_at=t + 30 * h)
    # C: requested W-1 Friday 10:00; security vetoes +5h, sme +8h, the veto is lifted +70h
    # (W0 Monday 08:00), security approves +72h (cleared). Still in review.
    t = moment(-1, 4, 10)
    c = s.requested("1.2.0", t)
    veto = s.veto(c, by="sec", role="security", reason="no rollback plan", at=t + 5 * h)
    s.approve(c, by="sme", role="sme", at=t + 8 * h)
    s.lift(veto, by="sec", reason="rollback plan attached", at=t + 70 * h)
    s.approve(c, by="sec", role="security", at=t + 72 * h)
    # D: requested W0 Monday 10:00, nobody has answered by NOW (50 hours later).
    s.requested("1.3.0", moment(0, 0, 10))
    s.finish()
    return personas.project


def test_median_and_nearest_rank_p90():
    assert median([]) is None and p90([]) is None
    assert median([10, 30]) == 20 and p90([10, 30]) == 30
    assert median([2, 4, 8, 50]) == 6 and p90([2, 4, 8, 50]) == 50
    assert p90(list(range(1, 11))) == 9 and p90(list(range(1, 12))) == 10


def test_dashboard_numbers_match_the_hand_computed_fixture(board_project):
    board = project_dashboard(board_project, now=NOW)
    assert board.weeks[-3:] == [moment(w, 0, 0).date() for w in (-2, -1, 0)]
    assert len(board.weeks) == 8
    lead = {t.week: t for t in board.lead_times}
    w2, w1, w0 = (lead[moment(w, 0, 0).date()] for w in (-2, -1, 0))
    # W-2: A cleared after 10h, promoted after 12h; B after 30h and 50h.
    assert (w2.requested, w2.cleared, w2.cleared_median, w2.cleared_p90) == (2, 2, 20.0, 30.0)
    assert (w2.promoted, w2.promoted_median, w2.promoted_p90) == (2, 31.0, 50.0)
    # W-1: E never cleared; C cleared 72h after its request (once the veto was lifted).
    assert (w1.requested, w1.cleared, w1.cleared_median, w1.cleared_p90) == (2, 1, 72.0, 72.0)
    assert (w1.promoted, w1.promoted_median) == (0, None)
    assert (w0.requested, w0.cleared, w0.cleared_median) == (1, 0, None)
    # Waits: security answered A after 10h, B 30h, C 5h (the veto), D still waiting 50h;
    # sme 4h, 2h, 8h and 50h. E was withdrawn unanswered: no wait counted.
    waits = {w.role: w for w in board.role_waits}
    assert (waits["security"].releases, waits["security"].still_waiting) == (4, 1)
    assert (waits["security"].median, waits["security"].p90) == (20.0, 50.0)
    assert (waits["sme"].releases, waits["sme"].still_waiting) == (4, 1)
    assert (waits["sme"].median, waits["sme"].p90) == (6.0, 50.0)
    # At the end of W-1 only C was in review: vetoed, and security missing (sme approved).
    # At NOW, C is cleared and D lacks both approvals.
    assert board.blockers == {
        "approval_missing": [0, 0, 0, 0, 0, 0, 1, 2],
        "veto": [0, 0, 0, 0, 0, 0, 1, 0],
    }
    vetoes = {v.week: (v.cast, v.lifted) for v in board.vetoes}
    assert vetoes[moment(-1, 0, 0).date()] == (1, 0)
    assert vetoes[moment(0, 0, 0).date()] == (0, 1)
    assert sum(cast + lifted for cast, lifted in vetoes.values()) == 2
    assert dict(board.checks_failed) == {
        "sbom_valid": 0,
        "vulnerabilities": 0,
        "licenses": 0,
        "pipeline_findings": 0,
        "data_flow": 0,
        "monitoring_coverage": 0,
        "least_privilege": 1,
    }
    running = {r.environment: r for r in board.running}
    assert running["production"].release is not None
    assert (running["production"].release.version, running["production"].state) == (
        "1.1.0",
        "cleared",
    )
    assert (running["staging"].release, running["staging"].state) == (None, "nothing")


def test_what_runs_where_says_when_the_running_release_is_vetoed(personas, board_project):
    from releasegate.releases.services import veto_cast

    running = Release.objects.get(project=board_project, version="1.1.0")
    veto_cast(release=running, actor=personas.actor("sme"), role="sme", reason="leaks PII")
    board = project_dashboard(board_project, now=NOW)
    (production,) = [r for r in board.running if r.environment == "production"]
    assert production.state == "vetoed"
    assert production.decision is not None
    assert production.decision.blockers[0].details["reason"] == "leaks PII"


@pytest.mark.parametrize("name", ["requester", "security", "sme", "admin", "auditor"])
def test_every_role_holder_sees_the_dashboard_with_a_table_beside_each_chart(
    client, personas, board_project, name
):
    signed_in(client, getattr(personas, name))
    page = text(client.get(f"/projects/{board_project.slug}/dashboard/"))
    assert page.count('<svg class="chart"') == 6
    for table in ("running", "lead-times", "role-waits", "blockers", "vetoes", "checks-failed"):
        assert f'id="{table}"' in page
    assert "<script>" not in page.split("</head>")[1]


def test_the_dashboard_is_a_404_for_an_outsider_and_asks_a_stranger_to_sign_in(
    client, personas, board_project
):
    assert client.get("/projects/support-assistant/dashboard/").status_code == 302
    signed_in(client, personas.outsider)
    assert client.get("/projects/support-assistant/dashboard/").status_code == 404
    assert client.get("/projects/no-such-project/dashboard/").status_code == 404
    assert "no dashboard to show" in text(client.get("/dashboard/"))


def test_the_project_page_and_the_nav_link_to_the_dashboard(client, personas):
    signed_in(client, personas.auditor)
    page = text(client.get("/projects/support-assistant/"))
    assert 'href="/projects/support-assistant/dashboard/"' in page
    assert 'href="/dashboard/"' in page
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"] == "/projects/support-assistant/dashboard/"


def _many_releases(personas: Any, count: int) -> None:
    actor = personas.actor("requester")
    for i in range(count):
        release = release_create(
            project=personas.project,
            actor=actor,
            version=f"0.{i}.0",
            artifact_digest=digest_of(f"many-{i}"),
            environment="production" if i % 2 else "staging",
        )
        if i % 3:
            release_submit(release=release, actor=actor)


@pytest.mark.parametrize("count", [10, 500])
def test_dashboard_query_count_does_not_grow_with_the_releases(
    client, personas, count, django_assert_num_queries
):
    _many_releases(personas, count)
    signed_in(client, personas.sme)
    # session, user, project, roles; releases, evidence, approvals, checks, vetoes; no release
    # promoted, so no live gate is asked.
    with django_assert_num_queries(9):
        assert client.get("/projects/support-assistant/dashboard/").status_code == 200


def test_dashboard_query_count_with_a_release_running_in_each_environment(
    client, personas, board_project, django_assert_num_queries
):
    signed_in(client, personas.sme)
    # The 9 above, then the promoted release's gate: it, and its 4 facts queries.
    with django_assert_num_queries(14):
        assert client.get("/projects/support-assistant/dashboard/").status_code == 200
