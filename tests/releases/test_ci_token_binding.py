"""The worker sends a CI bearer token (`policy.external_ci.token_env`) only if the operator lists
the variable in RELEASEGATE_EXTERNAL_CI_TOKENS, and only to the origin bound to it: a project
admin chooses among those tokens, never another secret of the worker's environment.

`policy_change` (and `project_create`, and the confirmation of a pending request) refuse anything
else, whoever calls them; the worker checks again before it sends (tests/checks/test_tasks.py).
"""

import pytest

from releasegate.audit.models import AuditEvent
from releasegate.errors import InvalidInput
from releasegate.releases.models import GatePolicy, GovernanceChange, Project
from releasegate.releases.services import policy_change, project_create
from tests.api.conftest import Caller
from tests.builders import DEFAULT_CHECKS

pytestmark = pytest.mark.django_db

CI = "https://ci.example.com/api/v4/projects/1/pipelines/latest"


@pytest.fixture(autouse=True)
def bound(settings):
    settings.RELEASEGATE_EXTERNAL_CI_TOKENS = {"GITLAB_CI_TOKEN": "https://ci.example.com"}


def _change(personas, **external_ci):
    return policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={"external_ci": {"format": "gitlab", **external_ci}},
    )


def _refused(personas, **external_ci) -> str:
    """The message of the refusal, once it is clear nothing was stored."""
    versions = GatePolicy.objects.filter(project=personas.project).count()
    events = AuditEvent.objects.count()
    with pytest.raises(InvalidInput) as refused:
        _change(personas, **external_ci)
    assert refused.value.code == "ci_token_not_allowed"
    [error] = refused.value.errors
    assert error.field == "external_ci.token_env"
    assert "RELEASEGATE_EXTERNAL_CI_TOKENS" in error.message
    assert GatePolicy.objects.filter(project=personas.project).count() == versions
    assert not GovernanceChange.objects.exists()
    assert AuditEvent.objects.count() == events
    return error.message


@pytest.mark.parametrize(
    "token_env", ["DATABASE_URL", "RELEASEGATE_SIGNING_KEY", "SECRET_KEY", "HOME", "ci_token"]
)
def test_a_project_without_ci_cannot_have_a_worker_secret_sent_to_its_own_server(
    personas, token_env
):
    assert personas.project.current_policy.external_ci == {}
    message = _refused(personas, url="https://collector.example.net/", token_env=token_env)
    assert "not a CI token the operator lets workers send" in message
    assert "listed: GITLAB_CI_TOKEN" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://ci.example.com/api/v4/projects/1/pipelines/latest",  # another scheme
        "https://ci.example.com:8443/api/v4/projects/1/pipelines/latest",  # another port
        "https://ci.example.com.collector.example.net/pipelines",
        "https://ci.example.com@collector.example.net/pipelines",
        "https://ci.example.com\\@collector.example.net/pipelines",
        "https://{version}.ci.example.com/pipelines",
        "https://ci.example.com{version}/pipelines",
        "ci.example.com/pipelines",
    ],
)
def test_a_bound_token_is_refused_for_any_other_origin(personas, url):
    message = _refused(personas, url=url, token_env="GITLAB_CI_TOKEN")
    assert "GITLAB_CI_TOKEN may be sent only to https://ci.example.com" in message


@pytest.mark.parametrize(
    "url",
    [
        CI,
        "https://CI.example.com:443/api/v4/projects/2/pipelines/latest?ref={version}",
    ],
)
def test_a_bound_token_goes_to_its_own_origin(personas, url):
    new = _change(personas, url=url, token_env="GITLAB_CI_TOKEN")
    assert new.external_ci == {"url": url, "format": "gitlab", "token_env": "GITLAB_CI_TOKEN"}


def test_moving_the_url_elsewhere_with_the_token_is_refused_and_without_it_accepted(personas):
    _change(personas, url=CI, token_env="GITLAB_CI_TOKEN")
    moved = "https://gitlab.collector.example.net/api/v4/projects/1/pipelines/latest"
    _refused(personas, url=moved, token_env="GITLAB_CI_TOKEN")
    # No token named: any URL, since nothing secret goes with it.
    assert _change(personas, url=moved).external_ci == {"url": moved, "format": "gitlab"}


def test_a_change_that_leaves_external_ci_alone_is_not_asked_about_it(personas, settings):
    _change(personas, url=CI, token_env="GITLAB_CI_TOKEN")
    # The operator withdraws the token: the policy's other settings still change (the worker
    # refuses to send it, and says why, until the admin picks another one).
    settings.RELEASEGATE_EXTERNAL_CI_TOKENS = {}
    new = policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={"max_approval_age_days": 7},
    )
    assert new.max_approval_age_days == 7


def test_a_new_project_cannot_start_with_an_unbound_token(personas):
    with pytest.raises(InvalidInput) as refused:
        project_create(
            slug="fresh",
            name="Fresh",
            actor=personas.actor("admin"),
            policy={"external_ci": {"url": "https://collector.example.net/", "token_env": "HOME"}},
        )
    assert refused.value.code == "ci_token_not_allowed"
    assert not Project.objects.filter(slug="fresh").exists()


def test_a_request_asked_under_another_binding_is_not_applied_through_the_api(personas, settings):
    p = personas
    policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={
            "required_checks": [*DEFAULT_CHECKS, "external_ci"],
            "external_ci": {"url": CI, "format": "gitlab"},
        },
    )
    # Changing the CI system a required check asks waits for a security holder.
    pending = _change(p, url=CI.replace("projects/1", "projects/2"), token_env="GITLAB_CI_TOKEN")
    assert isinstance(pending, GovernanceChange)
    settings.RELEASEGATE_EXTERNAL_CI_TOKENS = {"GITLAB_CI_TOKEN": "https://gitlab.example.org"}

    response = Caller("security", user=p.security).request(
        "POST", f"/api/v1/projects/{p.project.slug}/governance-requests/{pending.pk}/confirm", {}
    )

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "ci_token_not_allowed"
    assert "GITLAB_CI_TOKEN may be sent only to https://gitlab.example.org" in body["message"]
    p.project.refresh_from_db()
    assert "token_env" not in p.project.current_policy.external_ci
    pending.refresh_from_db()
    assert pending.status == GovernanceChange.Status.PENDING
