"""Projects: created with their first policy version; renamed only by their admin or a superuser."""

import pytest

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditEvent
from releasegate.errors import InvalidInput, NotPermitted
from releasegate.releases.services import project_create, project_rename
from tests.releases.gatehelpers import snapshot, superuser


def test_new_project_starts_with_the_default_policy_as_version_one(db):
    project = project_create(slug="fraud-scorer", name="Fraud scorer", actor=Actor.system_actor())
    policy = project.current_policy
    assert policy.version == 1
    assert policy.required_approvals == {"security": 1, "sme": 1}
    assert policy.veto_roles == ["security", "sme"]
    assert AuditEvent.objects.latest("id").action == "project_created"


@pytest.mark.parametrize("who", ["admin", "superuser"])
def test_project_admin_or_superuser_renames_a_project(personas, who):
    p = personas
    actor = Actor.for_user(superuser()) if who == "superuser" else p.actor("admin")
    project_rename(project=p.project, actor=actor, name="  Support bot  ")
    p.project.refresh_from_db()
    assert (p.project.slug, p.project.name) == ("support-assistant", "Support bot")
    assert AuditEvent.objects.latest("id").action == "project_renamed"


@pytest.mark.parametrize("who", ["requester", "security", "sme", "auditor", "outsider"])
def test_nobody_else_renames_a_project(personas, who):
    before = snapshot()
    with pytest.raises(NotPermitted):
        project_rename(project=personas.project, actor=personas.actor(who), name="Mine now")
    assert snapshot() == before


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, None])
def test_bad_project_name_is_refused(personas, name):
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        project_rename(project=personas.project, actor=personas.actor("admin"), name=name)
    assert refused.value.errors[0].field == "name"
    assert snapshot() == before


def test_renaming_to_the_same_name_adds_no_event(personas):
    before = snapshot()
    project_rename(
        project=personas.project, actor=personas.actor("admin"), name="Support Assistant"
    )
    assert snapshot() == before
