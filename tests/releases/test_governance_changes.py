"""Who guards the guards: policy changes that loosen the gate and grants or revocations of guarded
roles wait for a second person; tightening takes effect at once."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail

from releasegate.accounts.actors import Actor
from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import roles_for
from releasegate.audit.models import AuditEvent
from releasegate.celery import app as celery_app
from releasegate.errors import Conflict, InvalidInput, NotPermitted
from releasegate.releases.models import GatePolicy, GovernanceChange
from releasegate.releases.services import (
    governance_change_cancel,
    governance_change_confirm,
    governance_change_reject,
    policy_change,
    project_create,
    role_grant,
    role_revoke,
    veto_cast,
    veto_lift,
)
from tests.releases.gatehelpers import cleared_release, codes, decide, person_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    conf = celery_app.conf
    previous = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    try:
        yield
    finally:
        conf.task_always_eager, conf.task_eager_propagates = previous


def version(p: Any) -> int:
    p.project.refresh_from_db()
    return p.project.current_policy.version


WEAKENINGS = [
    ({"required_approvals": {"security": 1, "sme": 0}}, "sme approvals required go from 1 to 0"),
    ({"veto_roles": ["security"]}, "sme may no longer veto"),
    (
        {"required_items": ["sbom", "data_flow_map", "monitoring_plan", "agent_access_review"]},
        "checklist item pipeline_review is no longer required",
    ),
    (
        {
            "required_checks": [
                "sbom_valid",
                "licenses",
                "pipeline_findings",
                "data_flow",
                "monitoring_coverage",
                "least_privilege",
            ]
        },
        "check vulnerabilities is no longer required",
    ),
    ({"vulnerability_threshold": "critical"}, "the vulnerability threshold rises from high"),
    ({"license_denylist": ["SSPL-1.0"]}, "licence AGPL-3.0-only is no longer denied"),
    ({"max_approval_age_days": 30}, "approvals expire after 30 days instead of 14"),
    ({"max_review_age_days": 365}, "a pipeline review counts for 365 days instead of 180"),
    (
        {"environments": ["production", "staging", "production-eu"]},
        "new environment production-eu",
    ),
]


@pytest.mark.parametrize(("changes", "said"), WEAKENINGS, ids=[w[1][:30] for w in WEAKENINGS])
def test_a_weakening_policy_change_waits_for_a_security_holder(personas, changes, said):
    p = personas
    pending = policy_change(project=p.project, actor=p.actor("admin"), changes=changes)
    assert isinstance(pending, GovernanceChange) and pending.is_pending
    assert any(said in w for w in pending.weakenings), pending.weakenings
    assert version(p) == 1
    done = governance_change_confirm(change=pending, actor=p.actor("security"), reason="ok")
    assert done.status == "applied" and version(p) == 2
    assert done.applied_policy is not None and done.applied_policy.created_by == p.admin


def test_changing_the_external_ci_system_of_a_required_check_is_a_weakening(personas):
    p = personas
    ci = {"url": "https://ci.example.com/status", "format": "github"}
    checks = [*p.project.current_policy.required_checks, "external_ci"]
    # Requiring one more check tightens: at once.
    tightened = policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={"required_checks": checks, "external_ci": ci},
    )
    assert isinstance(tightened, GatePolicy)
    moved = policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={"external_ci": {**ci, "url": "https://always-green.example.net/"}},
    )
    assert isinstance(moved, GovernanceChange)


def test_a_tightening_policy_change_takes_effect_at_once(personas):
    p = personas
    new = policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={
            "required_approvals": {"security": 2, "sme": 1},
            "vulnerability_threshold": "medium",
            "license_denylist": ["AGPL-3.0-only", "SSPL-1.0", "GPL-3.0-only"],
            "max_approval_age_days": 7,
            "environments": ["production"],
        },
    )
    assert isinstance(new, GatePolicy) and new.version == 2
    assert not GovernanceChange.objects.exists()


def test_a_change_that_both_tightens_and_weakens_waits_as_a_whole(personas):
    p = personas
    pending = policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={"required_approvals": {"security": 2, "sme": 0}},
    )
    assert isinstance(pending, GovernanceChange)
    # Not even the tightening half applies before the confirmation.
    assert p.project.current_policy.required_approvals == {"security": 1, "sme": 1}
    governance_change_confirm(change=pending, actor=p.actor("security"))
    p.project.refresh_from_db()
    assert p.project.current_policy.required_approvals == {"security": 2}


@pytest.mark.parametrize("who", ["admin", "requester", "sme", "auditor", "outsider"])
def test_only_a_security_holder_other_than_its_author_confirms_a_policy_change(personas, who):
    p = personas
    pending = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"vulnerability_threshold": "critical"}
    )
    with pytest.raises(NotPermitted):
        governance_change_confirm(change=pending, actor=p.actor(who))
    with pytest.raises(NotPermitted):
        governance_change_reject(change=pending, actor=p.actor(who), reason="no")
    assert version(p) == 1


def test_an_admin_who_also_holds_security_cannot_confirm_their_own_weakening(personas):
    p = personas
    boss = person_with(p, "boss", "admin", "security")
    pending = policy_change(
        project=p.project, actor=Actor.for_user(boss), changes={"required_approvals": {}}
    )
    with pytest.raises(NotPermitted) as refused:
        governance_change_confirm(change=pending, actor=Actor.for_user(boss))
    assert refused.value.code == "may_not_confirm"
    assert version(p) == 1


def test_a_rejected_request_changes_nothing_and_needs_a_reason(personas):
    p = personas
    pending = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"veto_roles": ["security"]}
    )
    with pytest.raises(InvalidInput):
        governance_change_reject(change=pending, actor=p.actor("security"), reason=" ")
    governance_change_reject(change=pending, actor=p.actor("security"), reason="sme must veto")
    assert version(p) == 1
    with pytest.raises(Conflict):
        governance_change_confirm(change=pending, actor=p.actor("security"))


def test_only_its_author_cancels_a_request(personas):
    p = personas
    pending = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 60}
    )
    with pytest.raises(NotPermitted):
        governance_change_cancel(change=pending, actor=p.actor("security"))
    governance_change_cancel(change=pending, actor=p.actor("admin"))
    pending.refresh_from_db()
    assert pending.status == "cancelled" and version(p) == 1


def test_a_request_made_on_an_older_policy_version_cannot_be_confirmed(personas):
    p = personas
    pending = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 60}
    )
    policy_change(project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 7})
    with pytest.raises(Conflict) as refused:
        governance_change_confirm(change=pending, actor=p.actor("security"))
    assert refused.value.code == "policy_moved"
    p.project.refresh_from_db()
    assert p.project.current_policy.max_approval_age_days == 7


def test_the_two_admin_case_a_second_account_gets_security_only_when_sam_confirms(personas):
    """An admin grants security to a second account they control: pending until a current
    security holder confirms; the second account can neither confirm it nor approve meanwhile."""
    p = personas
    sock = person_with(p, "sock")
    pending = role_grant(project=p.project, user=sock, role="security", actor=p.actor("admin"))
    assert isinstance(pending, GovernanceChange)
    assert roles_for(sock, p.project) == frozenset()
    with pytest.raises(NotPermitted):
        governance_change_confirm(change=pending, actor=Actor.for_user(sock))
    with pytest.raises(NotPermitted):
        governance_change_confirm(change=pending, actor=p.actor("admin"))
    governance_change_confirm(change=pending, actor=p.actor("security"), reason="knows sock")
    assert roles_for(sock, p.project) == {Role.SECURITY}


def test_the_grantee_may_not_confirm_their_own_grant_even_holding_the_role_elsewhere(personas):
    p = personas
    pending = role_grant(project=p.project, user=p.sme, role="security", actor=p.actor("admin"))
    with pytest.raises(NotPermitted):
        governance_change_confirm(change=pending, actor=p.actor("sme"))


def test_revoke_the_vetoer_is_pending_and_the_veto_stands(personas):
    """An admin revokes sam's security role so a new holder can lift sam's veto: both wait for a
    current security holder (sam), so the veto stands."""
    p = personas
    release = cleared_release(p)
    veto = veto_cast(release=release, actor=p.actor("security"), role="security", reason="leaks")
    revocation = role_revoke(
        project=p.project, user=p.security, role="security", actor=p.actor("admin")
    )
    assert isinstance(revocation, GovernanceChange)
    friend = person_with(p, "friend")
    grant = role_grant(project=p.project, user=friend, role="security", actor=p.actor("admin"))
    assert isinstance(grant, GovernanceChange)
    assert Role.SECURITY in roles_for(p.security, p.project)
    with pytest.raises(NotPermitted):
        veto_lift(veto=veto, actor=Actor.for_user(friend), reason="fine by me")
    assert codes(decide(release)) == ["veto"]


def test_the_holder_losing_a_role_may_consent_to_its_revocation(personas):
    p = personas
    revocation = role_revoke(project=p.project, user=p.sme, role="sme", actor=p.actor("admin"))
    governance_change_confirm(change=revocation, actor=p.actor("sme"), reason="moving on")
    assert roles_for(p.sme, p.project) == frozenset()


def test_the_first_holder_of_a_role_is_granted_at_once(personas):
    p = personas
    project = project_create(slug="fresh", name="Fresh", actor=Actor.system_actor())
    role_grant(project=project, user=p.admin, role="admin", actor=Actor.system_actor())
    admin = Actor.for_user(p.admin)
    assert role_grant(project=project, user=p.security, role="security", actor=admin) is None
    assert Role.SECURITY in roles_for(p.security, project)
    # The second is not a bootstrap any more.
    assert isinstance(
        role_grant(project=project, user=p.sme, role="security", actor=admin), GovernanceChange
    )


def test_deactivating_the_only_holder_does_not_make_the_next_grant_a_bootstrap(personas):
    p = personas
    p.security.is_active = False
    p.security.save(update_fields=["is_active"])
    friend = person_with(p, "friend")
    pending = role_grant(project=p.project, user=friend, role="security", actor=p.actor("admin"))
    assert isinstance(pending, GovernanceChange)


def test_unguarded_roles_are_granted_at_once(personas):
    p = personas
    newcomer = person_with(p, "newcomer")
    for role in ("requester", "auditor", "admin"):
        assert (
            role_grant(project=p.project, user=newcomer, role=role, actor=p.actor("admin")) is None
        )
    assert roles_for(newcomer, p.project) == {Role.REQUESTER, Role.AUDITOR, Role.ADMIN}


def test_the_same_role_request_twice_is_a_conflict(personas):
    p = personas
    sock = person_with(p, "sock")
    role_grant(project=p.project, user=sock, role="sme", actor=p.actor("admin"))
    with pytest.raises(Conflict) as refused:
        role_grant(project=p.project, user=sock, role="sme", actor=p.actor("admin"))
    assert refused.value.code == "already_pending"


def test_requests_and_decisions_are_audited(personas):
    p = personas
    before = AuditEvent.objects.latest("id").pk
    pending = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 30}
    )
    governance_change_confirm(change=pending, actor=p.actor("security"))
    events = list(AuditEvent.objects.filter(id__gt=before).order_by("id"))
    assert [e.action for e in events] == [
        "governance_change_requested",
        "policy_changed",
        "governance_change_applied",
    ]
    assert events[0].actor == "admin" and events[0].data["weakenings"]
    assert events[1].data["confirmed_by"] == "security"
    assert events[1].data["requested_by"] == "admin"


def test_those_who_may_confirm_are_told_by_mail(
    personas, eager_tasks: None, django_capture_on_commit_callbacks
):
    p = personas
    for user in (p.security, p.sme, p.admin):
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    with django_capture_on_commit_callbacks(execute=True):
        pending = policy_change(
            project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 30}
        )
    assert len(mail.outbox) == 1
    assert mail.outbox[0].bcc == ["security@example.com"]
    assert "approvals expire after 30 days" in mail.outbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        governance_change_confirm(change=pending, actor=p.actor("security"))
    assert mail.outbox[1].bcc == ["admin@example.com"]
    assert "applied" in mail.outbox[1].subject
