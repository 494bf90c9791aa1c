"""One log line per request, with a request id the caller can quote and its tasks carry."""

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from releasegate.ops.context import request_id_var, sane_request_id

logger = logging.getLogger("releasegate.request")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_META = "HTTP_X_REQUEST_ID"  # read from META: `request.headers` parses every header
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def _user_id(request: HttpRequest) -> int | None:
    """The signed-in user's id, only if authentication already loaded it.

    Loading a lazy session user here would add queries to every request (and to pinned counts).
    """
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        wrapped = user._wrapped  # noqa: SLF001 - the only way to ask a lazy object if it loaded
        if wrapped is empty:
            return None
        user = wrapped
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    pk = user.pk  # a person's id; None for a service token's principal
    return pk if isinstance(pk, int) else None


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = sane_request_id(request.META.get(_REQUEST_ID_META))
        # For the log lines django.request writes after this returns (RequestIdFilter).
        request.__dict__["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            status = response.status_code
            if status >= 500:
                level = logging.WARNING
            elif request.path in PROBE_PATHS and status < 400:
                level = logging.DEBUG  # orchestrators probe every few seconds
            else:
                level = logging.INFO
            logger.log(
                level,
                "%s %s %s",
                request.method,
                request.path,
                status,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user_id": _user_id(request),
                },
            )
            return response
        finally:
            request_id_var.reset(token)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Set on the request by whatever turned a database failure into a 503 (the API's exception
# handler, or `process_exception` below): a read may then be run once more.
DATABASE_FAILED_ATTR = "_releasegate_database_failed"


def mark_database_failed(request: HttpRequest) -> None:
    setattr(request, DATABASE_FAILED_ATTR, True)


class DatabaseUnavailableMiddleware:
    """A database that fails a request is never a 500, and fails a read only if it fails twice.

    A read (GET, HEAD, OPTIONS: no body consumed, nothing written) that met the database down,
    busy or a kept connection that died meanwhile is run once more on a fresh connection. This is
    what makes a per-request health check (`DATABASE_CONN_HEALTH_CHECKS`, one round trip before
    every request's first query) unnecessary. Writes are retried by their services
    (releasegate/transactions.py). What still fails answers 503 with Retry-After.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method in SAFE_METHODS and getattr(request, DATABASE_FAILED_ATTR, False):
            from django.db import connection

            logger.info("%s %s: database failed, reading again", request.method, request.path)
            setattr(request, DATABASE_FAILED_ATTR, False)
            connection.close()
            response = self.get_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from releasegate.errors import Unavailable
        from releasegate.transactions import database_failed

        if not database_failed(exception):
            return None
        mark_database_failed(request)
        logger.warning("%s %s: database unavailable", request.method, request.path)
        response = HttpResponse(
            "The service is busy or its database is unreachable; nothing was changed. "
            "Try again in a moment.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(Unavailable.RETRY_AFTER_SECONDS)
        return response
