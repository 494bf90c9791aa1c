"""Operational endpoints: liveness, readiness and metrics."""

import hmac
import logging

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from kombu import Connection

from releasegate.ops import metrics

logger = logging.getLogger(__name__)


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    # Liveness only: the process answers. Touching the database here would make an orchestrator
    # restart healthy web processes whenever PostgreSQL blips.
    return JsonResponse({"status": "ok"})


def database_problem() -> str | None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready", and is reported, not raised
        logger.warning("readiness: database unreachable: %s", exc.__class__.__name__)
        return exc.__class__.__name__
    return None


def broker_problem() -> str | None:
    timeout = settings.RELEASEGATE_READY_TIMEOUT
    try:
        with Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=timeout,
            transport_options={
                **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
            },
        ) as connection:
            # One attempt, no back-off: a readiness probe must answer within its own timeout.
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=timeout
            )
    except Exception as exc:  # kombu and redis raise many types; every one means "not ready"
        logger.warning("readiness: broker unreachable: %s", exc.__class__.__name__)
        return exc.__class__.__name__
    return None


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: PostgreSQL answers `SELECT 1` and the broker accepts a connection."""
    problems = {"database": database_problem(), "broker": broker_problem()}
    down = sorted(name for name, problem in problems.items() if problem)
    checks = {name: ("down" if problem else "ok") for name, problem in problems.items()}
    if down:
        return JsonResponse({"status": "unavailable", "down": down, "checks": checks}, status=503)
    return JsonResponse({"status": "ok", "checks": checks})


def _may_scrape(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


@require_safe
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format. Open with DEBUG; otherwise a bearer METRICS_TOKEN is required, and
    without one configured the endpoint does not exist (404)."""
    if not settings.DEBUG:
        if not settings.METRICS_TOKEN:
            return HttpResponse("Not Found\n", status=404, content_type="text/plain")
        if not _may_scrape(request):
            response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
