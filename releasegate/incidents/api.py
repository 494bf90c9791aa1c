"""API v1 for alerts, holds and break-glass (PRODUCT.md part two). Thin: parse, call, present."""

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from releasegate.api.base import ScopedAPIView
from releasegate.api.serializers import BodySerializer, ReasonSerializer
from releasegate.api.views import errors
from releasegate.errors import NotFound
from releasegate.incidents import selectors, services
from releasegate.incidents.models import BreakGlass, Hold
from releasegate.notifications.incidents import NO_SIGNAL
from releasegate.releases.identifiers import MAX_ID


def _iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def hold_dict(hold: Hold) -> dict[str, Any]:
    return {
        "id": hold.pk,
        "release_id": hold.release_id,
        "alert": hold.alert_name,
        "fingerprint": hold.fingerprint,
        "summary": hold.summary,
        "severity": hold.severity,
        "signal": hold.signal or NO_SIGNAL,
        "since": _iso(hold.since),
        "alert_status": hold.alert_status,
        "resolved_at": _iso(hold.resolved_at),
        "active": hold.is_active,
        "lifted_at": _iso(hold.lifted_at),
        "lifted_by": hold.lifted_by.get_username() if hold.lifted_by else None,
        "lift_reason": hold.lift_reason or None,
    }


def break_glass_dict(bg: BreakGlass) -> dict[str, Any]:
    now = timezone.now()
    return {
        "id": bg.pk,
        "release_id": bg.release_id,
        "state": services.break_glass_state(bg, now),
        "reason": bg.reason,
        "incident": bg.incident,
        "requested_by": bg.requested_by.get_username(),
        "requested_at": _iso(bg.requested_at),
        "confirm_by": _iso(bg.confirm_by),
        "confirmed_by": bg.confirmed_by.get_username() if bg.confirmed_by else None,
        "confirmed_at": _iso(bg.confirmed_at),
        "until": _iso(bg.until),
        "review_due": _iso(bg.review_due),
        "review_overdue": services.review_overdue(bg, now),
        "reviewed_by": bg.reviewed_by.get_username() if bg.reviewed_by else None,
        "reviewed_at": _iso(bg.reviewed_at),
        "review_summary": bg.review_summary or None,
    }


class AlertIntakeSerializer(BodySerializer):
    holds = serializers.ListField(child=serializers.DictField())
    unmatched = serializers.ListField(child=serializers.DictField())


class BreakGlassRequestSerializer(BodySerializer):
    reason = serializers.CharField()
    incident = serializers.CharField(max_length=200)


class BreakGlassReviewSerializer(BodySerializer):
    summary = serializers.CharField()


def _id(value: int, what: str) -> int:
    if value > MAX_ID:
        raise NotFound(f"No such {what} on this release.")
    return value


class AlertsView(ScopedAPIView):
    @extend_schema(
        operation_id="alerts_receive",
        summary="Alertmanager webhook (payload version 4): hold promoted releases",
        description=(
            "A firing alert whose labels name a promoted release of the project "
            "(`releasegate_digest`, or `releasegate_version` with `environment`) at a severity "
            "in the policy's `hold_severities` holds it. 202 when nothing matched (nothing "
            "changed). Service token with `alerts:write`."
        ),
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: AlertIntakeSerializer,
            202: OpenApiResponse(AlertIntakeSerializer, description="Nothing matched."),
            **errors(400, 401, 403, 404, 413, 415),
        },
        tags=["incidents"],
    )
    def post(self, request: Request, slug: str) -> Response:
        if len(slug) > 64 or "\x00" in slug:
            raise NotFound("No such project.")
        project = selectors.project_for_alerts(self.actor, slug)
        intake = services.alerts_receive(project=project, actor=self.actor, body=request.data)
        return Response(
            {"holds": intake.holds, "unmatched": intake.unmatched},
            status=status.HTTP_200_OK if intake.holds else status.HTTP_202_ACCEPTED,
        )


class HoldLiftView(ScopedAPIView):
    @extend_schema(
        operation_id="holds_lift",
        summary="Lift a hold, with a reason (security role, not the requester)",
        request=ReasonSerializer,
        responses={200: OpenApiTypes.OBJECT, **errors(400, 401, 403, 404, 409, 413, 415)},
        tags=["incidents"],
    )
    def post(self, request: Request, release_id: int, hold_id: int) -> Response:
        release = self.release(release_id)
        body = self.body_object()
        hold = selectors.hold_of(release, _id(hold_id, "hold"))
        lifted = services.hold_lift(hold=hold, actor=self.actor, reason=body.get("reason"))
        return Response(hold_dict(lifted))


class BreakGlassView(ScopedAPIView):
    @extend_schema(
        operation_id="break_glass_request",
        summary="Ask to break the glass (the requester or a project admin)",
        description="In force only once a security holder other than them confirms it within "
        "30 minutes.",
        request=BreakGlassRequestSerializer,
        responses={201: OpenApiTypes.OBJECT, **errors(400, 401, 403, 404, 409, 413, 415)},
        tags=["incidents"],
    )
    def post(self, request: Request, release_id: int) -> Response:
        release = self.release(release_id)
        body = self.body_object()
        bg = services.break_glass_request(
            release=release,
            actor=self.actor,
            reason=body.get("reason"),
            incident=body.get("incident"),
        )
        return Response(break_glass_dict(selectors.break_glass_of(release, bg.pk)), status=201)


class BreakGlassConfirmView(ScopedAPIView):
    @extend_schema(
        operation_id="break_glass_confirm",
        summary="Confirm a break-glass (security role; neither requester)",
        request=ReasonSerializer,
        responses={200: OpenApiTypes.OBJECT, **errors(400, 401, 403, 404, 409, 413, 415)},
        tags=["incidents"],
    )
    def post(self, request: Request, release_id: int, bg_id: int) -> Response:
        release = self.release(release_id)
        body = self.body_object()
        bg = selectors.break_glass_of(release, _id(bg_id, "break-glass"))
        services.break_glass_confirm(break_glass=bg, actor=self.actor, reason=body.get("reason"))
        return Response(break_glass_dict(selectors.break_glass_of(release, bg.pk)))


class BreakGlassReviewView(ScopedAPIView):
    @extend_schema(
        operation_id="break_glass_review",
        summary="File the post-incident review of a break-glass (security role)",
        request=BreakGlassReviewSerializer,
        responses={200: OpenApiTypes.OBJECT, **errors(400, 401, 403, 404, 409, 413, 415)},
        tags=["incidents"],
    )
    def post(self, request: Request, release_id: int, bg_id: int) -> Response:
        release = self.release(release_id)
        body = self.body_object()
        bg = selectors.break_glass_of(release, _id(bg_id, "break-glass"))
        services.break_glass_review(break_glass=bg, actor=self.actor, summary=body.get("summary"))
        return Response(break_glass_dict(selectors.break_glass_of(release, bg.pk)))
