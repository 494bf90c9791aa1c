"""The Django user admin is no side door: every change is audited and told to the security holders
concerned, and a superuser cannot set the password of a person who holds a role."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client

from releasegate.audit.models import AuditEvent
from releasegate.celery import app as celery_app
from tests.releases.gatehelpers import superuser

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_static_files(settings: Any) -> None:
    # The admin's pages name static files; the tests collect none into a manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    conf = celery_app.conf
    previous = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    try:
        yield
    finally:
        conf.task_always_eager, conf.task_eager_propagates = previous


@pytest.fixture
def root_client(personas: Any) -> Client:
    client = Client()
    client.force_login(superuser())
    return client


def _form(client: Client, user: Any, **overrides: Any) -> dict[str, Any]:
    """The user change form as the admin page renders it, with `overrides`."""
    page = client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [],
        "user_permissions": [],
    }
    # The dates, and the hidden initial values a browser posts with them (a field with a
    # callable default is compared against those).
    for name in ("last_login_0", "last_login_1", "date_joined_0", "date_joined_1"):
        for posted in (name, f"initial-{name}"):
            found = re.search(rf'name="{posted}" value="([^"]*)"', page)
            data[posted] = found.group(1) if found else ""
    data.update(overrides)
    return {k: v for k, v in data.items() if v != ""}


def test_deactivating_a_reviewer_in_the_admin_is_audited_and_told_to_security_holders(
    personas, root_client, eager_tasks, django_capture_on_commit_callbacks
):
    p = personas
    p.security.email = "sam@example.com"
    p.security.save(update_fields=["email"])
    before = AuditEvent.objects.latest("id").pk
    with django_capture_on_commit_callbacks(execute=True):
        response = root_client.post(
            f"/admin/auth/user/{p.sme.pk}/change/", _form(root_client, p.sme, is_active="")
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    p.sme.refresh_from_db()
    assert not p.sme.is_active
    event = AuditEvent.objects.get(id__gt=before, action="user_changed")
    assert event.actor == "root" and event.project_id == p.project.pk
    assert event.data["changes"] == {"is_active": False} and event.data["roles"] == ["sme"]
    assert [m.bcc for m in mail.outbox] == [["sam@example.com"]]
    assert "is_active of sme" in mail.outbox[0].body


@pytest.mark.parametrize(
    ("field", "value", "recorded"),
    [
        ("is_superuser", "on", True),
        ("is_staff", "on", True),
        ("groups", "GROUP", ["release-managers"]),
        ("user_permissions", "PERM", ["auth.view_user"]),
    ],
)
def test_every_privilege_change_in_the_user_admin_is_audited(
    personas, root_client, field, value, recorded
):
    from django.contrib.auth.models import Permission

    p = personas
    if value == "GROUP":
        value = [Group.objects.create(name="release-managers").pk]
    elif value == "PERM":
        value = [Permission.objects.get(codename="view_user").pk]
    before = AuditEvent.objects.latest("id").pk
    response = root_client.post(
        f"/admin/auth/user/{p.requester.pk}/change/",
        _form(root_client, p.requester, **{field: value}),
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(id__gt=before, action="user_changed")
    assert event.data["changes"] == {field: recorded}


def test_a_superuser_cannot_set_the_password_of_a_role_holder(personas, root_client):
    p = personas
    url = f"/admin/auth/user/{p.security.pk}/password/"
    page = root_client.get(url, follow=True)
    assert "may not set their password" in page.content.decode()
    response = root_client.post(
        url,
        {"password1": "Hijacked-pass-123", "password2": "Hijacked-pass-123"},
        follow=True,
    )
    assert "may not set their password" in response.content.decode()
    p.security.refresh_from_db()
    assert p.security.check_password("security-password-123")
    assert not AuditEvent.objects.filter(action="user_changed").exists()


def test_a_superuser_sets_the_password_of_someone_without_a_role_audited(personas, root_client):
    p = personas
    response = root_client.post(
        f"/admin/auth/user/{p.outsider.pk}/password/",
        {"password1": "Fresh-pass-123456", "password2": "Fresh-pass-123456"},
    )
    assert response.status_code == 302
    p.outsider.refresh_from_db()
    assert p.outsider.check_password("Fresh-pass-123456")
    event = AuditEvent.objects.get(action="user_changed")
    assert event.data["changes"] == {"password_set": True} and event.project_id is None
    assert "Fresh-pass" not in str(event.data)


def test_a_role_holder_cannot_be_deleted_in_the_admin(personas, root_client):
    p = personas
    response = root_client.post(f"/admin/auth/user/{p.sme.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert get_user_model().objects.filter(pk=p.sme.pk).exists()


def test_creating_a_user_in_the_admin_is_audited(personas, root_client):
    response = root_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": "Newbie-pass-12345",
            "password2": "Newbie-pass-12345",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="user_created")
    assert event.data["user"] == "newbie" and event.data["changes"]["password_set"] is True
