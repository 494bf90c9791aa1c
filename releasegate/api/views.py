"""API v1 (the CI contract, docs/api.md). Thin: parse, call a selector or service, present."""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    F,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from releasegate.accounts.actors import Actor
from releasegate.api import present
from releasegate.api import serializers as s
from releasegate.api.base import GATE_AUTHENTICATION, ScopedAPIView
from releasegate.api.errors import error_body
from releasegate.audit import selectors as audit_selectors
from releasegate.audit.selectors import may_read_project_trail
from releasegate.checks.services import check_result_record
from releasegate.checks.waivers import advisory_waive
from releasegate.errors import FieldError, InvalidInput, NotFound, NotPermitted
from releasegate.jsonvalue import JSONValue
from releasegate.releases import services
from releasegate.releases.identifiers import DIGEST_RE, ENVIRONMENT_RE, MAX_ID, SLUG_RE, VERSION_RE
from releasegate.releases.models import EvidenceKind, GovernanceChange, Project, Veto
from releasegate.releases.permissions import veto_through
from releasegate.releases.questions import GateQuestion

_ERROR_TEXT = {
    400: "Bad input; `errors` names the fields.",
    401: "No token, or a malformed, forged, expired or revoked one (`code` says which).",
    403: "The caller may see the release but lacks the role or scope for this act.",
    404: "Unknown, or not visible to the caller (never told apart).",
    409: "The act does not fit the release's current state.",
    413: "The body is larger than the server accepts.",
    415: "The body is not JSON.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(s.ErrorSerializer, description=_ERROR_TEXT[code]) for code in codes
    }


READ_ERRORS = (401, 404)
WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 415)


# No session-authenticated act happens here, so CSRF has nothing to protect: without the exemption
# a POST to an unknown path would be answered by the CSRF failure page (HTML 403), not a 404.
@csrf_exempt
def unknown_path(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)


# The fields of `GateQuerySerializer`; each pattern bounds its field's length too.
_GATE_QUERY_PATTERNS = {
    "project": SLUG_RE,
    "version": VERSION_RE,
    "digest": DIGEST_RE,
    "environment": ENVIRONMENT_RE,
}


def plain_gate_query(query: Mapping[str, str]) -> dict[str, str] | None:
    """The gate's query when it is plainly valid (the common case, read without building a
    serializer on the hot path); None for anything else, which `GateQuerySerializer` then
    validates and words the errors for, as it always has."""
    params: dict[str, str] = {}
    for name, pattern in _GATE_QUERY_PATTERNS.items():
        value = query.get(name)
        if value is None:
            continue
        if pattern.fullmatch(value) is None:
            return None
        params[name] = value
    if "digest" in params:
        return None if "version" in params else params
    return params if "project" in params and "version" in params else None


class GateView(ScopedAPIView):
    authentication_classes = GATE_AUTHENTICATION

    @extend_schema(
        operation_id="gate",
        summary="Is this release cleared?",
        description=(
            "By project and version, or by artifact digest. A digest may belong to several "
            "releases: the answer is for the newest one the caller can see, optionally narrowed "
            "to one project with `project`."
        ),
        parameters=[s.GateQuerySerializer],
        responses={200: s.GateDecisionSerializer, **errors(400, *READ_ERRORS)},
        tags=["gate"],
    )
    def get(self, request: Request) -> Response:
        params = plain_gate_query(request.query_params)
        if params is None:
            query = s.GateQuerySerializer(data=request.query_params)
            query.is_valid(raise_exception=True)
            params = query.validated_data
        decision = self.gate_decision(GateQuestion.of_gate_query(params))
        return Response(decision.as_dict())


class ReleaseGateView(ScopedAPIView):
    authentication_classes = GATE_AUTHENTICATION

    @extend_schema(
        operation_id="release_gate",
        summary="Is this release cleared? (by id)",
        parameters=[s.EnvironmentQuerySerializer],
        responses={200: s.GateDecisionSerializer, **errors(400, *READ_ERRORS)},
        tags=["gate"],
    )
    def get(self, request: Request, release_id: int) -> Response:
        environment = request.query_params.get("environment")
        if environment is not None and ENVIRONMENT_RE.fullmatch(environment) is None:
            query = s.EnvironmentQuerySerializer(data=request.query_params)
            query.is_valid(raise_exception=True)
        if release_id > MAX_ID:
            raise NotFound("No such release.")
        decision = self.gate_decision(GateQuestion(release_id=release_id, environment=environment))
        return Response(decision.as_dict())


class ReleasesView(ScopedAPIView):
    @extend_schema(
        operation_id="releases_list",
        summary="Releases the caller can see, newest first (at most 200)",
        parameters=[s.ReleaseListQuerySerializer],
        responses={200: s.ReleaseListSerializer, **errors(400, 401)},
        tags=["releases"],
    )
    def get(self, request: Request) -> Response:
        query = s.ReleaseListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        releases = self.visible_releases().select_related("requester")
        if "project" in params:
            releases = releases.filter(project__slug=params["project"])
        if "state" in params:
            releases = releases.filter(state=params["state"])
        if "version" in params:
            releases = releases.filter(version=params["version"])
        found = list(releases.order_by("-created_at", "-id")[:200])
        return Response({"count": len(found), "results": [present.release_dict(r) for r in found]})

    @extend_schema(
        operation_id="releases_create",
        summary="Create a release (draft)",
        request=s.ReleaseCreateSerializer,
        responses={201: s.ReleaseSerializer, **errors(400, 401, 403, 409, 413, 415)},
        tags=["releases"],
    )
    def post(self, request: Request) -> Response:
        body = self.body_object()
        slug = body.get("project")
        try:
            if not isinstance(slug, str):
                raise NotFound()
            project = self.project(slug)
        except NotFound:
            raise InvalidInput(
                "Unknown project.", errors=[FieldError("project", "no such project")]
            ) from None
        release = services.release_create(
            project=project,
            actor=self.actor,
            version=body.get("version"),
            artifact_digest=body.get("artifact_digest"),
            environment=body.get("environment", "production"),
            summary=body.get("summary", ""),
        )
        return Response(present.release_dict(release), status=status.HTTP_201_CREATED)


class ReleaseDetailView(ScopedAPIView):
    @extend_schema(
        operation_id="releases_read",
        summary="A release with its evidence, checks, sign-offs and vetoes",
        responses={200: s.ReleaseDetailSerializer, **errors(*READ_ERRORS)},
        tags=["releases"],
    )
    def get(self, request: Request, release_id: int) -> Response:
        return Response(present.release_detail_dict(self.release(release_id)))


class EvidenceView(ScopedAPIView):
    @extend_schema(
        operation_id="evidence_put",
        summary="Attach or replace one checklist item's evidence",
        description="The body is the JSON document itself (docs/evidence.md shows each kind).",
        parameters=[
            OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=EvidenceKind.values),
        ],
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: s.EvidenceAttachedSerializer, **errors(*WRITE_ERRORS)},
        tags=["releases"],
    )
    def put(self, request: Request, release_id: int, kind: str) -> Response:
        release = self.release(release_id)
        evidence = services.evidence_attach(
            release=release, actor=self.actor, kind=kind, document=request.data
        )
        return Response(
            {**present.evidence_dict(evidence), "manifest_digest": release.manifest_digest}
        )


class SubmitView(ScopedAPIView):
    @extend_schema(
        operation_id="releases_submit",
        summary="Request review (draft to in_review)",
        request=None,
        responses={200: s.ReleaseSerializer, **errors(*WRITE_ERRORS)},
        tags=["releases"],
    )
    def post(self, request: Request, release_id: int) -> Response:
        release = services.release_submit(release=self.release(release_id), actor=self.actor)
        return Response(present.release_dict(release))


class SignoffsView(ScopedAPIView):
    @extend_schema(
        operation_id="signoffs_create",
        summary="Approve, or veto with a reason",
        description=(
            "A veto carries forward to later releases of the project and environment and to the "
            "same artifact unless `scope` is `release`."
        ),
        request=s.SignoffRequestSerializer,
        responses={
            201: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="Signoff",
                    serializers={"approve": s.ApprovalSerializer, "veto": s.VetoSerializer},
                    resource_type_field_name="decision",
                ),
                description="The approval, or the veto.",
            ),
            **errors(*WRITE_ERRORS),
        },
        tags=["sign-offs"],
    )
    def post(self, request: Request, release_id: int) -> Response:
        release = self.release(release_id)
        body = self.body_object()
        decision = body.get("decision")
        if decision == "approve":
            approval = services.approval_give(
                release=release,
                actor=self.actor,
                role=body.get("role"),
                comment=body.get("reason", ""),
            )
            answer = present.approval_dict(approval, approval.manifest_digest)
        elif decision == "veto":
            veto = services.veto_cast(
                release=release,
                actor=self.actor,
                role=body.get("role"),
                reason=body.get("reason"),
                scope=body.get("scope", Veto.Scope.CARRY_FORWARD),
            )
            answer = present.veto_dict(veto)
        else:
            raise InvalidInput(
                "Unknown decision.", errors=[FieldError("decision", "approve or veto")]
            )
        return Response(answer, status=status.HTTP_201_CREATED)


class VetoLiftView(ScopedAPIView):
    @extend_schema(
        operation_id="vetoes_lift",
        summary="Lift a veto, with a reason",
        description=(
            "The veto is one cast on this release or one that blocks it (carried forward). Only a "
            "holder of the vetoing role, never the requester."
        ),
        request=s.ReasonSerializer,
        responses={200: s.VetoSerializer, **errors(*WRITE_ERRORS)},
        tags=["sign-offs"],
    )
    def post(self, request: Request, release_id: int, veto_id: int) -> Response:
        release = self.release(release_id)
        body = self.body_object()
        veto = veto_through(self.actor, release, veto_id)
        lifted = services.veto_lift(veto=veto, actor=self.actor, reason=body.get("reason"))
        return Response(present.veto_dict(lifted))


class ChecksView(ScopedAPIView):
    @extend_schema(
        operation_id="checks_report",
        summary="Report a check result (idempotent on external_id)",
        request=s.CheckReportSerializer,
        responses={
            200: OpenApiResponse(
                s.CheckResultSerializer, description="Updated (same external_id)."
            ),
            201: OpenApiResponse(s.CheckResultSerializer, description="Recorded."),
            **errors(*WRITE_ERRORS),
        },
        tags=["checks"],
    )
    def post(self, request: Request, release_id: int) -> Response:
        release = self.release(release_id)
        body = self.body_object()
        result, created = check_result_record(
            release=release,
            actor=self.actor,
            check=body.get("check"),
            status=body.get("status"),
            external_id=body.get("external_id", ""),
            summary=body.get("summary", ""),
            details_url=body.get("details_url", ""),
        )
        return Response(
            present.check_dict(result, result.manifest_digest),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class PromoteView(ScopedAPIView):
    @extend_schema(
        operation_id="releases_promote",
        summary="Promote to production if the gate clears it at this instant",
        request=None,
        responses={
            200: s.PromotionSerializer,
            409: OpenApiResponse(
                s.BlockedErrorSerializer,
                description="Not cleared (`code` blocked, with `blockers`), or promoted already.",
            ),
            **errors(401, 403, 404, 413, 415),
        },
        tags=["releases"],
    )
    def post(self, request: Request, release_id: int) -> Response:
        release, decision = services.release_promote(
            release=self.release(release_id), actor=self.actor
        )
        return Response({"release": present.release_dict(release), "decision": decision.as_dict()})


class AuditView(ScopedAPIView):
    @extend_schema(
        operation_id="releases_audit",
        summary="The release's audit trail, as one JSON document",
        description="Each event carries every field its hash covers; `proof` holds the entry "
        "hashes of its chain from the first event to the head, so the trail can be checked "
        "against a signed checkpoint (docs/audit.md).",
        responses={200: s.AuditTrailSerializer, **errors(*READ_ERRORS)},
        tags=["audit"],
    )
    def get(self, request: Request, release_id: int) -> Response:
        return Response(present.audit_trail_dict(self.release(release_id)))


def _page_size(value: str | None) -> int:
    if value is None:
        return audit_selectors.PROJECT_TRAIL_PAGE
    if not value.isdecimal() or not 1 <= int(value) <= audit_selectors.PROJECT_TRAIL_MAX_PAGE:
        raise InvalidInput(
            "Invalid page size.",
            errors=[
                FieldError("limit", f"a whole number 1-{audit_selectors.PROJECT_TRAIL_MAX_PAGE}")
            ],
        )
    return int(value)


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdecimal() or not 1 <= int(value) <= MAX_ID:
        raise InvalidInput(
            "Invalid cursor.", errors=[FieldError("before", "an event seq from `next`")]
        )
    return int(value)


def _action(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > 64 or not value.isascii() or not value.isprintable():
        raise InvalidInput(
            "Invalid action.", errors=[FieldError("action", "an event action, e.g. role_granted")]
        )
    return value


class ProjectAuditView(ScopedAPIView):
    @extend_schema(
        operation_id="projects_audit",
        summary="The project's own audit events (those of no release), newest first",
        description="Auditors and admins of the project. `next` is the URL of the next page, "
        "null on the last one.",
        parameters=[
            OpenApiParameter("action", str, description="only events with this action"),
            OpenApiParameter(
                "limit",
                int,
                description=f"events per page, default {audit_selectors.PROJECT_TRAIL_PAGE}, "
                f"at most {audit_selectors.PROJECT_TRAIL_MAX_PAGE}",
            ),
            OpenApiParameter("before", int, description="the cursor `next` carries"),
        ],
        responses={200: s.ProjectAuditTrailSerializer, **errors(400, 401, 403, 404)},
        tags=["audit"],
    )
    def get(self, request: Request, slug: str) -> Response:
        project = self.project(slug)
        if not may_read_project_trail(self.actor, project):
            raise NotPermitted("Only the project's auditors and admins read its audit trail.")
        query = request.query_params
        limit = _page_size(query.get("limit"))
        action = _action(query.get("action"))
        events = audit_selectors.project_events(
            project, action=action, before=_cursor(query.get("before")), limit=limit + 1
        )
        more = len(events) > limit
        events = events[:limit]
        next_url = None
        if more:
            params = {"before": str(events[-1].seq), "limit": str(limit)}
            if action is not None:
                params["action"] = action
            next_url = request.build_absolute_uri(f"{request.path}?{urlencode(params)}")
        return Response(
            {
                "project": project.slug,
                "events": [present.audit_event_dict(e) for e in events],
                "next": next_url,
            }
        )


def _moment(value: JSONValue) -> datetime | JSONValue:
    """An ISO 8601 date and time as a datetime; anything else is passed on for the service to
    name as the wrong field."""
    if not isinstance(value, str):
        return value
    try:
        return parse_datetime(value) or value
    except ValueError:
        return value


class WaiversView(ScopedAPIView):
    @extend_schema(
        operation_id="waivers_create",
        summary="Waive one advisory for this project until a date (security role)",
        request=s.WaiverRequestSerializer,
        responses={201: s.WaiverSerializer, **errors(400, 401, 403, 404, 413, 415)},
        tags=["checks"],
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project(slug)
        body = self.body_object()
        waiver = advisory_waive(
            project=project,
            actor=self.actor,
            advisory_id=body.get("advisory_id"),
            reason=body.get("reason"),
            expires_at=_moment(body.get("expires_at")),
        )
        return Response(present.waiver_dict(waiver, project), status=status.HTTP_201_CREATED)


class WithdrawView(ScopedAPIView):
    @extend_schema(
        operation_id="releases_withdraw",
        summary="Withdraw a draft or a release in review, with a reason",
        description="By the release's requester or a project admin; never a service token.",
        request=s.ReasonSerializer,
        responses={200: s.ReleaseSerializer, **errors(*WRITE_ERRORS)},
        tags=["releases"],
    )
    def post(self, request: Request, release_id: int) -> Response:
        release = self.release(release_id)
        body = self.body_object()
        withdrawn = services.release_withdraw(
            release=release, actor=self.actor, reason=body.get("reason")
        )
        return Response(present.release_dict(withdrawn))


def _governance_changes(project: Project) -> QuerySet[GovernanceChange]:
    return GovernanceChange.objects.filter(project=project).select_related(
        "project", "requested_by", "subject", "decided_by"
    )


class GovernanceRequestsView(ScopedAPIView):
    @extend_schema(
        operation_id="governance_requests_list",
        summary="The project's governance requests waiting for confirmation",
        description=(
            "Policy changes that loosen the gate, grants or revocations of guarded roles, and "
            "IdP group mappings of guarded roles (or their removal), oldest first, each with "
            "whether the caller may confirm or cancel it."
        ),
        responses={200: s.GovernanceChangeListSerializer, **errors(*READ_ERRORS)},
        tags=["governance"],
    )
    def get(self, request: Request, slug: str) -> Response:
        project = self.project(slug)
        pending = _governance_changes(project).filter(status=GovernanceChange.Status.PENDING)
        return Response(
            {
                "results": [
                    present.governance_change_dict(c, self.actor)
                    for c in pending.order_by("requested_at", "id")
                ]
            }
        )


class GovernanceDecision(Protocol):
    """`governance_change_confirm`, `_reject` or `_cancel`."""

    def __call__(
        self, *, change: GovernanceChange, actor: Actor, reason: JSONValue = ""
    ) -> GovernanceChange: ...


class _GovernanceDecisionView(ScopedAPIView):
    """Confirm (and apply), reject or cancel one pending request; who may is the service's call."""

    def decide(self, slug: str, change_id: int, service: GovernanceDecision) -> Response:
        project = self.project(slug)
        change = (
            _governance_changes(project).filter(pk=change_id).first()
            if change_id <= MAX_ID
            else None
        )
        if change is None:
            raise NotFound("No such request in this project.")
        body = self.body_object()
        decided = service(change=change, actor=self.actor, reason=body.get("reason", ""))
        return Response(present.governance_change_dict(decided, self.actor))


def _decision_schema(act: str, summary: str, request: type[s.BodySerializer]) -> Callable[[F], F]:
    return extend_schema(
        operation_id=f"governance_requests_{act}",
        summary=summary,
        request=request,
        responses={200: s.GovernanceChangeSerializer, **errors(*WRITE_ERRORS)},
        tags=["governance"],
    )


class GovernanceConfirmView(_GovernanceDecisionView):
    @_decision_schema(
        "confirm",
        "Confirm and apply a request: a holder of its guarding role other than its author",
        s.OptionalReasonSerializer,
    )
    def post(self, request: Request, slug: str, change_id: int) -> Response:
        return self.decide(slug, change_id, services.governance_change_confirm)


class GovernanceRejectView(_GovernanceDecisionView):
    @_decision_schema(
        "reject", "Reject a request, with a reason: whoever may confirm it", s.ReasonSerializer
    )
    def post(self, request: Request, slug: str, change_id: int) -> Response:
        return self.decide(slug, change_id, services.governance_change_reject)


class GovernanceCancelView(_GovernanceDecisionView):
    @_decision_schema("cancel", "Cancel one's own pending request", s.OptionalReasonSerializer)
    def post(self, request: Request, slug: str, change_id: int) -> Response:
        return self.decide(slug, change_id, services.governance_change_cancel)
