"""API of the identity area: the OIDC exchange (no credential but the ID token itself), a
project's trust policies (its admins, signed in; a token never sets who may mint tokens) and its
IdP group mappings (its admins, signed in)."""

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
from releasegate.api.present import governance_change_dict
from releasegate.api.serializers import ErrorSerializer
from releasegate.api.views import errors
from releasegate.errors import FieldError, InvalidInput, NotFound
from releasegate.identity import selectors
from releasegate.identity.models import GroupMapping, TrustPolicy
from releasegate.identity.services import (
    group_mapping_add,
    group_mapping_remove,
    oidc_exchange,
    parse_lifetime,
    trust_policy_add,
    trust_policy_remove,
)
from releasegate.releases.models import GovernanceChange

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


def mapping_dict(mapping: GroupMapping) -> dict[str, Any]:
    return {
        "id": mapping.pk,
        "project": mapping.project.slug,
        "group": mapping.group,
        "role": mapping.role,
        "created_by": mapping.created_by.get_username(),
        "created_at": mapping.created_at,
        "confirmed_by": mapping.confirmed_by.get_username() if mapping.confirmed_by else None,
        "in_force_since": mapping.in_force_since,
    }


def _made(made: GroupMapping | GovernanceChange | None, actor: Any) -> Response:
    """201 with the mapping in force, 202 with the governance request that waits, 204 when a
    removal took effect."""
    if isinstance(made, GroupMapping):
        return Response(mapping_dict(made), status=status.HTTP_201_CREATED)
    if isinstance(made, GovernanceChange):
        return Response(
            {"request": governance_change_dict(made, actor)}, status=status.HTTP_202_ACCEPTED
        )
    return Response(status=status.HTTP_204_NO_CONTENT)


class GroupMappingsView(ScopedAPIView):
    @extend_schema(
        operation_id="group_mappings_list",
        summary="The project's IdP group mappings in force",
        responses={200: OpenApiResponse(description="`{results: [...]}`"), **errors(401, 404)},
        tags=["identity"],
    )
    def get(self, request: Request, slug: str) -> Response:
        project = self.project(slug)
        found = [mapping_dict(m) for m in selectors.group_mappings_of(project)]
        for item in found:
            item["project"] = project.slug
        return Response({"results": found})

    @extend_schema(
        operation_id="group_mappings_add",
        summary="Map an IdP group to a project role (project admin, signed in)",
        description=(
            "201 with the mapping when it is in force at once; 202 with the governance request "
            "when the role is guarded and a holder of it must confirm (see governance-requests)."
        ),
        request=inline_serializer(
            "GroupMappingRequest",
            {"group": serializers.CharField(), "role": serializers.CharField()},
        ),
        responses={
            201: OpenApiResponse(description="The mapping, in force."),
            202: OpenApiResponse(description="`{request: …}`: it waits for confirmation."),
            **errors(400, 401, 403, 404, 409, 413, 415),
        },
        tags=["identity"],
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project(slug)
        body = self.body_object()
        made = group_mapping_add(
            project=project, actor=self.actor, group=body.get("group"), role=body.get("role")
        )
        return _made(made, self.actor)


class GroupMappingView(ScopedAPIView):
    @extend_schema(
        operation_id="group_mappings_remove",
        summary="Remove an IdP group mapping (project admin, signed in)",
        description=(
            "204 when removed (the roles it gave are revoked at once); 202 with the governance "
            "request when the role is guarded and a holder of it must confirm."
        ),
        parameters=[OpenApiParameter("mapping_id", int, OpenApiParameter.PATH)],
        responses={
            202: OpenApiResponse(description="`{request: …}`: it waits for confirmation."),
            204: None,
            **errors(401, 403, 404, 409),
        },
        tags=["identity"],
    )
    def delete(self, request: Request, slug: str, mapping_id: str) -> Response:
        project = self.project(slug)
        if not (mapping_id.isascii() and mapping_id.isdigit()):
            raise NotFound("No such group mapping.")
        mapping = selectors.group_mapping_for(project, int(mapping_id))
        if mapping is None:
            raise NotFound("No such group mapping.")
        return _made(group_mapping_remove(mapping=mapping, actor=self.actor), self.actor)
