"""The admin shows notification targets and deliveries, read-only, and never a webhook secret."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from releasegate.notifications.models import Delivery, NotificationTarget
from releasegate.notifications.services import deliveries_create, notification_target_add
from tests.builders import submitted_release
from tests.conftest import Personas
from tests.releases.gatehelpers import superuser


@pytest.fixture(autouse=True)
def _plain_static_files(settings: Any) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def test_the_admin_shows_targets_and_deliveries_but_never_the_secret(
    personas: Personas, client: Client
) -> None:
    target, secret = notification_target_add(
        project=personas.project,
        actor=personas.actor("admin"),
        kind="webhook",
        url="https://hooks.example.com/rg",
        events=["promoted"],
    )
    release = submitted_release(personas.project, personas.requester)
    (delivery,) = deliveries_create(
        targets=[target], event="promoted", release=release, dedupe_key="promoted", payload={}
    )
    client.force_login(superuser())
    pages = [
        client.get(reverse("admin:notifications_notificationtarget_changelist")),
        client.get(reverse("admin:notifications_notificationtarget_change", args=[target.pk])),
        client.get(reverse("admin:notifications_delivery_changelist")),
        client.get(reverse("admin:notifications_delivery_change", args=[delivery.pk])),
    ]
    assert [page.status_code for page in pages] == [200] * 4
    assert all(secret.encode() not in page.content for page in pages)
    assert b"https://hooks.example.com/rg" in pages[1].content
    # Read-only: no adding, changing or deleting around the audited services.
    add = client.get(reverse("admin:notifications_notificationtarget_add"))
    change = client.post(
        reverse("admin:notifications_notificationtarget_change", args=[target.pk]), {"events": "[]"}
    )
    delete = client.post(
        reverse("admin:notifications_delivery_delete", args=[delivery.pk]), {"post": "yes"}
    )
    assert add.status_code == change.status_code == delete.status_code == 403
    assert NotificationTarget.objects.get().events == ["promoted"]
    assert Delivery.objects.count() == 1
