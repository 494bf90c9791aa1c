"""What the release page and "Waiting on me" show and offer about holds and break-glass. The
services decide; the `may_*` functions of releasegate.incidents.services say what to offer."""

from dataclasses import dataclass, field
from datetime import datetime

from django import forms
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from guardian.models import UserObjectPermission

from releasegate.accounts.actors import Actor
from releasegate.accounts.roles import Role, permission_codename
from releasegate.incidents import selectors, services
from releasegate.incidents.models import BreakGlass, Hold
from releasegate.releases.models import Project, Release


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason (required)", widget=forms.Textarea(attrs={"rows": 2}), max_length=5000
    )


class BreakGlassForm(forms.Form):
    incident = forms.CharField(label="Incident (ticket or page id)", max_length=200)
    reason = forms.CharField(
        label="Why this cannot wait (required)",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=5000,
    )


class ReviewForm(forms.Form):
    summary = forms.CharField(
        label="Post-incident review (required)",
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=5000,
    )


@dataclass
class BreakGlassRow:
    bg: BreakGlass
    state: str
    overdue: bool
    deadline: datetime | None  # what the countdown counts to: confirm_by, or until
    can_confirm: bool = False
    can_review: bool = False


@dataclass
class IncidentPanel:
    holds: list[Hold]
    liftable: set[int]
    break_glasses: list[BreakGlassRow]
    can_request: bool
    request_form: BreakGlassForm = field(default_factory=lambda: BreakGlassForm(auto_id="bg_%s"))


def incident_panel(actor: Actor, release: Release) -> IncidentPanel:
    """What the release page shows and offers about holds and break-glass (two queries)."""
    now = timezone.now()
    holds = selectors.holds_for_page(release)
    rows = []
    open_one = False
    for bg in selectors.break_glasses_for_page(release):
        state = services.break_glass_state(bg, now)
        open_one = open_one or state in {"pending", "active"}
        rows.append(
            BreakGlassRow(
                bg=bg,
                state=state,
                overdue=services.review_overdue(bg, now),
                deadline=bg.confirm_by if state == "pending" else bg.until,
                can_confirm=state == "pending"
                and services.may_confirm_break_glass(actor, bg, release) is None,
                can_review=bg.confirmed_at is not None
                and bg.reviewed_at is None
                and services.may_review_break_glass(actor, bg, release) is None,
            )
        )
    may_lift = services.may_lift_hold(actor, release) is None
    return IncidentPanel(
        holds=holds,
        liftable={h.pk for h in holds if h.is_active and may_lift},
        break_glasses=rows,
        can_request=release.state == Release.State.IN_REVIEW
        and not open_one
        and services.may_request_break_glass(actor, release) is None,
    )


@dataclass
class ReviewDue:
    bg: BreakGlass
    overdue: bool


def reviews_due_for(actor: Actor) -> list[ReviewDue]:
    """Post-incident reviews a security holder may file, overdue first."""
    person = actor.person
    if person is None:
        return []
    now = timezone.now()
    security = [
        int(pk)
        for pk in UserObjectPermission.objects.filter(
            user_id=person.pk,
            content_type=ContentType.objects.get_for_model(Project),
            permission__codename=permission_codename(Role.SECURITY),
        ).values_list("object_pk", flat=True)
    ]
    due = [
        ReviewDue(bg=bg, overdue=services.review_overdue(bg, now))
        for bg in selectors.reviews_open_for(security)
        if services.may_review_break_glass(actor, bg, bg.release) is None
    ]
    return sorted(due, key=lambda d: (not d.overdue, d.bg.review_due or now))
