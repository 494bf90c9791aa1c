"""Per-project roles: held on one project only, never self-granted, bootstrapped by a superuser."""

import pytest
from django.contrib.auth import get_user_model

from releasegate.accounts.actors import Actor
from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import project_ids_with_role, roles_for
from releasegate.audit.models import AuditEvent
from releasegate.errors import InvalidInput, NotPermitted
from releasegate.releases.services import role_grant, role_revoke
from tests.conftest import make_personas


def _user(name):
    return get_user_model().objects.create_user(name, password=f"{name}-password-123")


def test_personas_hold_exactly_their_role(personas):
    p = personas
    assert roles_for(p.requester, p.project) == {Role.REQUESTER}
    assert roles_for(p.security, p.project) == {Role.SECURITY}
    assert roles_for(p.sme, p.project) == {Role.SME}
    assert roles_for(p.admin, p.project) == {Role.ADMIN}
    assert roles_for(p.auditor, p.project) == {Role.AUDITOR}
    assert roles_for(p.outsider, p.project) == frozenset()


def test_a_role_on_one_project_gives_nothing_on_another(personas):
    other = make_personas(slug="other-project", prefix="o_")
    assert roles_for(personas.security, other.project) == frozenset()
    assert project_ids_with_role(personas.security) == [personas.project.pk]


def test_project_admin_grants_and_revokes_roles(personas):
    p = personas
    newcomer = _user("newcomer")
    before = AuditEvent.objects.latest("id").pk
    # requester: not a guarded role (see tests/releases/test_governance_changes.py for those).
    role_grant(project=p.project, user=newcomer, role="requester", actor=p.actor("admin"))
    assert roles_for(newcomer, p.project) == {Role.REQUESTER}
    role_revoke(project=p.project, user=newcomer, role="requester", actor=p.actor("admin"))
    assert roles_for(newcomer, p.project) == frozenset()
    assert list(AuditEvent.objects.filter(id__gt=before).values_list("action", flat=True)) == [
        "role_granted",
        "role_revoked",
    ]


def test_nobody_grants_themselves_a_role(personas):
    p = personas
    before = AuditEvent.objects.count()
    with pytest.raises(NotPermitted) as refused:
        role_grant(project=p.project, user=p.admin, role="security", actor=p.actor("admin"))
    assert refused.value.code == "self_grant"
    assert roles_for(p.admin, p.project) == {Role.ADMIN}
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("who", ["requester", "security", "sme", "auditor", "outsider"])
def test_only_a_project_admin_grants_roles(personas, who):
    p = personas
    newcomer = _user("newcomer")
    with pytest.raises(NotPermitted):
        role_grant(project=p.project, user=newcomer, role="sme", actor=p.actor(who))
    assert roles_for(newcomer, p.project) == frozenset()


def test_superuser_may_only_name_a_project_admin(personas):
    p = personas
    root = get_user_model().objects.create_superuser("root", password="root-password-123")
    newcomer = _user("newcomer")
    for role in ("requester", "security", "sme", "auditor"):
        with pytest.raises(NotPermitted):
            role_grant(project=p.project, user=newcomer, role=role, actor=Actor.for_user(root))
    role_grant(project=p.project, user=newcomer, role="admin", actor=Actor.for_user(root))
    assert roles_for(newcomer, p.project) == {Role.ADMIN}


def test_superuser_cannot_make_themselves_project_admin(personas):
    root = get_user_model().objects.create_superuser("root", password="root-password-123")
    with pytest.raises(NotPermitted) as refused:
        role_grant(project=personas.project, user=root, role="admin", actor=Actor.for_user(root))
    assert refused.value.code == "self_grant"
    assert roles_for(root, personas.project) == frozenset()


def test_unknown_role_is_bad_input(personas):
    p = personas
    newcomer = _user("newcomer")
    with pytest.raises(InvalidInput) as refused:
        role_grant(project=p.project, user=newcomer, role="owner", actor=p.actor("admin"))
    assert refused.value.errors[0].field == "role"


def test_granting_a_held_role_again_changes_nothing(personas):
    p = personas
    before = AuditEvent.objects.count()
    role_grant(project=p.project, user=p.sme, role="sme", actor=p.actor("admin"))
    assert AuditEvent.objects.count() == before


def test_inactive_user_holds_no_role(personas):
    p = personas
    p.security.is_active = False
    p.security.save()
    assert roles_for(p.security, p.project) == frozenset()
