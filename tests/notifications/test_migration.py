"""Notifications moved from the ops app into their own: a database migrated before the move keeps
its targets, deliveries and pending notices, readable through the new app, with its permissions."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from releasegate.notifications.models import Delivery, Notice, NotificationTarget
from releasegate.notifications.services import delivery_attempt
from tests.builders import submitted_release
from tests.conftest import Personas

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

# The schema as it was before the move: the models in ops, no notifications app.
OPS_BEFORE = ("ops", "0003_notice_incident")


def _migrate(target: list[tuple[str, str | None]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    return executor.loader.project_state([t for t in target if t[1] is not None]).apps


def _latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def old_schema() -> Iterator[Any]:
    apps = _migrate([OPS_BEFORE, ("notifications", None)])
    try:
        yield apps
    finally:
        _migrate(_latest())


def test_rows_written_before_the_move_are_read_and_sent_after_it(
    old_schema: Any, personas: Personas
) -> None:
    release = submitted_release(personas.project, personas.requester)
    OldTarget = old_schema.get_model("ops", "NotificationTarget")
    target = OldTarget.objects.create(
        project_id=personas.project.pk, kind="email", address="ops@example.com", events=["promoted"]
    )
    old_schema.get_model("ops", "Delivery").objects.create(
        target=target,
        event="promoted",
        release_id=release.pk,
        dedupe_key="promoted",
        payload={"text": "support-assistant 1.0 (production) was promoted"},
    )
    old_schema.get_model("ops", "Notice").objects.create(release_id=release.pk, event="veto_cast")
    old_type = ContentType.objects.get(app_label="ops", model="notificationtarget")

    _migrate(_latest())

    moved = NotificationTarget.objects.get()
    assert (moved.pk, moved.destination, moved.events) == (
        target.pk,
        "ops@example.com",
        ["promoted"],
    )
    pending = moved.deliveries.get(status=Delivery.Status.PENDING)
    assert delivery_attempt(delivery_id=pending.pk).delivered
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert list(Notice.objects.values_list("event", "processed_at")) == [("veto_cast", None)]
    # The same content type, relabelled: permissions granted on it before still apply.
    assert ContentType.objects.get_for_model(NotificationTarget).pk == old_type.pk
    assert not ContentType.objects.filter(app_label="ops", model__in=["delivery", "notice"])
    assert Permission.objects.filter(
        content_type=old_type.pk, codename="view_notificationtarget"
    ).exists()
