"""Operational endpoints: liveness, readiness and metrics."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    # Liveness only: the process answers. Touching the database here would make an orchestrator
    # restart healthy web processes whenever PostgreSQL blips.
    return JsonResponse({"status": "ok"})
