"""Migrating a single-chain trail (part one) to per-project chains keeps every event, verified."""

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from releasegate.audit.models import AuditChain, AuditEvent
from releasegate.audit.verify import verify_trail
from releasegate.releases.models import Project

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BEFORE = [("audit", "0002_append_only_trigger")]
migration = importlib.import_module("releasegate.audit.migrations.0004_events_onto_chains")


def _migrate(target: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.fixture
def old_schema() -> Iterator[Any]:
    apps = _migrate(BEFORE)
    try:
        yield apps
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _old_trail(apps: Any, project_ids: list[int | None]) -> list[Any]:
    """Events as part one wrote them: one chain, numbered globally."""
    OldEvent, OldHead = apps.get_model("audit", "AuditEvent"), apps.get_model("audit", "AuditHead")
    prev, events = "0" * 64, []
    for seq, project_id in enumerate(project_ids, start=1):
        event = OldEvent(
            seq=seq,
            created_at=timezone.now(),
            action=f"act_{seq}",
            actor="system",
            project_id=project_id,
            data={"n": seq},
            prev_hash=prev,
        )
        event.hash = migration._old_hash(event, seq, prev)
        event.save()
        events.append(event)
        prev = event.hash
    OldHead.objects.update_or_create(id=1, defaults={"last_seq": len(events), "last_hash": prev})
    return events


def test_existing_events_move_onto_their_projects_chains_in_order(old_schema):
    one = Project.objects.create(slug="one", name="One")
    two = Project.objects.create(slug="two", name="Two")
    _old_trail(old_schema, [one.pk, None, two.pk, one.pk, one.pk, None, two.pk])
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    chains = {c.name: c for c in AuditChain.objects.all()}
    assert {n: c.size for n, c in chains.items()} == {"one": 3, "two": 2, "_global": 2}
    ones = AuditEvent.objects.filter(chain=chains["one"]).order_by("seq")
    assert [(e.seq, e.action) for e in ones] == [(1, "act_1"), (2, "act_4"), (3, "act_5")]
    report = verify_trail()
    assert (report.events, report.chains, report.problems) == (7, 3, [])


def test_an_altered_old_trail_is_refused_not_rehashed(old_schema):
    one = Project.objects.create(slug="one", name="One")
    events = _old_trail(old_schema, [one.pk, one.pk, one.pk])
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE audit_auditevent SET actor = 'x' WHERE id = %s", [events[1].pk])
        cursor.execute("SET session_replication_role = DEFAULT")
    with pytest.raises(RuntimeError, match="audit trail broken at event #2 before migrating"):
        _migrate([("audit", "0004_events_onto_chains")])
    # Put it right so the fixture can migrate the test database forward again.
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("DELETE FROM audit_auditevent")
        cursor.execute("DELETE FROM audit_audithead")
        cursor.execute("SET session_replication_role = DEFAULT")


def test_migrating_back_restores_the_single_chain(old_schema):
    one = Project.objects.create(slug="one", name="One")
    _old_trail(old_schema, [one.pk, None, one.pk])
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    _migrate(latest)
    apps = _migrate(BEFORE)
    OldEvent = apps.get_model("audit", "AuditEvent")
    events = list(OldEvent.objects.order_by("seq"))
    migration._verify_single_chain(events, apps.get_model("audit", "AuditHead").objects.get())
    assert [e.action for e in events] == ["act_1", "act_2", "act_3"]
