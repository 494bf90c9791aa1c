"""The acts of the release page's hold and break-glass panel: a confirmation page (GET) or the act
(POST) for each, calling one service."""

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from releasegate.errors import InvalidInput, ReleasegateError
from releasegate.incidents import selectors, services
from releasegate.incidents.models import BreakGlass
from releasegate.notifications.incidents import NO_SIGNAL
from releasegate.releases.models import Release
from releasegate.web.forms import apply_errors
from releasegate.web.incident_panel import BreakGlassForm, ReasonForm, ReviewForm
from releasegate.web.views import _refused, actor_of, release_view


def _back(release: Release) -> str:
    return reverse("web:release", args=[release.pk]) + "#incidents-h"


@release_view
@require_POST
def break_glass_request_view(request: HttpRequest, release: Release) -> HttpResponse:
    form = BreakGlassForm(request.POST)
    back = _back(release)
    if not form.is_valid():
        messages.error(request, "Name the incident and say why it cannot wait.")
        return redirect(back)
    try:
        services.break_glass_request(
            release=release,
            actor=actor_of(request),
            reason=form.cleaned_data["reason"],
            incident=form.cleaned_data["incident"],
        )
    except ReleasegateError as error:
        return _refused(request, error, back)
    messages.success(
        request, "Break-glass requested: a security holder must confirm it within 30 minutes."
    )
    return redirect(back)


def _act(
    request: HttpRequest,
    release: Release,
    *,
    template: str,
    form: forms.Form,
    context: dict[str, Any],
    act: Any,
    done: str,
) -> HttpResponse:
    """A confirmation page (GET) or its act (POST), the same for every act of the panel."""
    if request.method == "POST" and form.is_valid():
        try:
            act(form.cleaned_data)
        except InvalidInput as error:
            apply_errors(error, form)
        except ReleasegateError as error:
            return _refused(request, error, _back(release))
        else:
            messages.success(request, done)
            return redirect(_back(release))
    return render(
        request,
        template,
        {"release": release, "form": form, **context},
        status=400 if form.errors else 200,
    )


def _break_glass(release: Release, bg_id: int) -> BreakGlass:
    try:
        return selectors.break_glass_of(release, bg_id)
    except ReleasegateError:
        raise Http404("No such break-glass.") from None


@release_view
@require_http_methods(["GET", "POST"])
def break_glass_confirm_view(request: HttpRequest, release: Release, bg_id: int) -> HttpResponse:
    bg = _break_glass(release, bg_id)
    actor = actor_of(request)
    return _act(
        request,
        release,
        template="web/incidents/confirm.html",
        form=ReasonForm(request.POST or None),
        context={"bg": bg},
        act=lambda data: services.break_glass_confirm(
            break_glass=bg, actor=actor, reason=data["reason"]
        ),
        done="Break-glass confirmed: the gate sets aside approvals and checks for its hours.",
    )


@release_view
@require_http_methods(["GET", "POST"])
def break_glass_review_view(request: HttpRequest, release: Release, bg_id: int) -> HttpResponse:
    bg = _break_glass(release, bg_id)
    actor = actor_of(request)
    return _act(
        request,
        release,
        template="web/incidents/review.html",
        form=ReviewForm(request.POST or None),
        context={"bg": bg},
        act=lambda data: services.break_glass_review(
            break_glass=bg, actor=actor, summary=data["summary"]
        ),
        done="Post-incident review filed.",
    )


@release_view
@require_http_methods(["GET", "POST"])
def hold_lift_view(request: HttpRequest, release: Release, hold_id: int) -> HttpResponse:
    try:
        hold = selectors.hold_of(release, hold_id)
    except ReleasegateError:
        raise Http404("No such hold.") from None
    actor = actor_of(request)
    return _act(
        request,
        release,
        template="web/incidents/lift.html",
        form=ReasonForm(request.POST or None),
        context={"hold": hold, "no_signal": NO_SIGNAL},
        act=lambda data: services.hold_lift(hold=hold, actor=actor, reason=data["reason"]),
        done="Hold lifted.",
    )
