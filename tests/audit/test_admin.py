"""The audit trail in the admin: a superuser reads it and can change nothing."""

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from releasegate.audit.models import AuditChain, AuditEvent
from tests.builders import make_release


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def root_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", password="root-pw-123"))
    return client


def test_audit_trail_renders_read_only_for_a_superuser(personas, root_client):
    make_release(personas.project, personas.requester)
    event = AuditEvent.objects.latest("id")
    listing = root_client.get(reverse("admin:audit_auditevent_changelist"))
    assert listing.status_code == 200
    assert "release_created" in listing.content.decode()
    detail = root_client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()


def test_superuser_cannot_add_change_or_delete_audit_events(personas, root_client):
    make_release(personas.project, personas.requester)
    event = AuditEvent.objects.latest("id")
    count = AuditEvent.objects.count()
    add = root_client.post(reverse("admin:audit_auditevent_add"), {"action": "forged"})
    change = root_client.post(
        reverse("admin:audit_auditevent_change", args=[event.pk]), {"actor": "mallory"}
    )
    delete = root_client.post(
        reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}
    )
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    root_client.post(
        reverse("admin:audit_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk]},
    )
    assert AuditEvent.objects.count() == count
    assert AuditEvent.objects.get(pk=event.pk).actor == event.actor


def test_chain_heads_are_not_in_the_admin():
    assert not admin.site.is_registered(AuditChain)
