"""Reads: the gate's facts about holds and break-glass, and what the pages list."""

from django.db.models import Exists, OuterRef, Q, QuerySet

from releasegate.accounts.actors import Actor, Capability
from releasegate.errors import NotFound
from releasegate.incidents.models import BreakGlass, Hold
from releasegate.releases.gate import BreakGlassFact, HoldFact, ReviewDueFact
from releasegate.releases.models import Project, Release


def active_holds_of(release_id: int) -> QuerySet[Hold]:
    return Hold.objects.filter(release_id=release_id, lifted_at__isnull=True)


def incident_annotations() -> dict[str, Exists]:
    """Whether a release has active holds, and whether it or its project has break-glass facts:
    annotated on the release's own query, so the loaders below skip their query when there is
    nothing to read (the common case, e.g. every row of a page of releases)."""
    return {
        "has_active_holds": Exists(
            Hold.objects.filter(release_id=OuterRef("pk"), lifted_at__isnull=True)
        ),
        "has_break_glass_facts": Exists(
            BreakGlass.objects.filter(confirmed_at__isnull=False).filter(
                Q(release_id=OuterRef("pk"))
                | Q(project_id=OuterRef("project_id"), reviewed_at__isnull=True)
            )
        ),
    }


def hold_facts(release: Release) -> tuple[HoldFact, ...]:
    """The active holds on the release: one query, none when the release was loaded with
    `incident_annotations` saying it has none."""
    if not getattr(release, "has_active_holds", True):
        return ()
    return tuple(
        HoldFact(
            id=h.pk,
            alert_name=h.alert_name,
            summary=h.summary,
            severity=h.severity,
            signal=h.signal,
            since=h.since,
            alert_status=h.alert_status,
            resolved_at=h.resolved_at,
        )
        for h in active_holds_of(release.pk).order_by("since", "id")
    )


def break_glass_facts(
    release: Release,
) -> tuple[BreakGlassFact | None, tuple[ReviewDueFact, ...]]:
    """One query (none when `incident_annotations` says there is nothing): the release's latest
    confirmed break-glass, and every confirmed break-glass of its project whose review is not
    filed (the gate decides which are overdue)."""
    latest: BreakGlassFact | None = None
    if not getattr(release, "has_break_glass_facts", True):
        return latest, ()
    due: list[ReviewDueFact] = []
    rows = (
        BreakGlass.objects.filter(confirmed_at__isnull=False)
        .filter(
            Q(release_id=release.pk) | Q(project_id=release.project_id, reviewed_at__isnull=True)
        )
        .select_related("requested_by", "confirmed_by", "release")
        .order_by("confirmed_at", "id")
    )
    for bg in rows:
        assert bg.confirmed_by is not None and bg.confirmed_at is not None
        assert bg.until is not None and bg.review_due is not None
        if bg.release_id == release.pk:
            latest = BreakGlassFact(
                id=bg.pk,
                requested_by=bg.requested_by.get_username(),
                confirmed_by=bg.confirmed_by.get_username(),
                confirmed_at=bg.confirmed_at,
                until=bg.until,
            )
        if bg.project_id == release.project_id and bg.reviewed_at is None:
            due.append(
                ReviewDueFact(
                    break_glass_id=bg.pk,
                    release_id=bg.release_id,
                    version=bg.release.version,
                    due=bg.review_due,
                )
            )
    return latest, tuple(due)


def project_for_alerts(actor: Actor, slug: str) -> Project:
    """The project an alert notification names: visible to whoever may read it or report alerts
    to it (an alerts:write token reads nothing else); a 404 otherwise."""
    project = Project.objects.select_related("current_policy").filter(slug=slug).first()
    if project is None or not (
        actor.can(project, Capability.READ) or actor.can(project, Capability.REPORT_ALERT)
    ):
        raise NotFound("No such project.")
    return project


def hold_of(release: Release, hold_id: int) -> Hold:
    hold = Hold.objects.filter(pk=hold_id, release_id=release.pk).first()
    if hold is None:
        raise NotFound("No such hold on this release.")
    return hold


def break_glass_of(release: Release, break_glass_id: int) -> BreakGlass:
    bg = (
        BreakGlass.objects.filter(pk=break_glass_id, release_id=release.pk)
        .select_related("requested_by", "confirmed_by", "reviewed_by")
        .first()
    )
    if bg is None:
        raise NotFound("No such break-glass on this release.")
    return bg


def holds_for_page(release: Release) -> list[Hold]:
    return list(Hold.objects.filter(release_id=release.pk).select_related("lifted_by"))


def break_glasses_for_page(release: Release) -> list[BreakGlass]:
    return list(
        BreakGlass.objects.filter(release_id=release.pk).select_related(
            "requested_by", "confirmed_by", "reviewed_by"
        )
    )


def reviews_open_for(project_ids: list[int]) -> list[BreakGlass]:
    """Confirmed break-glasses of these projects whose post-incident review is not filed."""
    return list(
        BreakGlass.objects.filter(
            project_id__in=project_ids, confirmed_at__isnull=False, reviewed_at__isnull=True
        )
        .select_related("release", "project", "requested_by", "confirmed_by")
        .order_by("review_due", "id")
    )
