"""Put every existing event on its project's chain (or `_global`), numbered in the order the
single chain had them, and hash it the new way.

The old single chain is verified first: rehashing a trail someone had altered would launder the
alteration, so the migration refuses, naming the event, and the operator investigates (restore
a backup) before migrating. The hash formulas are frozen copies, as a migration must not change
when the application's code does.

The models here are the historical ones `apps.get_model` builds as the migration runs, so their
instances are typed Any.
"""

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

GENESIS = "0" * 64
GLOBAL = "_global"
TRIGGER = "audit_auditevent_no_update_delete"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _sha(payload: dict[str, Any]) -> str:
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _fields(event: Any) -> dict[str, Any]:
    return {
        "created_at": _iso(event.created_at),
        "action": event.action,
        "actor": event.actor,
        "actor_user_id": event.actor_user_id,
        "project_id": event.project_id,
        "release_id": event.release_id,
        "data": event.data,
    }


def _old_hash(event: Any, seq: int, prev_hash: str) -> str:
    return _sha({**_fields(event), "seq": seq, "prev_hash": prev_hash})


def _new_hashes(event: Any, chain: str, seq: int, prev_hash: str) -> tuple[str, str]:
    entry = _sha({**_fields(event), "chain": chain, "seq": seq})
    return entry, hashlib.sha256(f"{prev_hash}{entry}".encode()).hexdigest()


def _verify_single_chain(events: list[Any], head: Any) -> None:
    prev = GENESIS
    for expected, event in enumerate(events, start=1):
        if event.seq != expected or event.prev_hash != prev or _old_hash(
            event, event.seq, prev
        ) != event.hash:
            raise RuntimeError(
                f"audit trail broken at event #{expected} before migrating to per-project "
                "chains: run verify_audit on the previous release, restore the trail, retry"
            )
        prev = event.hash
    if head is not None and (head.last_seq != len(events) or head.last_hash != prev):
        raise RuntimeError(
            "audit trail's head does not match its last event: restore the trail, then migrate"
        )


def _set_trigger(schema_editor: BaseDatabaseSchemaEditor, enabled: bool) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            # Pending deferred foreign-key checks must run before ALTER TABLE may.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            verb = "ENABLE" if enabled else "DISABLE"
            cursor.execute(f"ALTER TABLE audit_auditevent {verb} TRIGGER {TRIGGER}")


def forwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditHead = apps.get_model("audit", "AuditHead")
    AuditChain = apps.get_model("audit", "AuditChain")
    Project = apps.get_model("releases", "Project")
    events = list(AuditEvent.objects.order_by("seq"))
    _verify_single_chain(events, AuditHead.objects.filter(id=1).first())
    by_project: defaultdict[int | None, list[Any]] = defaultdict(list)
    for event in events:
        by_project[event.project_id].append(event)
    slugs = dict(Project.objects.values_list("id", "slug"))
    _set_trigger(schema_editor, enabled=False)
    for project_id, chained in by_project.items():
        if project_id is None:
            name = GLOBAL
        else:
            name = slugs.get(project_id, f"project-{project_id}")
        prev = GENESIS
        for seq, event in enumerate(chained, start=1):
            event.seq = seq
            event.prev_hash = prev
            event.entry_hash, event.hash = _new_hashes(event, name, seq, prev)
            prev = event.hash
        chain = AuditChain.objects.create(
            name=name, project_id=project_id, size=len(chained), head_hash=prev
        )
        for event in chained:
            event.chain = chain
        AuditEvent.objects.bulk_update(
            chained, ["chain", "seq", "prev_hash", "entry_hash", "hash"], batch_size=1000
        )
    _set_trigger(schema_editor, enabled=True)


def backwards(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditHead = apps.get_model("audit", "AuditHead")
    AuditChain = apps.get_model("audit", "AuditChain")
    events = list(AuditEvent.objects.order_by("id"))
    _set_trigger(schema_editor, enabled=False)
    prev = GENESIS
    for seq, event in enumerate(events, start=1):
        event.seq, event.prev_hash, event.chain = seq, prev, None
        event.hash = _old_hash(event, seq, prev)
        prev = event.hash
    AuditEvent.objects.bulk_update(
        events, ["chain", "seq", "prev_hash", "hash"], batch_size=1000
    )
    _set_trigger(schema_editor, enabled=True)
    AuditChain.objects.all().delete()
    AuditHead.objects.update_or_create(id=1, defaults={"last_seq": len(events), "last_hash": prev})


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_audit_chain"), ("releases", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
