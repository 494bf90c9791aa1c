"""The audit trail: one event per act, hash-chained; verify_audit finds what a DBA changed."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from releasegate.accounts.actors import Actor
from releasegate.audit.models import AuditChain, AuditEvent
from releasegate.audit.services import entry_hash, link_hash
from releasegate.checks.services import check_result_record
from releasegate.releases.services import (
    approval_give,
    evidence_attach,
    policy_change,
    project_create,
    project_rename,
    release_promote,
    release_submit,
    release_withdraw,
    role_grant,
    role_revoke,
    veto_cast,
    veto_lift,
)
from tests.builders import document, make_release, pass_checks, submitted_release


def _new_events(since: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=since).order_by("id"))


def _last_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_every_state_changing_act_appends_exactly_one_event(personas):
    p = personas
    requester, security, sme = p.actor("requester"), p.actor("security"), p.actor("sme")
    newcomer = get_user_model().objects.create_user("newcomer", password="newcomer-pw-123")
    holder: dict = {}
    acts = [
        (
            "project_created",
            lambda: project_create(slug="p2", name="P2", actor=Actor.system_actor()),
        ),
        (
            "policy_changed",
            lambda: policy_change(
                project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 10}
            ),
        ),
        (
            "project_renamed",
            lambda: project_rename(project=p.project, actor=p.actor("admin"), name="Renamed"),
        ),
        (
            "role_granted",
            # auditor: a guarded role (sme) would wait for a holder's confirmation instead.
            lambda: role_grant(
                project=p.project, user=newcomer, role="auditor", actor=p.actor("admin")
            ),
        ),
        (
            "role_revoked",
            lambda: role_revoke(
                project=p.project, user=newcomer, role="auditor", actor=p.actor("admin")
            ),
        ),
        ("release_created", lambda: holder.setdefault("r", make_release(p.project, p.requester))),
        *[
            (
                "evidence_attached",
                lambda kind=kind: evidence_attach(
                    release=holder["r"], actor=requester, kind=kind, document=document(kind)
                ),
            )
            for kind in ("pipeline_review", "data_flow_map", "sbom", "monitoring_plan")
        ],
        (
            "evidence_attached",
            lambda: evidence_attach(
                release=holder["r"],
                actor=requester,
                kind="agent_access_review",
                document=document("agent_access_review"),
            ),
        ),
        ("release_submitted", lambda: release_submit(release=holder["r"], actor=requester)),
        (
            "check_recorded",
            lambda: check_result_record(
                release=holder["r"], actor=Actor.system_actor(), check="licenses", status="failed"
            ),
        ),
        ("approved", lambda: approval_give(release=holder["r"], actor=security, role="security")),
        ("approved", lambda: approval_give(release=holder["r"], actor=sme, role="sme")),
        (
            "veto_cast",
            lambda: holder.setdefault(
                "v", veto_cast(release=holder["r"], actor=sme, role="sme", reason="wait")
            ),
        ),
        ("veto_lifted", lambda: veto_lift(veto=holder["v"], actor=sme, reason="done")),
        (
            "promoted",
            lambda: (
                pass_checks(holder["r"]),
                release_promote(release=holder["r"], actor=requester),
            ),
        ),
    ]
    for action, act in acts:
        before = _last_id()
        act()
        new = [e.action for e in _new_events(before)]
        if action == "promoted":
            # pass_checks records the seven default checks first.
            assert new == ["check_recorded"] * 7 + ["promoted"]
        else:
            assert new == [action], action
    withdrawn = make_release(p.project, p.requester, version="2.0.0")
    before = _last_id()
    release_withdraw(release=withdrawn, actor=requester, reason="dropped")
    assert [e.action for e in _new_events(before)] == ["release_withdrawn"]
    assert "intact" in _verify()


def test_event_names_the_actor_project_and_release(personas):
    p = personas
    release = make_release(p.project, p.requester)
    event = AuditEvent.objects.get(id=_last_id())
    assert (event.action, event.actor, event.actor_user_id) == (
        "release_created",
        "requester",
        p.requester.pk,
    )
    assert (event.project_id, event.release_id) == (p.project.pk, release.pk)
    assert event.data["artifact_digest"] == release.artifact_digest


def test_pending_and_repeated_check_results_add_no_event(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    system = Actor.system_actor()
    before = _last_id()
    check_result_record(release=release, actor=system, check="licenses", status="running")
    assert _new_events(before) == []
    check_result_record(release=release, actor=system, check="licenses", status="passed")
    check_result_record(release=release, actor=system, check="licenses", status="passed")
    assert [e.action for e in _new_events(before)] == ["check_recorded"]


def test_events_chain_each_to_the_previous_of_their_project(personas):
    make_release(personas.project, personas.requester)
    project_create(slug="p2", name="P2", actor=Actor.system_actor())
    chains = AuditChain.objects.order_by("name")
    assert [c.name for c in chains] == ["p2", "support-assistant"]
    for chain in chains:
        events = list(AuditEvent.objects.filter(chain=chain).order_by("seq"))
        assert {e.project_id for e in events} == {chain.project_id}
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert events[0].prev_hash == "0" * 64
        for previous, event in zip(events, events[1:]):
            assert event.prev_hash == previous.hash
        assert (chain.size, chain.head_hash) == (events[-1].seq, events[-1].hash)


def _verify() -> str:
    out = []

    class Sink:
        def write(self, text: str) -> None:
            out.append(text)

        def flush(self) -> None:
            pass

    call_command("verify_audit", stdout=Sink())
    return "".join(out)


def test_verify_audit_passes_an_intact_trail(personas):
    submitted_release(personas.project, personas.requester)
    count = AuditEvent.objects.count()
    assert f"intact: {count} events verified" in _verify()


def _broken() -> CommandError:
    with pytest.raises(CommandError) as broken:
        _verify()
    assert broken.value.returncode != 0
    return broken.value


def _as_dba(sql: str, params: list) -> None:
    """What a database administrator could do: switch triggers off, write, switch them on."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = DEFAULT")


pg = pytest.mark.postgres


@pg
def test_trigger_refuses_update_and_delete(personas):
    last = _last_id()
    for sql in (
        "UPDATE audit_auditevent SET actor = 'mallory' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
        "DELETE FROM audit_auditchain WHERE id = "
        "(SELECT chain_id FROM audit_auditevent WHERE id = %s)",
    ):
        with (
            pytest.raises(DatabaseError) as refused,
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [last])
        op = sql.split()[0]
        assert f": {op} refused" in str(refused.value)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(id=last).update(actor="mallory")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(id=last).delete()
    assert AuditEvent.objects.get(id=last).actor == "system"
    assert "intact" in _verify()


def _veto_event(p) -> AuditEvent:
    release = submitted_release(p.project, p.requester)
    veto_cast(release=release, actor=p.actor("security"), role="security", reason="PII in logs")
    evidence_attach(
        release=release, actor=p.actor("requester"), kind="sbom", document=document("sbom")
    )
    return AuditEvent.objects.get(action="veto_cast")


@pg
def test_verify_audit_names_an_event_whose_data_was_altered(personas):
    veto = _veto_event(personas)
    _as_dba(
        "UPDATE audit_auditevent SET data = %s WHERE id = %s",
        [json.dumps(veto.data | {"reason": "no reason"}), veto.pk],
    )
    error = _broken()
    assert f"event #{veto.seq}" in str(error)
    assert "altered" in str(error)


@pg
def test_verify_audit_names_an_event_whose_actor_was_altered(personas):
    veto = _veto_event(personas)
    _as_dba("UPDATE audit_auditevent SET actor = 'sme' WHERE id = %s", [veto.pk])
    assert f"event #{veto.seq} " in str(_broken())


@pg
def test_verify_audit_names_an_altered_event_even_when_its_hash_was_recomputed(personas):
    veto = _veto_event(personas)
    forged = veto.data | {"reason": "no reason"}
    veto.data = forged
    entry = entry_hash(veto, chain=veto.chain.name)
    _as_dba(
        "UPDATE audit_auditevent SET data = %s, entry_hash = %s, hash = %s WHERE id = %s",
        [json.dumps(forged), entry, link_hash(veto.prev_hash, entry), veto.pk],
    )
    error = _broken()
    assert f"event #{veto.seq} was altered" in str(error)


@pg
def test_verify_audit_names_a_deleted_event(personas):
    veto = _veto_event(personas)
    _as_dba("DELETE FROM audit_auditevent WHERE id = %s", [veto.pk])
    error = _broken()
    assert f"event #{veto.seq} is missing" in str(error)


@pg
def test_verify_audit_names_a_deleted_last_event(personas):
    _veto_event(personas)
    last = AuditEvent.objects.get(id=_last_id())
    _as_dba("DELETE FROM audit_auditevent WHERE id = %s", [last.pk])
    error = _broken()
    assert f"chain {last.chain.name}: event #{last.seq} is missing" in str(error)
