"""Every API error is JSON `{"code", "message", "errors": [{"field", "message"}]}`.

Typed service errors (releasegate.errors) keep their status and code; Django REST framework's own
errors are given stable codes; nothing else is caught, so a bug is never dressed up as a 4xx.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from releasegate.errors import ReleasegateError, Unavailable
from releasegate.ops.middleware import mark_database_failed
from releasegate.signing.keys import SigningKeyError
from releasegate.transactions import database_failed

logger = logging.getLogger(__name__)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


# Stable codes for Django REST framework's own errors. Authentication failures and our own
# APIExceptions carry their code already (e.g. `token_expired`, `too_large`).
_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.ParseError: "malformed_json",
    exceptions.Throttled: "throttled",
}


def _code_of(exc: exceptions.APIException) -> str:
    own = exc.get_codes() if isinstance(exc.detail, str) else None
    if isinstance(exc, exceptions.AuthenticationFailed):
        return own if isinstance(own, str) and own != "authentication_failed" else "token_invalid"
    for cls, code in _CODES.items():
        if isinstance(exc, cls):
            return code
    return own if isinstance(own, str) else "error"


def _field_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            name = "(document)" if key == "non_field_errors" else str(key)
            found += _field_errors(value, f"{prefix}.{name}" if prefix else name)
        return found
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"field": prefix or "(document)", "message": str(item)} for item in detail]
        found = []
        for index, item in enumerate(detail):
            found += _field_errors(item, f"{prefix}[{index}]")
        return found
    return [{"field": prefix or "(document)", "message": str(detail)}]


def error_body(
    code: str, message: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "errors": errors or []}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ReleasegateError):
        body = exc.as_dict()
        body.setdefault("errors", [])
        code = exc.status
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(exc.RETRY_AFTER_SECONDS)
    elif database_failed(exc):
        # A read (a selector, the authentication's token lookup) met the database down or busy:
        # the middleware reads once more on a fresh connection before this answer goes out.
        request = context.get("request")
        if request is not None:
            mark_database_failed(request._request)
        unavailable = Unavailable()
        body, code = {**unavailable.as_dict(), "errors": []}, unavailable.status
        headers["Retry-After"] = str(unavailable.RETRY_AFTER_SECONDS)
    elif isinstance(exc, SigningKeyError):
        # A misconfigured key (`manage.py check` names it): the operator's log says which file
        # and why; the caller learns only that signing is unavailable.
        logger.error("signing key unusable: %s", exc)
        body = error_body(
            "signing_unavailable", "The service cannot sign now; its operator has been told."
        )
        code = 503
    elif isinstance(exc, RequestDataTooBig):
        body, code = error_body("too_large", "The request body is too large."), 413
    elif isinstance(exc, Http404):
        body, code = error_body("not_found", "Not found."), 404
    elif isinstance(exc, PermissionDenied):
        body, code = error_body("forbidden", "You may not do this."), 403
    elif isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", "The request is not valid.", _field_errors(exc.detail))
        code = 400
    elif isinstance(exc, exceptions.APIException):
        body, code = error_body(_code_of(exc), str(exc.detail)), exc.status_code
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait:
            headers["Retry-After"] = str(int(wait))
    else:
        return None
    set_rollback()
    return Response(body, status=code, headers=headers)
