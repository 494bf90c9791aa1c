"""The policy page offers only the CI tokens the operator binds to an origin
(RELEASEGATE_EXTERNAL_CI_TOKENS) and shows `policy_change`'s refusal of one sent elsewhere."""

import pytest

from releasegate.releases.models import GatePolicy, GovernanceChange
from releasegate.releases.services import policy_change
from tests.builders import confirmed
from tests.web.helpers import signed_in, text

pytestmark = pytest.mark.django_db

CI = "https://ci.example.com/api/v4/projects/1/pipelines/latest"
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


@pytest.fixture(autouse=True)
def bound(settings):
    settings.RELEASEGATE_EXTERNAL_CI_TOKENS = {
        "GITLAB_CI_TOKEN": "https://ci.example.com",
        "GITHUB_CI_TOKEN": "https://api.github.com",
    }


@pytest.fixture
def ci_with_token(personas):
    policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={"external_ci": {"url": CI, "format": "gitlab", "token_env": "GITLAB_CI_TOKEN"}},
    )


def test_the_form_offers_the_bound_tokens_only_with_their_origin(client, personas, ci_with_token):
    page = text(signed_in(client, personas.admin).get("/projects/support-assistant/"))
    assert '<option value="GITLAB_CI_TOKEN" selected>GITLAB_CI_TOKEN (only to ' in page
    assert "GITHUB_CI_TOKEN (only to https://api.github.com)" in page
    assert "DATABASE_URL" not in page


def test_moving_the_url_to_another_origin_with_its_token_is_refused_on_the_page(
    client, personas, ci_with_token
):
    versions = GatePolicy.objects.filter(project=personas.project).count()
    response = signed_in(client, personas.admin).post(
        "/projects/support-assistant/policy/",
        {
            **FORM,
            "external_ci_url": "https://collector.example.net/collect",
            "external_ci_token_env": "GITLAB_CI_TOKEN",
        },
    )
    assert response.status_code == 400
    assert "GITLAB_CI_TOKEN may be sent only to https://ci.example.com" in text(response)
    assert "RELEASEGATE_EXTERNAL_CI_TOKENS" in text(response)
    assert GatePolicy.objects.filter(project=personas.project).count() == versions
    assert not GovernanceChange.objects.exists()


@pytest.mark.parametrize(
    ("url", "token_env"),
    [
        ("https://ci.example.com/api/v4/projects/2/pipelines/latest", "GITLAB_CI_TOKEN"),
        ("https://collector.example.net/collect", ""),  # elsewhere, without a token
        ("https://api.github.com/repos/o/r/commits/{version}/check-runs", "GITHUB_CI_TOKEN"),
    ],
)
def test_a_url_with_its_own_bound_token_or_none_is_accepted(
    client, personas, ci_with_token, url, token_env
):
    response = signed_in(client, personas.admin).post(
        "/projects/support-assistant/policy/",
        {**FORM, "external_ci_url": url, "external_ci_token_env": token_env},
    )
    assert response.status_code == 302
    # The form drops required items and checks: that waits for a security holder.
    confirmed(GovernanceChange.objects.get(status="pending"), by=personas.security)
    personas.project.refresh_from_db()
    external_ci = personas.project.current_policy.external_ci
    assert external_ci["url"] == url
    assert external_ci.get("token_env", "") == token_env


def test_a_token_the_operator_does_not_list_cannot_be_posted(client, personas):
    response = signed_in(client, personas.admin).post(
        "/projects/support-assistant/policy/",
        {
            **FORM,
            "external_ci_url": "https://collector.example.net/",
            "external_ci_token_env": "HOME",
        },
    )
    assert response.status_code == 400
    assert personas.project.current_policy.external_ci == {}
