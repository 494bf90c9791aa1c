"""Management commands: seed_demo (the brief's demo), verify_audit's exit status, create_project."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import roles_for
from releasegate.audit.models import AuditEvent
from releasegate.releases.models import Project
from releasegate.releases.selectors import policy_facts

# username -> (roles on support-assistant, roles on claims-triage)
DEMO_ROLES = {
    "alice": ({Role.REQUESTER}, set()),
    "sam": ({Role.SECURITY}, set()),
    "erin": ({Role.SME}, set()),
    "olga": ({Role.ADMIN}, set()),
    "audrey": ({Role.AUDITOR}, set()),
    "oscar": (set(), set()),
    "ravi": (set(), {Role.REQUESTER}),
    "sofia": (set(), {Role.SECURITY}),
    "elena": (set(), {Role.SME}),
}
DEMO_PROJECTS = ("support-assistant", "claims-triage")


def _projects() -> list[Project]:
    return [Project.objects.get(slug=slug) for slug in DEMO_PROJECTS]


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_is_refused_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError) as refused:
        _seed()
    assert "DEBUG" in str(refused.value)
    assert not Project.objects.exists()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_seed_demo_creates_exactly_the_demo_people_and_roles(settings):
    settings.DEBUG = True
    output = _seed()
    assert sorted(Project.objects.values_list("slug", flat=True)) == sorted(DEMO_PROJECTS)
    users = {u.username: u for u in get_user_model().objects.all()}
    assert set(users) == set(DEMO_ROLES)
    for name, roles in DEMO_ROLES.items():
        assert tuple(roles_for(users[name], p) for p in _projects()) == roles, name
        assert not users[name].is_superuser
        assert users[name].check_password(f"{name}-releasegate-demo")
        assert f"{name}-releasegate-demo" in output
        assert name in output


@pytest.mark.django_db
def test_seed_demo_uses_the_default_policy_with_olgas_one_change(settings):
    settings.DEBUG = True
    _seed()
    project = Project.objects.get(slug="support-assistant")
    assert project.current_policy.version == 2
    assert project.current_policy.created_by.username == "olga"
    assert project.current_policy.license_denylist == ["AGPL-3.0-only", "SSPL-1.0", "BUSL-1.1"]
    policy = policy_facts(project.current_policy)
    assert set(policy.required_items) == {
        "pipeline_review",
        "data_flow_map",
        "sbom",
        "monitoring_plan",
        "agent_access_review",
    }
    assert "external_ci" not in policy.required_checks
    assert len(policy.required_checks) == 7
    assert policy.required_approvals == {"security": 1, "sme": 1}
    assert policy.max_approval_age.days == 14
    assert project.current_policy.veto_roles == ["security", "sme"]


@pytest.mark.django_db
def test_seed_demo_twice_is_harmless(settings):
    settings.DEBUG = True
    _seed()
    events = AuditEvent.objects.count()
    _seed()
    assert Project.objects.count() == len(DEMO_PROJECTS)
    assert get_user_model().objects.count() == len(DEMO_ROLES)
    assert AuditEvent.objects.count() == events
    for user in get_user_model().objects.all():
        roles = tuple(roles_for(user, p) for p in _projects())
        assert roles == DEMO_ROLES[user.username]


@pytest.mark.django_db
def test_verify_audit_exits_zero_on_an_intact_trail(settings):
    settings.DEBUG = True
    _seed()
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "intact" in out.getvalue()


def test_create_project_names_its_admin_with_the_default_policy(db):
    olga = get_user_model().objects.create_user("olga2", password="x-password-123")
    out = io.StringIO()
    call_command(
        "create_project", "fraud-model", "--name", "Fraud model", "--admin", "olga2", stdout=out
    )

    project = Project.objects.get(slug="fraud-model")
    assert roles_for(olga, project) == frozenset({Role.ADMIN})
    assert project.current_policy.version == 1
    assert project.current_policy.required_approvals == {"security": 1, "sme": 1}
    assert "olga2 is its admin" in out.getvalue()


def test_create_project_refuses_an_unknown_admin_and_creates_nothing(db):
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("create_project", "fraud-model", "--name", "Fraud", "--admin", "nobody")
    assert not Project.objects.filter(slug="fraud-model").exists()


@pytest.mark.parametrize(
    "slug", ["new-project\n", "new-pr\u043eject", "New-Project", "new-project ", "x" * 65]
)
def test_create_project_refuses_a_slug_that_is_not_matched_whole(personas, slug):
    before = Project.objects.count()
    with pytest.raises(CommandError, match="slug"):
        call_command("create_project", slug, "--name", "New", "--admin", personas.admin.username)
    assert Project.objects.count() == before


def test_create_token_names_no_project_for_a_slug_with_a_trailing_newline(personas):
    with pytest.raises(CommandError, match="No project"):
        call_command("create_token", "--project", "support-assistant\n", "--scopes", "gate:read")
