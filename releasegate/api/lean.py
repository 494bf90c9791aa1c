"""The gate's lean path: a bearer-token GET of a gate endpoint or POST of an admission review,
answered without the machinery it does not use, and exactly as the full stack would answer it.

CI polls the gate and a cluster asks it for every pod: they are the busiest calls the service has.
Such a request carries its credential in its `Authorization` header and nothing else, so the
session, CSRF, authentication and messages middlewares have nothing to do for it, and Django REST
framework's request, negotiation and response objects are the costliest part of the answer. This
middleware sits after the request log, the database retry and SecurityMiddleware (HTTPS redirect,
HSTS and the other security headers), and answers such a request itself:

- the same checks on the way in (CommonMiddleware's host validation; the gate views' query
  validation, `plain_gate_query`; the API's JSON parser, `load_checked_json`); anything it does
  not recognise as plainly valid (another method, an `Accept` only a negotiation could answer, a
  query the serializer must word the errors for, a body that is not JSON, a bad host) goes on
  through the full stack, which answers as it always has;
- the same answer: the token verified by `token_checked` in one statement with every fact
  (`selectors.bearer_gate_decision`, as `GateView` asks it; `admission.answer_bearer`), the body
  rendered by DRF's `JSONRenderer`, errors by the API's own `exception_handler`;
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
from django.core.handlers.exception import response_for_exception
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.common import CommonMiddleware
from django.utils.module_loading import import_string
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import TokenRejected, token_parts
from releasegate.api.authentication import GateBearerAuthentication, principal_for, rejected
from releasegate.api.errors import exception_handler
from releasegate.api.parsers import load_checked_json
from releasegate.api.views import plain_gate_query
from releasegate.attestations import admission
from releasegate.errors import NotFound
from releasegate.ops.middleware import mark_database_failed
from releasegate.releases import selectors
from releasegate.releases.identifiers import ENVIRONMENT_RE, MAX_ID
from releasegate.releases.questions import GateQuestion
from releasegate.transactions import database_failed

_PATHS = re.compile(
    r"/api/v1/(?:(?P<gate>gate)|releases/(?P<release>[0-9]+)/gate|admission/(?P<admission>[^/]+))"
)
# The Accept headers DRF's negotiation answers with JSON, the API's only renderer, whatever else.
_JSON_ACCEPTS = frozenset({"*/*", "application/json"})
# What DRF sends as `Allow` on every answer of these views (from their methods).
_ALLOW = {
    "gate": "GET, HEAD, OPTIONS",
    "release": "GET, HEAD, OPTIONS",
    "admission": "POST, OPTIONS",
}
# A path of each kind, for the header-only middlewares to answer once (see `headers_for`).
_PROBE_PATHS = {
    "gate": "/api/v1/gate",
    "release": "/api/v1/releases/1/gate",
    "admission": "/api/v1/admission/production",
}

# Middlewares after this one with nothing to do for the requests this path answers: WhiteNoise
# serves /static/ only; the session and the user they attach are never read (the bearer token is
# the credential); CSRF guards session-authenticated views (DRF checks it only for a session, and
# a request with a bearer token is never one); no message is added. CommonMiddleware's work is
# done here (`process_request`, `process_response`).
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
        self.authenticate_header = GateBearerAuthentication.challenge()
        self.renderer = JSONRenderer()
        # The gate's one statement is PostgreSQL's; elsewhere (the SQLite demo) the views answer.
        self.enabled = connection.vendor == "postgresql"

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        path = _PATHS.fullmatch(request.path_info) if self.enabled else None
        raw = self.bearer(request) if path is not None else None
        answered = None
        if raw is not None and path is not None:
            if path["admission"] is not None and request.method == "POST":
                answered = self.admission(request, raw, path["admission"])
            elif path["admission"] is None and request.method == "GET":
                answered = self.gate(request, raw, path)
        return self.get_response(request) if answered is None else answered

    def bearer(self, request: HttpRequest) -> str | None:
        """The bearer token of a request this path may answer, after CommonMiddleware's checks
        (the host among ALLOWED_HOSTS, ...); None for a request the full stack answers."""
        meta = request.META
        header: str = meta.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or meta.get("HTTP_ACCEPT", "*/*") not in _JSON_ACCEPTS:
            return None
        if "format" in request.GET:  # DRF's format override
            return None
        try:
            if self.common.process_request(request) is not None:
                return None
        except (DisallowedHost, PermissionDenied):
            return None
        return raw.strip()

    def gate(self, request: HttpRequest, raw: str, path: re.Match[str]) -> HttpResponseBase | None:
        """`GateView` and `ReleaseGateView`, for a query they would find plainly valid."""
        if request.META.get("CONTENT_LENGTH") not in (None, "", "0"):
            return None
        query = request.GET
        if path["gate"] is not None:
            params = plain_gate_query(query)
            if params is None:
                return None
            question = GateQuestion.of_gate_query(params)
        else:
            release_id = int(path["release"])
            environment = query.get("environment")
            if release_id > MAX_ID or (
                environment is not None and ENVIRONMENT_RE.fullmatch(environment) is None
            ):
                return None
            question = GateQuestion(release_id=release_id, environment=environment)
        kind = "gate" if path["gate"] is not None else "release"
        try:
            prefix, key_id, secret = token_parts(raw)
            token, decision = selectors.bearer_gate_decision(prefix, key_id, secret, question)
        except Exception as exc:
            return self.refused(request, exc, kind)
        self.authenticated(request, token)
        if decision is None:
            return self.refused(request, NotFound("No such release."), kind)
        return self.answered(request, decision.as_dict(), kind)

    def admission(
        self, request: HttpRequest, raw: str, environment: str
    ) -> HttpResponseBase | None:
        """`AdmissionView`, for a JSON body of a size it would read."""
        meta = request.META
        media_type = meta.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        length = meta.get("CONTENT_LENGTH") or ""
        if media_type != "application/json" or not length.isdigit():
            return None
        if int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return None
        try:
            body = load_checked_json(request.body)
        except ValueError:
            return None  # DRF's parser words the 400
        try:
            prefix, key_id, secret = token_parts(raw)
            token, review = admission.answer_bearer(prefix, key_id, secret, body, environment)
        except Exception as exc:
            return self.refused(request, exc, "admission")
        self.authenticated(request, token)
        return self.answered(request, review, "admission")

    def authenticated(self, request: HttpRequest, token: ApiToken) -> None:
        # As DRF's view would leave them: the request log names the person.
        request.user = principal_for(token)
        request.__dict__["auth"] = token  # HttpRequest declares no `auth`; DRF's Request does

    def answered(self, request: HttpRequest, data: Any, kind: str) -> HttpResponseBase:
        body = self.renderer.render(data)
        response = HttpResponse(body, content_type=self.renderer.media_type)
        return self.finished(request, response, kind)

    def refused(self, request: HttpRequest, exc: Exception, kind: str) -> HttpResponseBase:
        """The API's error answer to `exc` (`exception_handler`, as DRF's view calls it); for an
        exception it does not answer (a bug), Django's 500, as the view's would be."""
        if isinstance(exc, TokenRejected):
            exc = rejected(exc)
        if isinstance(exc, AuthenticationFailed):
            # As DRF's APIView.handle_exception sets it (an attribute no stub declares).
            exc.__dict__["auth_header"] = self.authenticate_header
        if database_failed(exc):
            mark_database_failed(request)  # DatabaseUnavailableMiddleware reads once more
        response = exception_handler(exc, {})
        if response is None:
            failed = response_for_exception(request, exc)
            return self.finished(request, failed, kind, allow=False)  # DRF sets no Allow then
        return self.finished(request, self.rendered(response), kind)

    def rendered(self, response: Response) -> Response:
        response.accepted_renderer = self.renderer
        response.accepted_media_type = self.renderer.media_type
        # DRF's finalize_response sets it; djangorestframework-stubs do not declare it.
        response.renderer_context = {}  # type: ignore[attr-defined]
        response.render()
        return response

    def finished(
        self, request: HttpRequest, response: HttpResponseBase, kind: str, *, allow: bool = True
    ) -> HttpResponseBase:
        if allow:
            response["Allow"] = _ALLOW[kind]
        finished = self.common.process_response(request, response)
        for name, value in self.headers_for(finished.status_code, kind):
            finished.headers.setdefault(name, value)
        return finished

    def headers_for(self, status: int, kind: str) -> tuple[tuple[str, str], ...]:
        """The headers the header-only middlewares add to an answer with this status on this
        kind of path, computed by running them once over an empty answer."""
        key = (status, kind)
        if key not in self.headers:
            probe = HttpRequest()
            probe.method = "GET"
            probe.path = probe.path_info = _PROBE_PATHS[kind]
            blank = HttpResponse(status=status, content_type="application/json")
            handler: Handler = lambda _request: blank  # noqa: E731
            for middleware in reversed(self.header_middlewares):
                handler = middleware(handler)
            added = handler(probe)
            self.headers[key] = tuple(
                (name, value) for name, value in added.items() if name != "Content-Type"
            )
        return self.headers[key]
