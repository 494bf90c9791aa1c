"""OpenAPI description of the bearer token scheme (drf-spectacular extension)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class GateBearerTokenScheme(OpenApiAuthenticationExtension):
    """The gate views check the same bearer tokens, in the gate's one statement."""

    target_class = "releasegate.api.authentication.GateBearerAuthentication"
    name = "gateBearerToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "As bearerToken."}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "releasegate.api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal (`rgp_…`) or service (`rgs_…`) token from `create_token`.",
        }
