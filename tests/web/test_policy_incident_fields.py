"""The policy form carries the holds' severities and the break-glass time box and review due."""

import pytest

from releasegate.releases.models import GatePolicy, GovernanceChange
from tests.web.helpers import signed_in, text

pytestmark = pytest.mark.django_db

URL = "/projects/support-assistant/policy/"
FORM = {
    "required_items": [
        "sbom",
        "data_flow_map",
        "monitoring_plan",
        "agent_access_review",
        "pipeline_review",
    ],
    "required_checks": [
        "sbom_valid",
        "vulnerabilities",
        "licenses",
        "pipeline_findings",
        "data_flow",
        "monitoring_coverage",
        "least_privilege",
    ],
    "security_approvals": "1",
    "sme_approvals": "1",
    "veto_roles": ["security", "sme"],
    "max_approval_age_days": "14",
    "max_review_age_days": "180",
    "vulnerability_threshold": "high",
    "license_denylist": "AGPL-3.0-only, SSPL-1.0",
    "environments": "production, staging",
}


def _policy(personas) -> GatePolicy:
    personas.project.refresh_from_db()
    return personas.project.current_policy


def test_the_form_shows_the_incident_settings_in_force(client, personas):
    body = signed_in(client, personas.admin).get("/projects/support-assistant/").content.decode()
    assert 'name="hold_severities" value="critical"' in body
    assert 'name="break_glass_hours" value="4"' in body
    assert 'name="break_glass_review_days" value="7"' in body


def test_tightening_them_in_the_form_takes_effect_at_once(client, personas):
    signed_in(client, personas.admin)
    data = {
        **FORM,
        "hold_severities": "critical, high",
        "break_glass_hours": "2",
        "break_glass_review_days": "3",
    }
    assert client.post(URL, data).status_code == 302
    policy = _policy(personas)
    assert policy.version == 2
    assert (policy.hold_severities, policy.break_glass_hours, policy.break_glass_review_days) == (
        ["critical", "high"],
        2,
        3,
    )


def test_loosening_them_in_the_form_waits_for_a_security_holder(client, personas):
    signed_in(client, personas.admin)
    data = {**FORM, "hold_severities": "", "break_glass_hours": "8", "break_glass_review_days": "7"}
    assert client.post(URL, data).status_code == 302
    assert _policy(personas).version == 1
    change = GovernanceChange.objects.get(project=personas.project, status="pending")
    assert change.weakenings == [
        "a critical production alert no longer holds a release",
        "a break-glass lasts 8 hours instead of 4",
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [("break_glass_hours", "0"), ("break_glass_hours", "73"), ("break_glass_review_days", "x")],
)
def test_a_bad_incident_setting_is_named_and_changes_nothing(client, personas, field, value):
    signed_in(client, personas.admin)
    data = {
        **FORM,
        "hold_severities": "critical",
        "break_glass_hours": "4",
        "break_glass_review_days": "7",
        field: value,
    }
    response = client.post(URL, data)
    assert response.status_code == 400
    body = text(response)
    assert f'id="id_{field}-error"' in body
    assert body.count('class="error"') == 1
    assert GatePolicy.objects.filter(project=personas.project).count() == 1


def test_a_bad_severity_label_is_named_and_changes_nothing(client, personas):
    signed_in(client, personas.admin)
    data = {
        **FORM,
        "hold_severities": "critical, not a label!",
        "break_glass_hours": "4",
        "break_glass_review_days": "7",
    }
    response = client.post(URL, data)
    assert response.status_code == 400
    assert "Alert severities that hold a release: up to 10 severity label values" in text(response)
    assert GatePolicy.objects.filter(project=personas.project).count() == 1
