"""Renaming a project in the admin: staff with only the model permission are refused plainly
(403), never a server error, and the name does not change."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from releasegate.accounts.actors import Actor
from releasegate.releases.services import role_grant

pytestmark = pytest.mark.django_db


def _staff(username: str):
    user = get_user_model().objects.create_user(
        username, password="staff-password-123", is_staff=True
    )
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_project", "view_project"])
    )
    return user


def _rename(user, project, name: str):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client.post(f"/admin/releases/project/{project.pk}/change/", {"name": name})


def test_staff_who_is_not_the_project_admin_cannot_rename_it(personas):
    response = _rename(_staff("staffer"), personas.project, "Renamed")

    assert response.status_code == 403
    personas.project.refresh_from_db()
    assert personas.project.name == "Support Assistant"


def test_staff_who_is_the_project_admin_renames_it(personas):
    staffer = _staff("staffer")
    role_grant(project=personas.project, user=staffer, role="admin", actor=Actor.system_actor())

    response = _rename(staffer, personas.project, "Renamed")

    assert response.status_code == 302
    personas.project.refresh_from_db()
    assert personas.project.name == "Renamed"
