"""The Django admin is no path around the gate: a superuser may look, not act."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from guardian.models import UserObjectPermission

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditEvent
from releasegate.checks.advisories import advisories_import
from releasegate.checks.models import Advisory, CheckResult, Waiver
from releasegate.checks.waivers import advisory_waive
from releasegate.errors import NotPermitted
from releasegate.releases.demo import DEMO_ADVISORIES
from releasegate.releases.models import (
    Approval,
    Evidence,
    GatePolicy,
    Project,
    Promotion,
    Release,
    Veto,
)
from releasegate.releases.services import approval_give, release_promote, role_grant, veto_cast
from tests.releases.gatehelpers import cleared_release, snapshot, superuser

READ_ONLY = [
    GatePolicy,
    Release,
    Evidence,
    Approval,
    Veto,
    Promotion,
    CheckResult,
    Advisory,
    Waiver,
]


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def world(personas):
    """One of every domain object: a promoted release with a veto on it."""
    p = personas
    release = cleared_release(p)
    release_promote(release=release, actor=p.actor("requester"))
    veto_cast(release=release, actor=p.actor("security"), role="security", reason="late finding")
    advisories_import(path=DEMO_ADVISORIES)
    advisory_waive(
        project=p.project,
        actor=p.actor("security"),
        advisory_id=Advisory.objects.first().osv_id,
        reason="not reachable in our deployment",
        expires_at=timezone.now() + timedelta(days=30),
    )
    return p


@pytest.fixture
def root_client(client):
    client.force_login(superuser())
    return client


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", [Project, *READ_ONLY], ids=lambda m: m.__name__)
def test_changelist_and_detail_render_for_a_superuser(world, root_client, model):
    assert root_client.get(_url(model, "changelist")).status_code == 200
    obj = model.objects.first()
    page = root_client.get(_url(model, "change", obj.pk))
    assert page.status_code == 200


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda m: m.__name__)
def test_superuser_cannot_add_change_or_delete_gate_records(world, root_client, model):
    obj = model.objects.first()
    before = snapshot()
    assert root_client.post(_url(model, "add"), {}).status_code == 403
    assert root_client.post(_url(model, "change", obj.pk), {"state": "promoted"}).status_code == 403
    assert root_client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    root_client.post(
        _url(model, "changelist"), {"action": "delete_selected", "_selected_action": [obj.pk]}
    )
    assert model.objects.filter(pk=obj.pk).exists()
    assert snapshot() == before


@pytest.mark.parametrize("model", [Project, *READ_ONLY], ids=lambda m: m.__name__)
def test_admin_offers_no_add_change_or_delete_buttons(world, root_client, model):
    page = root_client.get(_url(model, "change", model.objects.first().pk)).content.decode()
    assert "deletelink" not in page
    assert _url(model, "add") not in root_client.get(_url(model, "changelist")).content.decode()
    if model is not Project:
        assert 'name="_save"' not in page


def test_project_name_is_the_only_editable_field_and_is_audited(world, root_client):
    project = world.project
    policy = project.current_policy_id
    response = root_client.post(
        _url(Project, "change", project.pk),
        {"name": "Support Assistant v2", "slug": "hijacked", "current_policy": ""},
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.slug, project.name, project.current_policy_id) == (
        "support-assistant",
        "Support Assistant v2",
        policy,
    )
    event = AuditEvent.objects.latest("id")
    assert (event.action, event.actor, event.data["previous"]) == (
        "project_renamed",
        "root",
        "Support Assistant",
    )


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


def test_superuser_cannot_add_or_delete_a_project(world, root_client):
    before = snapshot()
    assert root_client.post(_url(Project, "add"), {"slug": "x", "name": "X"}).status_code == 403
    response = root_client.post(_url(Project, "delete", world.project.pk), {"post": "yes"})
    assert response.status_code == 403
    assert snapshot() == before


def test_people_without_staff_status_are_sent_to_the_login(world, client):
    client.force_login(world.security)
    response = client.get(_url(Release, "changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_role_permissions_are_not_editable_in_the_admin():
    # Roles are object permissions granted only through role_grant, with its rules.
    assert not admin.site.is_registered(UserObjectPermission)


def test_a_global_role_permission_gives_no_role(personas):
    # A superuser could tick "holds the security role" on a user in the auth admin: that is a
    # global permission, and roles are only ever per project.
    root = superuser()
    root.user_permissions.add(Permission.objects.get(codename="role_security"))
    release = cleared_release(personas)
    approval_count = Approval.objects.count()
    with pytest.raises(NotPermitted):
        approval_give(release=release, actor=Actor.for_user(root), role="security")
    assert Approval.objects.count() == approval_count
