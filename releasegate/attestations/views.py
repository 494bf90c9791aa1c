"""API v1 for attestations and admission (PRODUCT.md part two). Thin, as api/views.py."""

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from releasegate.api.base import ScopedAPIView
from releasegate.api.views import errors
from releasegate.attestations import admission
from releasegate.attestations.selectors import release_for_attestation, revocations_visible_to
from releasegate.attestations.services import attestation_issue
from releasegate.attestations.statement import REVOCATIONS_PAYLOAD_TYPE, iso
from releasegate.errors import NotFound
from releasegate.releases.evidence import canonical_json
from releasegate.releases.identifiers import MAX_ID
from releasegate.signing import keys
from releasegate.signing.dsse import sign_envelope

_ENVELOPE = OpenApiResponse(OpenApiTypes.OBJECT, description="A DSSE envelope.")


class SigningKeysView(APIView):
    """Public keys are public: verifiers (Kyverno, cosign, `releasegate verify`) fetch them
    without a credential."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="attestation_keys",
        summary="The public keys attestations are signed with (active and retired), PEM and JWK",
        responses={200: OpenApiTypes.OBJECT},
        tags=["attestations"],
    )
    def get(self, request: Request) -> Response:
        listed = [
            {"keyid": k.keyid, "status": k.status, "pem": k.pem, "jwk": k.as_jwk()}
            for k in keys.public_keys()
        ]
        return Response({"keys": listed})


class ReleaseAttestationView(ScopedAPIView):
    @extend_schema(
        operation_id="release_attestation",
        summary="A signed attestation (in-toto Statement v1, SLSA VSA v1, DSSE) that it is cleared",
        request=None,
        responses={200: _ENVELOPE, **errors(401, 403, 404, 409)},
        tags=["attestations"],
    )
    def get(self, request: Request, release_id: int) -> Response:
        if release_id > MAX_ID:
            raise NotFound("No such release.")
        release = release_for_attestation(self.actor, release_id)
        _, envelope = attestation_issue(release=release, actor=self.actor)
        return Response(envelope)


class RevocationsView(ScopedAPIView):
    @extend_schema(
        operation_id="attestation_revocations",
        summary="Revoked attestations of the projects the caller may read, as a DSSE envelope",
        responses={200: _ENVELOPE, **errors(401)},
        tags=["attestations"],
    )
    def get(self, request: Request) -> Response:
        revoked = [
            {
                "attestation_id": r.attestation_id,
                "release_id": r.attestation.release_id,
                "subject_digest": r.attestation.subject_digest,
                "environment": r.attestation.environment,
                "revoked_at": iso(r.revoked_at),
                "reason": r.reason,
            }
            for r in revocations_visible_to(self.actor)
        ]
        payload = canonical_json({"issued_at": iso(timezone.now()), "revoked": revoked})
        return Response(sign_envelope(REVOCATIONS_PAYLOAD_TYPE, payload))


class AdmissionView(ScopedAPIView):
    @extend_schema(
        operation_id="admission_review",
        summary="Kubernetes validating admission webhook (AdmissionReview admission.k8s.io/v1)",
        description=(
            "Allowed only when every image is pinned by digest and belongs to a release of the "
            "token's project promoted in this environment and cleared now. A review whose object "
            "cannot be read is denied with a message; a body that is not an AdmissionReview at "
            "all is a 400."
        ),
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: OpenApiTypes.OBJECT, **errors(400, 401, 403, 404, 413, 415)},
        tags=["admission"],
    )
    def post(self, request: Request, environment: str) -> Response:
        return Response(admission.answer(self.actor, request.data, environment))
