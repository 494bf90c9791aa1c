"""Who may sign off, approve, veto, lift and promote: separation of duties and least privilege."""

import pytest

from releasegate.accounts.actors import Actor
from releasegate.errors import Conflict, NotPermitted
from releasegate.releases.models import Approval, Release
from releasegate.releases.services import (
    approval_give,
    policy_change,
    release_promote,
    role_grant,
    role_revoke,
    veto_cast,
    veto_lift,
)
from tests.builders import confirmed, pass_checks, submitted_release
from tests.releases.gatehelpers import (
    blockers,
    cleared_release,
    codes,
    decide,
    person_with,
    service_token,
    snapshot,
    superuser,
)


def _ready_for_approval(p):
    release = submitted_release(p.project, p.requester)
    pass_checks(release)
    return release


def test_requester_cannot_approve_own_release(personas):
    p = personas
    role_grant(project=p.project, user=p.requester, role="security", actor=Actor.system_actor())
    release = _ready_for_approval(p)
    before = snapshot()
    with pytest.raises(NotPermitted) as refused:
        approval_give(release=release, actor=p.actor("requester"), role="security")
    assert refused.value.code == "requester_cannot_approve"
    assert snapshot() == before


def test_gate_ignores_an_approval_by_the_requester_even_if_stored(personas):
    p = personas
    release = _ready_for_approval(p)
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    Approval.objects.create(
        release=release, role="security", user=p.requester, manifest_digest=release.manifest_digest
    )
    decision = decide(release)
    assert codes(decision) == ["approval_missing"]
    assert blockers(decision, "approval_missing")[0]["role"] == "security"


def test_person_holding_two_roles_approves_in_one_only(personas):
    p = personas
    both = person_with(p, "dual", "security", "sme")
    release = _ready_for_approval(p)
    approval_give(release=release, actor=Actor.for_user(both), role="security")
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        approval_give(release=release, actor=Actor.for_user(both), role="sme")
    assert refused.value.code == "one_role_per_person"
    assert snapshot() == before
    assert [b["role"] for b in blockers(decide(release), "approval_missing")] == ["sme"]


def test_gate_counts_one_person_for_one_role_even_if_both_were_stored(personas):
    p = personas
    both = person_with(p, "dual", "security", "sme")
    release = _ready_for_approval(p)
    approval_give(release=release, actor=Actor.for_user(both), role="security")
    Approval.objects.create(
        release=release, role="sme", user=both, manifest_digest=release.manifest_digest
    )
    decision = decide(release)
    assert not decision.cleared
    assert [b["role"] for b in blockers(decision, "approval_missing")] == ["sme"]


def test_two_approvals_in_a_role_need_two_distinct_people(personas):
    p = personas
    policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={"required_approvals": {"security": 2, "sme": 1}},
    )
    release = _ready_for_approval(p)
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    approval_give(release=release, actor=p.actor("security"), role="security")
    with pytest.raises(Conflict) as again:
        approval_give(release=release, actor=p.actor("security"), role="security")
    assert again.value.code == "already_approved"
    Approval.objects.create(
        release=release, role="security", user=p.security, manifest_digest=release.manifest_digest
    )
    missing = blockers(decide(release), "approval_missing")
    assert [(b["role"], b["have"], b["need"]) for b in missing] == [("security", 1, 2)]
    approval_give(
        release=release, actor=Actor.for_user(person_with(p, "sec2", "security")), role="security"
    )
    assert decide(release).cleared


@pytest.mark.parametrize("who", ["requester", "admin", "auditor", "outsider"])
def test_only_reviewers_may_approve(personas, who):
    p = personas
    release = _ready_for_approval(p)
    before = snapshot()
    for role in ("security", "sme"):
        with pytest.raises(NotPermitted):
            approval_give(release=release, actor=p.actor(who), role=role)
    assert snapshot() == before


def test_reviewer_approves_only_in_the_role_they_hold(personas):
    p = personas
    release = _ready_for_approval(p)
    with pytest.raises(NotPermitted) as refused:
        approval_give(release=release, actor=p.actor("sme"), role="security")
    assert refused.value.code == "not_a_holder"


def test_service_token_and_system_can_never_sign_off(personas):
    p = personas
    release = _ready_for_approval(p)
    before = snapshot()
    for actor in (Actor.for_token(service_token(p.project)), Actor.system_actor()):
        with pytest.raises(NotPermitted) as refused:
            approval_give(release=release, actor=actor, role="security")
        assert refused.value.code == "not_a_person"
        with pytest.raises(NotPermitted):
            veto_cast(release=release, actor=actor, role="security", reason="bot says no")
    assert snapshot() == before


def test_service_token_with_promote_scope_promotes_a_cleared_release(personas):
    p = personas
    release = cleared_release(p)
    promoted, decision = release_promote(
        release=release, actor=Actor.for_token(service_token(p.project))
    )
    assert decision.cleared
    assert promoted.promotion.promoted_by_label == "token:ci"


def test_service_token_without_promote_scope_cannot_promote(personas):
    p = personas
    release = cleared_release(p)
    token = service_token(p.project, scopes=("gate:read", "releases:write"))
    with pytest.raises(NotPermitted):
        release_promote(release=release, actor=Actor.for_token(token))
    assert Release.objects.get(pk=release.pk).state == "in_review"


def test_superuser_without_roles_can_do_nothing_at_the_gate(personas):
    p = personas
    root = Actor.for_user(superuser())
    release = cleared_release(p)
    veto = veto_cast(release=release, actor=p.actor("security"), role="security", reason="hold")
    before = snapshot()
    with pytest.raises(NotPermitted):
        approval_give(release=release, actor=root, role="security")
    with pytest.raises(NotPermitted):
        veto_cast(release=release, actor=root, role="security", reason="site admin says no")
    with pytest.raises(NotPermitted):
        veto_lift(veto=veto, actor=root, reason="site admin says yes")
    with pytest.raises(NotPermitted):
        release_promote(release=release, actor=root)
    assert snapshot() == before


def test_superuser_cannot_promote_a_cleared_release(personas):
    release = cleared_release(personas)
    with pytest.raises(NotPermitted):
        release_promote(release=release, actor=Actor.for_user(superuser()))
    assert Release.objects.get(pk=release.pk).state == "in_review"


def test_approval_stops_counting_when_its_giver_loses_the_role(personas):
    p = personas
    release = _ready_for_approval(p)
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    assert decide(release).cleared

    # The revocation waits for a security holder; the one losing the role may consent.
    confirmed(
        role_revoke(project=p.project, user=p.security, role="security", actor=p.actor("admin")),
        by=p.security,
    )

    decision = decide(release)
    assert not decision.cleared
    assert [(b.code, b.details["role"]) for b in decision.blockers] == [
        ("approval_missing", "security")
    ]


def test_approval_of_a_deactivated_user_does_not_count(personas):
    p = personas
    release = _ready_for_approval(p)
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    p.sme.is_active = False
    p.sme.save(update_fields=["is_active"])

    assert codes(decide(release)) == ["approval_missing"]


def test_a_promoted_release_keeps_the_approvals_it_was_promoted_on(personas):
    p = personas
    release = _ready_for_approval(p)
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    release_promote(release=release, actor=p.actor("requester"))

    confirmed(
        role_revoke(project=p.project, user=p.sme, role="sme", actor=p.actor("admin")), by=p.sme
    )

    assert decide(release).cleared
