"""API of the identity area: the OIDC exchange (no credential but the ID token itself) and a
project's trust policies (its admins, signed in; a token never sets who may mint tokens)."""

from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from releasegate.api.base import ScopedAPIView
from releasegate.api.parsers import BoundedJSONParser
from releasegate.api.serializers import ErrorSerializer
from releasegate.api.views import errors
from releasegate.errors import FieldError, InvalidInput, NotFound
from releasegate.identity import selectors
from releasegate.identity.models import TrustPolicy
from releasegate.identity.services import (
    oidc_exchange,
    parse_lifetime,
    trust_policy_add,
    trust_policy_remove,
)

_REFUSED = OpenApiResponse(
    ErrorSerializer,
    description=(
        "Refused; `code` is one of oidc_untrusted_issuer, oidc_invalid, oidc_expired, "
        "oidc_audience, oidc_no_policy, oidc_replayed. Nothing about any project is revealed."
    ),
)


def policy_dict(policy: TrustPolicy) -> dict[str, Any]:
    return {
        "id": policy.pk,
        "project": policy.project.slug,
        "issuer": policy.issuer,
        "audience": policy.audience,
        "claims": policy.claims,
        "scopes": policy.scopes,
        "lifetime_seconds": policy.lifetime_seconds,
        "created_by": policy.created_by.get_username() if policy.created_by else None,
        "created_at": policy.created_at,
    }


class ExchangeView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="oidc_exchange",
        summary="Exchange a CI system's OIDC ID token for a short-lived service token",
        request=inline_serializer(
            "OidcExchangeRequest",
            {"token": serializers.CharField(), "project": serializers.CharField(required=False)},
        ),
        responses={
            201: inline_serializer(
                "OidcExchangeResponse",
                {
                    "token": serializers.CharField(),
                    "expires_at": serializers.DateTimeField(),
                    "project": serializers.CharField(),
                    "scopes": serializers.ListField(child=serializers.CharField()),
                },
            ),
            **errors(400, 413, 415),
            401: _REFUSED,
            503: OpenApiResponse(ErrorSerializer, description="The issuer cannot be reached."),
        },
        auth=[],
        tags=["identity"],
    )
    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise InvalidInput(
                "The body must be a JSON object.",
                errors=[FieldError("(document)", "not an object")],
            )
        minted = oidc_exchange(raw=body.get("token"), project_slug=body.get("project"))
        return Response(
            {
                "token": minted.plaintext,
                "expires_at": minted.token.expires_at,
                "project": minted.policy.project.slug,
                "scopes": minted.scopes,
            },
            status=status.HTTP_201_CREATED,
            headers={"Cache-Control": "no-store"},
        )


class TrustPoliciesView(ScopedAPIView):
    @extend_schema(
        operation_id="trust_policies_list",
        summary="The project's trust policies in force",
        responses={200: OpenApiResponse(description="`{results: [...]}`"), **errors(401, 404)},
        tags=["identity"],
    )
    def get(self, request: Request, slug: str) -> Response:
        project = self.project(slug)
        found = [policy_dict(p) for p in selectors.trust_policies_of(project)]
        for item in found:
            item["project"] = project.slug
        return Response({"results": found})

    @extend_schema(
        operation_id="trust_policies_add",
        summary="Add a trust policy (project admin, signed in)",
        request=inline_serializer(
            "TrustPolicyRequest",
            {
                "issuer": serializers.CharField(),
                "audience": serializers.CharField(),
                "claims": serializers.DictField(child=serializers.CharField()),
                "scopes": serializers.ListField(child=serializers.CharField()),
                "lifetime": serializers.CharField(required=False, help_text="e.g. 10m"),
            },
        ),
        responses={
            201: OpenApiResponse(description="The policy."),
            **errors(400, 401, 403, 404, 413, 415),
        },
        tags=["identity"],
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project(slug)
        body = self.body_object()
        lifetime = body.get("lifetime", "10m")
        if not isinstance(lifetime, str):
            raise InvalidInput("Invalid lifetime.", errors=[FieldError("lifetime", "e.g. 10m")])
        policy = trust_policy_add(
            project=project,
            actor=self.actor,
            issuer=body.get("issuer"),
            audience=body.get("audience"),
            claims=body.get("claims"),
            scopes=body.get("scopes"),
            lifetime=parse_lifetime(lifetime),
        )
        return Response(policy_dict(policy), status=status.HTTP_201_CREATED)


class TrustPolicyView(ScopedAPIView):
    @extend_schema(
        operation_id="trust_policies_remove",
        summary="Remove a trust policy (project admin, signed in)",
        parameters=[OpenApiParameter("policy_id", int, OpenApiParameter.PATH)],
        responses={204: None, **errors(401, 403, 404)},
        tags=["identity"],
    )
    def delete(self, request: Request, slug: str, policy_id: str) -> Response:
        project = self.project(slug)
        # Any text is routed here, so a malformed id is this API's JSON 404 and never falls
        # through to a catch-all page.
        if not (policy_id.isascii() and policy_id.isdigit()):
            raise NotFound("No such trust policy.")
        policy = selectors.trust_policy_for(project, int(policy_id))
        if policy is None:
            raise NotFound("No such trust policy.")
        trust_policy_remove(policy=policy, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
