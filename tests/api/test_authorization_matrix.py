"""Every endpoint × every caller, asserting the exact status.

Callers: each persona by session and by personal token, a service token per scope, a service token
of another project, and expired, revoked, forged and missing tokens. Each call runs in a savepoint
that is rolled back, so every caller meets the same state.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.checks.models import Advisory
from releasegate.releases.models import Release
from releasegate.releases.services import approval_give, veto_cast
from tests.api.conftest import callers
from tests.builders import (
    attach_all,
    digest_of,
    document,
    make_release,
    pass_checks,
    submitted_release,
)
from tests.conftest import make_personas

READERS = {"requester", "security", "sme", "admin", "auditor"}
UNAUTHENTICATED = {
    "service:expired": 401,
    "service:revoked": 401,
    "service:forged": 401,
    "none": 401,
}
SCOPES = ("gate:read", "releases:write", "checks:write", "releases:promote")
# Tokens of these scopes serve one endpoint each (admission, alerts, attestations) and read
# nothing else: to the rest of the API they are as a token of another project.
NARROW_SCOPES = ("admission:review", "alerts:write", "attestations:read")


def expected(
    *,
    people: dict[str, int],
    outsider: int = 404,
    scopes: dict[str, int],
    other_project: int = 404,
) -> dict[str, int]:
    table: dict[str, int] = {}
    for name in READERS:
        table[f"session:{name}"] = people.get(name, people.get("*", 0))
        table[f"token:{name}"] = table[f"session:{name}"]
    table["session:outsider"] = table["token:outsider"] = outsider
    for scope in SCOPES:
        table[f"service:{scope}"] = scopes.get(scope, scopes.get("*", 0))
    for scope in NARROW_SCOPES:
        table[f"service:{scope}"] = other_project
    table["service:other-project"] = other_project
    table.update(UNAUTHENTICATED)
    return table


IN_A_MONTH = (timezone.now() + timedelta(days=30)).isoformat()
READ = expected(people={"*": 200}, scopes={"*": 200})


@dataclass
class Case:
    method: str
    path: str
    body: Any
    statuses: dict[str, int]


def _admin_in_person(status: int) -> dict[str, int]:
    """Only the project admin, signed in: a token (even the admin's own) never sets trust."""
    table = expected(people={"admin": status, "*": 403}, scopes={"*": 403})
    table["token:admin"] = 403
    return table


GITHUB = "https://token.actions.githubusercontent.com"
ANYONE_401 = expected(people={"*": 401}, outsider=401, scopes={"*": 401}, other_project=401)


def _cases(release: Release, draft: Release, veto_id: int, policy_id: int = 0) -> dict[str, Case]:
    r = release.pk
    trust = "/api/v1/projects/support-assistant/trust-policies"
    return {
        "trust_policies_list": Case("GET", trust, None, READ),
        "trust_policy_add": Case(
            "POST",
            trust,
            {
                "issuer": GITHUB,
                "audience": "releasegate",
                "claims": {"repository_id": "42"},
                "scopes": ["gate:read"],
            },
            _admin_in_person(201),
        ),
        "trust_policy_remove": Case("DELETE", f"{trust}/{policy_id}", None, _admin_in_person(204)),
        # No credential but the ID token: every caller is refused alike for a token that is none.
        "oidc_exchange": Case("POST", "/api/v1/oidc/exchange", {"token": "a.b.c"}, ANYONE_401),
        "gate": Case("GET", "/api/v1/gate?project=support-assistant&version=1.0.0", None, READ),
        "gate_by_digest": Case("GET", f"/api/v1/gate?digest={release.artifact_digest}", None, READ),
        "release_gate": Case("GET", f"/api/v1/releases/{r}/gate", None, READ),
        "release_read": Case("GET", f"/api/v1/releases/{r}", None, READ),
        "audit": Case("GET", f"/api/v1/releases/{r}/audit", None, READ),
        "release_list": Case(
            "GET",
            "/api/v1/releases",
            None,
            expected(people={"*": 200}, outsider=200, scopes={"*": 200}, other_project=200),
        ),
        "release_create": Case(
            "POST",
            "/api/v1/releases",
            {
                "project": "support-assistant",
                "version": "9.0.0",
                "artifact_digest": digest_of("nine"),
                "environment": "production",
                "summary": "s",
            },
            expected(
                people={"requester": 201, "*": 403},
                outsider=400,
                scopes={"releases:write": 201, "*": 403},
                other_project=400,
            ),
        ),
        "evidence_put": Case(
            "PUT",
            f"/api/v1/releases/{r}/evidence/monitoring_plan",
            document("monitoring_plan"),
            expected(people={"requester": 200, "*": 403}, scopes={"releases:write": 200, "*": 403}),
        ),
        "submit": Case(
            "POST",
            f"/api/v1/releases/{draft.pk}/submit",
            None,
            expected(people={"requester": 200, "*": 403}, scopes={"releases:write": 200, "*": 403}),
        ),
        "signoff": Case(
            "POST",
            f"/api/v1/releases/{r}/signoffs",
            {"role": "security", "decision": "veto", "reason": "no"},
            expected(people={"security": 201, "*": 403}, scopes={"*": 403}),
        ),
        "lift": Case(
            "POST",
            f"/api/v1/releases/{draft.pk}/vetoes/{veto_id}/lift",
            {"reason": "fixed"},
            expected(people={"security": 200, "*": 403}, scopes={"*": 403}),
        ),
        "check_report": Case(
            "POST",
            f"/api/v1/releases/{r}/checks",
            {"check": "external_ci", "status": "passed", "external_id": "ci-1", "summary": "ok"},
            expected(people={"*": 403}, scopes={"checks:write": 201, "*": 403}),
        ),
        "waiver": Case(
            "POST",
            "/api/v1/projects/support-assistant/waivers",
            {"advisory_id": "CVE-2024-0001", "reason": "not reachable", "expires_at": IN_A_MONTH},
            expected(people={"security": 201, "*": 403}, scopes={"*": 403}),
        ),
        "promote": Case(
            "POST",
            f"/api/v1/releases/{r}/promote",
            None,
            expected(
                people={"requester": 200, "*": 403}, scopes={"releases:promote": 200, "*": 403}
            ),
        ),
    }


@pytest.fixture
def world(personas: Any) -> dict[str, Any]:
    other = make_personas("other-project", prefix="other-")
    Advisory.objects.create(
        osv_id="PYSEC-2024-1", aliases=["CVE-2024-0001"], content_digest="0" * 64
    )
    release = submitted_release(personas.project, personas.requester, version="1.0.0")
    pass_checks(release)
    approval_give(release=release, actor=personas.actor("security"), role="security")
    approval_give(release=release, actor=personas.actor("sme"), role="sme")
    draft = make_release(personas.project, personas.requester, version="1.1.0")
    attach_all(draft, personas.requester)
    draft.refresh_from_db()
    veto = veto_cast(
        release=draft, actor=personas.actor("sme"), role="sme", reason="later", scope="release"
    )
    # Lifting needs the vetoing role; give the security persona's veto to lift instead.
    veto_security = veto_cast(
        release=draft,
        actor=personas.actor("security"),
        role="security",
        reason="unsafe",
        scope="release",
    )
    assert veto.pk != veto_security.pk
    from releasegate.identity.services import trust_policy_add

    policy = trust_policy_add(
        project=personas.project,
        actor=personas.actor("admin"),
        issuer="https://token.actions.githubusercontent.com",
        audience="releasegate",
        claims={"repository_id": "7"},
        scopes=["gate:read"],
    )
    return {
        "cases": _cases(release, draft, veto_security.pk, policy.pk),
        "callers": callers(personas, other.project),
    }


ENDPOINTS = [
    "gate",
    "gate_by_digest",
    "release_gate",
    "release_read",
    "audit",
    "release_list",
    "release_create",
    "evidence_put",
    "submit",
    "signoff",
    "lift",
    "check_report",
    "waiver",
    "promote",
    "trust_policies_list",
    "trust_policy_add",
    "trust_policy_remove",
    "oidc_exchange",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_authorization_matrix(world: dict[str, Any], endpoint: str) -> None:
    case: Case = world["cases"][endpoint]
    got: dict[str, int] = {}
    for caller in world["callers"]:
        savepoint = transaction.savepoint()
        try:
            response = caller.request(case.method, case.path, case.body)
            got[caller.name] = response.status_code
            if response.status_code != 204:
                assert response["Content-Type"].startswith("application/json"), caller.name
            if response.status_code >= 400:
                body = response.json()
                assert body["code"] and body["message"], (caller.name, body)
        finally:
            transaction.savepoint_rollback(savepoint)
    assert got == case.statuses


def test_matrix_covers_every_api_route() -> None:
    from releasegate.api.urls import urlpatterns

    routes = {p.name for p in urlpatterns} - {"api-schema", "api-docs", "api-unknown"}
    covered = {
        "api-gate",
        "api-release-gate",
        "api-release",
        "api-audit",
        "api-releases",
        "api-evidence",
        "api-submit",
        "api-signoffs",
        "api-veto-lift",
        "api-checks",
        "api-promote",
        "api-waivers",
        "api-oidc-exchange",
        "api-trust-policies",
        "api-trust-policy",
    }
    assert routes == covered


def test_outsider_list_is_empty_and_auditor_sees_the_release(personas: Any) -> None:
    from tests.api.conftest import Caller

    submitted_release(personas.project, personas.requester)
    assert (
        Caller("o", user=personas.outsider).request("GET", "/api/v1/releases").json()["count"] == 0
    )
    assert (
        Caller("a", user=personas.auditor).request("GET", "/api/v1/releases").json()["count"] == 1
    )
    assert Actor.for_user(personas.auditor).person == personas.auditor
