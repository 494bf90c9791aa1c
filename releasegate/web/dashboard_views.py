"""The project dashboard page: charts of how the gate is doing, each with its numbers beside it."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from releasegate.releases.models import Project
from releasegate.web.charts import Series, bar_chart
from releasegate.web.dashboard import project_dashboard, projects_at_a_glance
from releasegate.web.views import actor_of, project_view


@require_GET
@project_view
def dashboard_page(request: HttpRequest, project: Project) -> HttpResponse:
    board = project_dashboard(project)
    weeks = [w.strftime("%b %d") for w in board.weeks]
    lead = board.lead_times
    charts = {
        "cleared": bar_chart(
            chart_id="chart-cleared",
            title="Hours from request to cleared, per week requested",
            categories=weeks,
            series=[
                Series("median", [t.cleared_median for t in lead]),
                Series("p90", [t.cleared_p90 for t in lead]),
            ],
            unit="hours",
        ),
        "promoted": bar_chart(
            chart_id="chart-promoted",
            title="Hours from request to promoted, per week requested",
            categories=weeks,
            series=[
                Series("median", [t.promoted_median for t in lead]),
                Series("p90", [t.promoted_p90 for t in lead]),
            ],
            unit="hours",
        ),
        "roles": bar_chart(
            chart_id="chart-roles",
            title="Hours waiting on each role",
            categories=[w.role for w in board.role_waits],
            series=[
                Series("median", [w.median for w in board.role_waits]),
                Series("p90", [w.p90 for w in board.role_waits]),
            ],
            unit="hours",
        ),
        "blockers": bar_chart(
            chart_id="chart-blockers",
            title="Blockers of the releases in review at the end of each week, by code",
            categories=weeks,
            series=[Series(code, board.blockers[code]) for code in board.blocker_codes],
            unit="blockers",
            stacked=True,
        ),
        "vetoes": bar_chart(
            chart_id="chart-vetoes",
            title="Vetoes cast and lifted per week",
            categories=weeks,
            series=[
                Series("cast", [v.cast for v in board.vetoes]),
                Series("lifted", [v.lifted for v in board.vetoes]),
            ],
            unit="vetoes",
        ),
        "checks": bar_chart(
            chart_id="chart-checks",
            title="Releases on which each check failed",
            categories=[name.replace("_", " ") for name, _ in board.checks_failed],
            series=[Series("releases", [n for _, n in board.checks_failed])],
            unit="releases",
        ),
    }
    blocker_rows = [
        (week, [board.blockers[code][i] for code in board.blocker_codes])
        for i, week in enumerate(weeks)
    ]
    return render(
        request,
        "web/dashboard.html",
        {
            "project": project,
            "board": board,
            "charts": charts,
            "lead_rows": list(zip(weeks, lead, strict=True)),
            "veto_rows": list(zip(weeks, board.vetoes, strict=True)),
            "blocker_rows": blocker_rows,
            # The codes are identifiers; spaced, a narrow table column can wrap them.
            "blocker_labels": [code.replace("_", " ") for code in board.blocker_codes],
        },
    )


@login_required
@require_GET
def dashboards(request: HttpRequest) -> HttpResponse:
    """The nav's Dashboard: straight to it with one project, else the choice of projects."""
    glances = projects_at_a_glance(actor_of(request))
    if len(glances) == 1:
        return redirect("web:dashboard", slug=glances[0].project.slug)
    return render(request, "web/dashboards.html", {"glances": glances})
