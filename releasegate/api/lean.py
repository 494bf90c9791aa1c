"""The gate's lean path: a bearer-token GET of a gate endpoint, answered without the machinery it
does not use, and exactly as the full stack would answer it.

CI polls the gate and a cluster asks it for every pod: it is the busiest call the service has.
Such a request carries its credential in its `Authorization` header and nothing else, so the
session, CSRF, authentication and messages middlewares have nothing to do for it, and Django REST
framework's request, negotiation and response objects are the costliest part of the answer. This
middleware sits after the request log, the database retry and SecurityMiddleware (HTTPS redirect,
HSTS and the other security headers), and answers such a request itself:

- the same checks on the way in (CommonMiddleware's host validation; the gate views' query
  validation, `plain_gate_query`); anything it does not recognise as plainly valid (another
  method, an `Accept` only a negotiation could answer, a query the serializer must word the
  errors for, a bad host) goes on through the full stack, which answers as it always has;
- the same answer: the token verified by `token_checked` in the gate's one statement
  (`selectors.bearer_gate_decision`, as `GateView` asks it), the body rendered by DRF's
  `JSONRenderer`, errors by the API's own `exception_handler`;
- the same headers: `Allow` as DRF sends it, CommonMiddleware's `Content-Length`, and the headers
  the header-only middlewares after this one add (X-Frame-Options, the Content-Security-Policy,
  Permissions-Policy), computed by those middlewares themselves once per kind of answer.

A middleware after this one that it does not know stops the service from starting: adding one
means saying here what it does to these requests.
"""

import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost, ImproperlyConfigured, PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.common import CommonMiddleware
from django.utils.module_loading import import_string
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from releasegate.accounts.tokens import TokenRejected, token_parts
from releasegate.api.authentication import GateBearerAuthentication, principal_for, rejected
from releasegate.api.base import MAX_ID
from releasegate.api.errors import exception_handler
from releasegate.api.views import plain_gate_query
from releasegate.errors import NotFound, ReleasegateError
from releasegate.ops.middleware import mark_database_failed
from releasegate.releases import selectors
from releasegate.releases.identifiers import ENVIRONMENT_RE
from releasegate.transactions import database_failed

_GATE_PATH = re.compile(r"/api/v1/(?:gate|releases/([0-9]+)/gate)")
# The Accept headers DRF's negotiation answers with JSON, the API's only renderer, whatever else.
_JSON_ACCEPTS = frozenset({"*/*", "application/json"})
# What the gate views send on every answer (DRF's `Allow`, from the views' methods).
_ALLOW = "GET, HEAD, OPTIONS"

# Middlewares after this one with nothing to do for a bearer-token GET of the gate: WhiteNoise
# serves /static/ only; the session and the user they attach are never read (the token is the
# credential); CSRF guards unsafe methods and session-authenticated views; no message is added.
# CommonMiddleware's work is done here (`process_request`, `process_response`).
_NOTHING_TO_DO = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.common.CommonMiddleware",
    }
)
# Middlewares after this one that only add headers to an answer, the same for every answer of a
# given status and path: run once over an empty answer of each, and their headers kept.
_HEADERS_ONLY = frozenset(
    {
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "csp.middleware.CSPMiddleware",
        "releasegate.web.middleware.SecurityHeadersMiddleware",
    }
)

Handler = Callable[[HttpRequest], HttpResponseBase]


def _after_this() -> list[str]:
    names = list(settings.MIDDLEWARE)
    return names[names.index(f"{__name__}.LeanGateMiddleware") + 1 :]


class LeanGateMiddleware:
    def __init__(self, get_response: Handler):
        self.get_response = get_response
        self.common = CommonMiddleware(get_response)
        unknown = [name for name in _after_this() if name not in _NOTHING_TO_DO | _HEADERS_ONLY]
        if unknown:
            raise ImproperlyConfigured(
                f"{', '.join(unknown)}: say in {__name__} what it does to a bearer-token GET of "
                "the gate, or put it before LeanGateMiddleware"
            )
        self.header_middlewares = [
            import_string(name) for name in _after_this() if name in _HEADERS_ONLY
        ]
        self.headers: dict[tuple[int, str], tuple[tuple[str, str], ...]] = {}
        self.authenticate_header = GateBearerAuthentication().authenticate_header(None)  # type: ignore[arg-type]
        self.renderer = JSONRenderer()
        # The gate's one statement is PostgreSQL's; elsewhere (the SQLite demo) the views answer.
        self.enabled = connection.vendor == "postgresql"

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        asked = self.question(request) if self.enabled else None
        if asked is None:
            return self.get_response(request)
        raw, question = asked
        return self.answer(request, raw, question)

    def question(self, request: HttpRequest) -> tuple[str, dict[str, Any]] | None:
        """The bearer token and the gate question of a request this path answers as the full
        stack would; None for any other request."""
        if request.method != "GET":
            return None
        path = _GATE_PATH.fullmatch(request.path_info)
        if path is None:
            return None
        meta = request.META
        scheme, _, raw = meta.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        if meta.get("HTTP_ACCEPT", "*/*") not in _JSON_ACCEPTS:
            return None
        if meta.get("CONTENT_LENGTH") not in (None, "", "0"):
            return None
        query = request.GET
        if "format" in query:  # DRF's format override
            return None
        try:
            if self.common.process_request(request) is not None:
                return None
        except (DisallowedHost, PermissionDenied):
            return None
        if path.group(1) is None:
            params = plain_gate_query(query)
            if params is None:
                return None
            by_digest = "digest" in params
            return raw.strip(), {
                "project_slug": params.get("project"),
                "version": None if by_digest else params["version"],
                "artifact_digest": params.get("digest"),
                "environment": params.get("environment"),
            }
        release_id = int(path.group(1))
        environment = query.get("environment")
        if release_id > MAX_ID or (
            environment is not None and ENVIRONMENT_RE.fullmatch(environment) is None
        ):
            return None
        return raw.strip(), {"release_id": release_id, "environment": environment}

    def answer(self, request: HttpRequest, raw: str, question: dict[str, Any]) -> HttpResponseBase:
        try:
            prefix, key_id, secret = token_parts(raw)
            token, decision = selectors.bearer_gate_decision(prefix, key_id, secret, **question)
        except TokenRejected as error:
            return self.refused(request, rejected(error))
        except Exception as exc:
            if isinstance(exc, ReleasegateError) or database_failed(exc):
                return self.refused(request, exc)
            raise
        request.user, request.auth = principal_for(token), token  # type: ignore[attr-defined]
        if decision is None:
            return self.refused(request, NotFound("No such release."))
        body = self.renderer.render(decision.as_dict())
        return self.finished(request, HttpResponse(body, content_type="application/json"))

    def refused(self, request: HttpRequest, exc: Exception) -> HttpResponseBase:
        """The API's error answer to `exc` (`exception_handler`, as DRF's view would call it)."""
        if isinstance(exc, AuthenticationFailed):
            exc.auth_header = self.authenticate_header  # type: ignore[attr-defined]
        if database_failed(exc):
            mark_database_failed(request)  # DatabaseUnavailableMiddleware reads once more
        response = exception_handler(exc, {})
        assert response is not None  # it answers every ReleasegateError and database failure
        return self.finished(request, self.rendered(response))

    def rendered(self, response: Response) -> Response:
        response.accepted_renderer = self.renderer
        response.accepted_media_type = self.renderer.media_type
        response.renderer_context = {}
        response.render()
        return response

    def finished(self, request: HttpRequest, response: HttpResponse) -> HttpResponseBase:
        response["Allow"] = _ALLOW
        finished = self.common.process_response(request, response)
        kind = "gate" if request.path_info == "/api/v1/gate" else "release"
        for name, value in self.headers_for(finished.status_code, kind):
            finished.headers.setdefault(name, value)
        return finished

    def headers_for(self, status: int, kind: str) -> tuple[tuple[str, str], ...]:
        """The headers the header-only middlewares add to an answer with this status on this
        kind of gate path, computed by running them once over an empty answer."""
        key = (status, kind)
        if key not in self.headers:
            probe = HttpRequest()
            probe.method = "GET"
            probe.path = probe.path_info = (
                "/api/v1/gate" if kind == "gate" else "/api/v1/releases/1/gate"
            )
            blank = HttpResponse(status=status, content_type="application/json")
            handler: Handler = lambda _request: blank  # noqa: E731
            for middleware in reversed(self.header_middlewares):
                handler = middleware(handler)
            added = handler(probe)
            self.headers[key] = tuple(
                (name, value) for name, value in added.items() if name != "Content-Type"
            )
        return self.headers[key]
