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
from releasegate.incidents.models import Hold
from releasegate.incidents.services import break_glass_confirm, break_glass_request
from releasegate.releases.models import GovernanceChange, Release
from releasegate.releases.services import approval_give, policy_change, veto_cast
from tests.api.conftest import callers
from tests.attestations.conftest import admission_review, image, pod_spec, workload
from tests.builders import (
    attach_all,
    digest_of,
    document,
    make_release,
    pass_checks,
    submitted_release,
)
from tests.conftest import make_personas
from tests.incidents.payloads import alert, notification

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


def _incident_cases(r: int, ids: dict[str, int]) -> dict[str, Case]:
    """Alert intake, hold lift and break-glass: `ids` names the hold and break-glass rows."""
    hold, pending, confirmed = ids["hold"], ids["pending"], ids["confirmed"]
    return {
        "alerts": Case(
            "POST",
            "/api/v1/projects/support-assistant/alerts",
            notification(alert("ToxicOutputRate", releasegate_digest=digest_of("nothing"))),
            {
                **expected(people={"*": 403}, scopes={"*": 403}),
                "service:alerts:write": 202,
            },
        ),
        "hold_lift": Case(
            "POST",
            f"/api/v1/releases/{ids['hold_release']}/holds/{hold}/lift",
            {"reason": "checked"},
            expected(people={"security": 200, "*": 403}, scopes={"*": 403}),
        ),
        "break_glass": Case(
            "POST",
            f"/api/v1/releases/{r}/break-glass",
            {"reason": "outage", "incident": "INC-1"},
            expected(people={"requester": 201, "admin": 201, "*": 403}, scopes={"*": 403}),
        ),
        "break_glass_confirm": Case(
            "POST",
            f"/api/v1/releases/{ids['pending_release']}/break-glass/{pending}/confirm",
            {"reason": "seen"},
            expected(people={"security": 200, "*": 403}, scopes={"*": 403}),
        ),
        "break_glass_review": Case(
            "POST",
            f"/api/v1/releases/{ids['confirmed_release']}/break-glass/{confirmed}/review",
            {"summary": "root cause found"},
            expected(people={"security": 200, "*": 403}, scopes={"*": 403}),
        ),
    }


def _admin_in_person(status: int) -> dict[str, int]:
    """Only the project admin, signed in: a token (even the admin's own) never sets trust."""
    table = expected(people={"admin": status, "*": 403}, scopes={"*": 403})
    table["token:admin"] = 403
    return table


GITHUB = "https://token.actions.githubusercontent.com"
ANYONE_401 = expected(people={"*": 401}, outsider=401, scopes={"*": 401}, other_project=401)


def _identity_cases(policy_id: int, mapping_id: int) -> dict[str, Case]:
    trust = "/api/v1/projects/support-assistant/trust-policies"
    groups = "/api/v1/projects/support-assistant/group-mappings"
    return {
        "group_mappings_list": Case("GET", groups, None, READ),
        "group_mapping_add": Case(
            "POST", groups, {"group": "auditors", "role": "auditor"}, _admin_in_person(201)
        ),
        # A guarded role: the mapping waits for a holder of it.
        "group_mapping_request": Case(
            "POST", groups, {"group": "experts", "role": "sme"}, _admin_in_person(202)
        ),
        "group_mapping_remove": Case(
            "DELETE", f"{groups}/{mapping_id}", None, _admin_in_person(204)
        ),
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
    }


def _cases(release: Release, draft: Release, veto_id: int, request_id: int) -> dict[str, Case]:
    r = release.pk
    governance = f"/api/v1/projects/support-assistant/governance-requests/{request_id}"
    only = expected  # readability: only these people, every scope refused
    return {
        "withdraw": Case(
            "POST",
            f"/api/v1/releases/{draft.pk}/withdraw",
            {"reason": "replaced"},
            only(people={"requester": 200, "admin": 200, "*": 403}, scopes={"*": 403}),
        ),
        "governance_list": Case(
            "GET", "/api/v1/projects/support-assistant/governance-requests", None, READ
        ),
        # The request is the admin's own: a security holder confirms or rejects, its author
        # (only) cancels.
        "governance_confirm": Case(
            "POST",
            f"{governance}/confirm",
            {},
            only(people={"security": 200, "*": 403}, scopes={"*": 403}),
        ),
        "governance_reject": Case(
            "POST",
            f"{governance}/reject",
            {"reason": "too loose"},
            only(people={"security": 200, "*": 403}, scopes={"*": 403}),
        ),
        "governance_cancel": Case(
            "POST",
            f"{governance}/cancel",
            {},
            only(people={"admin": 200, "*": 403}, scopes={"*": 403}),
        ),
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
        "project_audit": Case(
            "GET",
            "/api/v1/projects/support-assistant/audit",
            None,
            expected(people={"admin": 200, "auditor": 200, "*": 403}, scopes={"*": 403}),
        ),
        "promote": Case(
            "POST",
            f"/api/v1/releases/{r}/promote",
            None,
            expected(
                people={"requester": 200, "*": 403}, scopes={"releases:promote": 200, "*": 403}
            ),
        ),
        "attestation": Case(
            "GET",
            f"/api/v1/releases/{r}/attestation",
            None,
            {
                **expected(people={"*": 200}, scopes={"gate:read": 200, "*": 403}),
                "service:attestations:read": 200,
            },
        ),
        # Public keys are public: no credential is read, so even a bad one is no refusal.
        "keys": Case(
            "GET",
            "/api/v1/attestations/keys",
            None,
            {
                **expected(people={"*": 200}, outsider=200, scopes={"*": 200}, other_project=200),
                **dict.fromkeys(UNAUTHENTICATED, 200),
            },
        ),
        "revocations": Case(
            "GET",
            "/api/v1/attestations/revocations",
            None,
            expected(people={"*": 200}, outsider=200, scopes={"*": 200}, other_project=200),
        ),
        "admission": Case(
            "POST",
            "/api/v1/admission/production",
            admission_review(workload("Pod", pod_spec(image(release)))),
            {
                **expected(people={"*": 403}, outsider=403, scopes={"*": 403}, other_project=200),
                "service:admission:review": 200,
                "service:alerts:write": 403,
                "service:attestations:read": 403,
            },
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
    held = submitted_release(personas.project, personas.requester, version="1.4.0")
    hold = Hold.objects.create(
        project=personas.project,
        release=held,
        fingerprint="a1b2c3d4e5f60718",
        alert_name="ToxicOutputRate",
        severity="critical",
        since=timezone.now(),
    )
    pending_release = submitted_release(personas.project, personas.requester, version="1.2.0")
    pending = break_glass_request(
        release=pending_release, actor=personas.actor("requester"), reason="x", incident="I"
    )
    confirmed_release = submitted_release(personas.project, personas.requester, version="1.3.0")
    confirmed = break_glass_request(
        release=confirmed_release, actor=personas.actor("requester"), reason="x", incident="I"
    )
    break_glass_confirm(break_glass=confirmed, actor=personas.actor("security"), reason="ok")
    from releasegate.identity.services import group_mapping_add, trust_policy_add

    policy = trust_policy_add(
        project=personas.project,
        actor=personas.actor("admin"),
        issuer=GITHUB,
        audience="releasegate",
        claims={"repository_id": "7"},
        scopes=["gate:read"],
    )
    mapping = group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="audit", role="auditor"
    )
    ids = {
        "hold": hold.pk,
        "hold_release": held.pk,
        "pending": pending.pk,
        "pending_release": pending_release.pk,
        "confirmed": confirmed.pk,
        "confirmed_release": confirmed_release.pk,
    }
    pending = policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={"max_approval_age_days": 30},
    )
    assert isinstance(pending, GovernanceChange)
    return {
        "cases": {
            **_cases(release, draft, veto_security.pk, pending.pk),
            **_incident_cases(release.pk, ids),
            **_identity_cases(policy.pk, mapping.pk),
        },
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
    "project_audit",
    "promote",
    "withdraw",
    "governance_list",
    "governance_confirm",
    "governance_reject",
    "governance_cancel",
    "attestation",
    "keys",
    "revocations",
    "admission",
    "alerts",
    "hold_lift",
    "break_glass",
    "break_glass_confirm",
    "break_glass_review",
    "trust_policies_list",
    "trust_policy_add",
    "trust_policy_remove",
    "oidc_exchange",
    "group_mappings_list",
    "group_mapping_add",
    "group_mapping_request",
    "group_mapping_remove",
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
        "api-withdraw",
        "api-governance-requests",
        "api-governance-confirm",
        "api-governance-reject",
        "api-governance-cancel",
        "api-project-audit",
        "api-release-attestation",
        "api-attestation-keys",
        "api-attestation-revocations",
        "api-admission",
        "api-alerts",
        "api-hold-lift",
        "api-break-glass",
        "api-break-glass-confirm",
        "api-break-glass-review",
        "api-oidc-exchange",
        "api-trust-policies",
        "api-trust-policy",
        "api-group-mappings",
        "api-group-mapping",
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
