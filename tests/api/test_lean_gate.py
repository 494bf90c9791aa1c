"""The lean path (releasegate/api/lean.py) answers bearer-token gate GETs and admission POSTs
exactly as the full stack does: same status, headers and body; the rest it leaves to the stack."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.utils import timezone

from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import token_revoke
from releasegate.releases.services import veto_cast
from tests.api.conftest import personal_token, service_token
from tests.attestations.conftest import admission_review, image, pod_spec, promoted, workload
from tests.builders import digest_of
from tests.conftest import Personas
from tests.releases.gatehelpers import cleared_release

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

LEAN = "releasegate.api.lean.LeanGateMiddleware"
FULL_STACK = [name for name in settings.MIDDLEWARE if name != LEAN]
# Differ from one answer to the next whoever gives it.
VARYING_HEADERS = {"X-Request-ID"}


def _body(response: Any) -> Any:
    body = json.loads(response.content)
    if isinstance(body, dict):
        body.pop("evaluated_at", None)  # the moment of the answer
    return body


def _call(method: str, path: str, token: str | None, body: Any, extra: dict[str, Any]) -> Any:
    headers = dict(extra)
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    client = Client(raise_request_exception=False)
    if body is None:
        return client.generic(method, path, **headers)
    return client.generic(
        method,
        path,
        data=body if isinstance(body, bytes) else json.dumps(body),
        content_type=headers.pop("content_type", "application/json"),
        **headers,
    )


def both(
    method: str, path: str, token: str | None, body: Any = None, **extra: Any
) -> tuple[Any, Any]:
    """The answer with the lean path, and the full stack's answer to the same request."""
    lean = _call(method, path, token, body, extra)
    with override_settings(MIDDLEWARE=FULL_STACK):
        full = _call(method, path, token, body, extra)
    return lean, full


def assert_same(lean: Any, full: Any) -> None:
    assert lean.status_code == full.status_code, (lean.content, full.content)
    if lean["Content-Type"] == "application/json":
        assert _body(lean) == _body(full)
    else:
        assert lean.content == full.content
    lean_headers = {k: v for k, v in lean.items() if k not in VARYING_HEADERS}
    full_headers = {k: v for k, v in full.items() if k not in VARYING_HEADERS}
    # evaluated_at may be written one digit shorter (a whole second); the length is right
    lean_headers.pop("Content-Length")
    assert full_headers.pop("Content-Length") == str(len(full.content))
    assert lean_headers == full_headers


def lean_answered(response: Any) -> bool:
    """The full stack resolves the URL to a view; the lean path answers before it does."""
    return response.wsgi_request.resolver_match is None


@pytest.fixture
def world(personas: Personas) -> dict[str, Any]:
    p = personas
    release = cleared_release(p)
    vetoed = cleared_release(p, version="1.1.0")
    veto_cast(release=vetoed, actor=p.actor("sme"), role="sme", reason="leaks", scope="release")
    _, service = service_token(p, "gate:read")
    _, narrow = service_token(p, "alerts:write")
    revoked, revoked_raw = service_token(p, "gate:read")
    token_revoke(token=revoked, actor=p.actor("admin"))
    expired, expired_raw = service_token(p, "gate:read")
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    return {
        "p": p,
        "release": release,
        "vetoed": vetoed,
        "service": service,
        "narrow": narrow,
        "revoked": revoked_raw,
        "expired": expired_raw,
        "personal": personal_token(p.security),
        "outsider": personal_token(p.outsider),
    }


GATE_CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (token, path, extra request headers); {slug}, {version}, {id}, {vetoed}, {digest}
    "cleared, by version": ("service", "/api/v1/gate?project={slug}&version={version}", {}),
    "cleared, by digest for production": (
        "service",
        "/api/v1/gate?digest={digest}&environment=production",
        {},
    ),
    "cleared, by id, personal token": ("personal", "/api/v1/releases/{id}/gate", {}),
    "another environment asked": (
        "service",
        "/api/v1/releases/{id}/gate?environment=staging",
        {},
    ),
    "vetoed": ("service", "/api/v1/releases/{vetoed}/gate", {}),
    "over https (HSTS)": ("service", "/api/v1/releases/{id}/gate", {"secure": True}),
    "Accept: application/json": (
        "service",
        "/api/v1/releases/{id}/gate",
        {"HTTP_ACCEPT": "application/json"},
    ),
    "unknown release": ("service", "/api/v1/releases/999999999/gate", {}),
    "unknown digest": ("service", f"/api/v1/gate?digest={digest_of('nobody')}", {}),
    "narrow token": ("narrow", "/api/v1/releases/{id}/gate", {}),
    "person without a role there": ("outsider", "/api/v1/releases/{id}/gate", {}),
    "revoked token": ("revoked", "/api/v1/releases/{id}/gate", {}),
    "expired token": ("expired", "/api/v1/gate?project={slug}&version={version}", {}),
    "forged token": ("forged", "/api/v1/releases/{id}/gate", {}),
    "malformed token": ("malformed", "/api/v1/releases/{id}/gate", {}),
}


def _gate_request(world: dict[str, Any], case: str) -> tuple[str, str, dict[str, Any]]:
    name, path, extra = GATE_CASES[case]
    token = {
        "forged": world["service"][:-8] + "forgedXX",
        "malformed": "not-a-token",
    }.get(name) or world[name]
    release = world["release"]
    path = path.format(
        slug=release.project.slug,
        version=release.version,
        id=release.pk,
        vetoed=world["vetoed"].pk,
        digest=release.artifact_digest,
    )
    return token, path, extra


@pytest.mark.parametrize("case", GATE_CASES, ids=list(GATE_CASES))
def test_the_lean_gate_answer_is_the_full_stacks(world, case):
    token, path, extra = _gate_request(world, case)
    lean, full = both("GET", path, token, **extra)
    assert lean_answered(lean) and not lean_answered(full)
    assert_same(lean, full)


@pytest.mark.parametrize("case", ["cleared, by version", "unknown release", "revoked token"])
def test_the_lean_gate_answer_is_the_full_stacks_with_debug_on(world, case):
    # With DEBUG on, django-csp leaves its header off 404 and 500 answers.
    token, path, extra = _gate_request(world, case)
    with override_settings(DEBUG=True):
        lean, full = both("GET", path, token, **extra)
    assert lean_answered(lean)
    assert_same(lean, full)


@pytest.fixture
def admission_world(personas: Personas) -> dict[str, Any]:
    app = promoted(personas)
    return {
        "app": app,
        "admission": service_token(personas, "admission:review")[1],
        "gate": service_token(personas, "gate:read")[1],
        "personal": personal_token(personas.security),
    }


def _review(*images: str) -> dict[str, Any]:
    return admission_review(workload("Pod", pod_spec(*images)))


ADMISSION_CASES: dict[str, tuple[str, str, Any]] = {
    # name: (token, environment, review: a function of the promoted release)
    "allowed": ("admission", "production", lambda app: _review(image(app))),
    "denied, unpinned and unknown": (
        "admission",
        "production",
        lambda app: _review(image(app), "nginx:1", f"x@{digest_of('x')}"),
    ),
    "not promoted in staging": ("admission", "staging", lambda app: _review(image(app))),
    "no such environment": ("admission", "NOT-AN-ENV", lambda app: _review(image(app))),
    "no review at all": ("admission", "production", lambda app: {"kind": "Pod"}),
    "unreadable object": (
        "admission",
        "production",
        lambda app: {**_review(image(app)), "request": {"uid": "u-1", "object": []}},
    ),
    "delete": (
        "admission",
        "production",
        lambda app: admission_review(workload("Pod", pod_spec(image(app))), operation="DELETE"),
    ),
    "a token without admission:review": ("gate", "production", lambda app: _review(image(app))),
    "a personal token": ("personal", "production", lambda app: _review(image(app))),
    "a malformed token": ("malformed", "production", lambda app: _review(image(app))),
}


@pytest.mark.parametrize("case", ADMISSION_CASES, ids=list(ADMISSION_CASES))
def test_the_lean_admission_answer_is_the_full_stacks(admission_world, case):
    name, environment, make = ADMISSION_CASES[case]
    token = "rgs_nonsense" if name == "malformed" else admission_world[name]
    review = make(admission_world["app"])
    lean, full = both("POST", f"/api/v1/admission/{environment}", token, review)
    assert lean_answered(lean) and not lean_answered(full)
    assert_same(lean, full)


@pytest.mark.parametrize(
    "method, path, body, extra",
    [
        ("GET", "/api/v1/releases/{id}/gate", None, {"HTTP_ACCEPT": "text/html"}),  # 406
        ("GET", "/api/v1/releases/{id}/gate?format=api", None, {}),  # DRF's format override
        ("GET", "/api/v1/gate?project={slug}", None, {}),  # the serializer words the 400
        ("GET", "/api/v1/gate?project={slug}&version={version}&environment=A%20B", None, {}),
        ("HEAD", "/api/v1/releases/{id}/gate", None, {}),
        ("POST", "/api/v1/releases/{id}/gate", {}, {}),  # 405
        ("POST", "/api/v1/admission/production", b"{not json", {}),  # 400 malformed_json
        ("POST", "/api/v1/admission/production", b"uid=1", {"content_type": "text/plain"}),
    ],
)
def test_what_the_lean_path_cannot_answer_plainly_goes_on_to_the_full_stack(
    world, method, path, body, extra
):
    release = world["release"]
    path = path.format(slug=release.project.slug, version=release.version, id=release.pk)
    lean, full = both(method, path, world["service"], body, **extra)
    assert not lean_answered(lean)
    assert lean.status_code == full.status_code
    assert lean.content == full.content


def test_a_bug_is_the_same_500_on_both_paths(world):
    # A policy row no service would write: reading it fails in both loaders alike.
    policy = world["p"].project.current_policy
    type(policy).objects.filter(pk=policy.pk).update(required_approvals=["security"])
    token, path, extra = _gate_request(world, "cleared, by version")
    lean, full = both("GET", path, token, **extra)
    assert lean.status_code == 500
    assert lean_answered(lean)
    assert_same(lean, full)


def test_a_host_not_allowed_is_refused_as_always(world):
    path = f"/api/v1/releases/{world['release'].pk}/gate"
    lean, full = both("GET", path, world["service"], HTTP_HOST="evil.example.com")
    assert lean.status_code == full.status_code == 400


def test_a_session_is_not_a_bearer_token_and_goes_on_to_the_full_stack(world):
    client = Client()
    client.force_login(world["p"].security)
    answer = client.get(f"/api/v1/releases/{world['release'].pk}/gate")
    assert answer.status_code == 200 and answer.json()["cleared"] is True
    assert not lean_answered(answer)


def test_an_unknown_middleware_after_the_lean_path_stops_the_service_from_starting(world):
    unknown = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    with override_settings(MIDDLEWARE=unknown), pytest.raises(ImproperlyConfigured, match="GZip"):
        Client().get("/api/v1/gate", HTTP_AUTHORIZATION=f"Bearer {world['service']}")
