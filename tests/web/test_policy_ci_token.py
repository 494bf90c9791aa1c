"""A project admin moving the external CI URL to another host does not take the worker's CI
token (named by the operator in `token_env`) along with it."""

import pytest

from releasegate.releases.models import GovernanceChange
from releasegate.releases.services import policy_change
from tests.builders import confirmed
from tests.web.helpers import signed_in

pytestmark = pytest.mark.django_db

FORM = {
    "required_items": ["sbom"],
    "required_checks": ["external_ci"],
    "security_approvals": "1",
    "sme_approvals": "1",
    "veto_roles": ["security", "sme"],
    "max_approval_age_days": "14",
    "max_review_age_days": "180",
    "vulnerability_threshold": "high",
    "environments": "production, staging",
    "hold_severities": "critical",
    "break_glass_hours": "4",
    "break_glass_review_days": "7",
    "note": "moved CI",
}


@pytest.fixture
def ci_with_token(personas):
    policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={
            "external_ci": {
                "url": "https://ci.example.com/api/v4/projects/1/pipelines/latest",
                "format": "gitlab",
                "token_env": "RELEASEGATE_CI_TOKEN",
            }
        },
    )


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://attacker.example.net/collect", False),
        ("http://ci.example.com/api/v4/projects/1/pipelines/latest", False),
        ("https://ci.example.com/api/v4/projects/2/pipelines/latest", True),
    ],
)
def test_the_ci_token_stays_only_with_the_same_origin(client, personas, ci_with_token, url, kept):
    response = signed_in(client, personas.admin).post(
        "/projects/support-assistant/policy/", {**FORM, "external_ci_url": url}
    )

    assert response.status_code == 302
    # The form drops required items and checks: that waits for a security holder.
    confirmed(GovernanceChange.objects.get(status="pending"), by=personas.security)
    personas.project.refresh_from_db()
    external_ci = personas.project.current_policy.external_ci
    assert external_ci["url"] == url
    assert ("token_env" in external_ci) is kept


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://attacker.example.net/collect", False),
        ("http://ci.example.com/api/v4/projects/1/pipelines/latest", False),
        ("https://ci.example.com/api/v4/projects/2/pipelines/latest", True),
    ],
)
def test_policy_change_itself_drops_the_ci_token_when_the_url_moves_to_another_origin(
    personas, ci_with_token, url, kept
):
    # The API, the CLI and the admin all reach the service without the page's form.
    outcome = policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={
            "external_ci": {"url": url, "format": "gitlab", "token_env": "RELEASEGATE_CI_TOKEN"}
        },
    )
    external_ci = confirmed(outcome, by=personas.security).external_ci
    assert external_ci["url"] == url
    assert ("token_env" in external_ci) is kept
