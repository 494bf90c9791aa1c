"""Vetoes: who casts and lifts them, and which releases they block (carry-forward and scope)."""

import pytest

from releasegate.accounts.actors import Actor
from releasegate.errors import Conflict, InvalidInput, NotPermitted
from releasegate.releases.models import Release, Veto
from releasegate.releases.services import (
    policy_change,
    release_promote,
    release_withdraw,
    role_grant,
    veto_cast,
    veto_lift,
)
from tests.builders import confirmed, digest_of, make_release
from tests.conftest import make_personas
from tests.releases.gatehelpers import (
    blockers,
    cleared_release,
    codes,
    decide,
    load,
    person_with,
    snapshot,
    superuser,
)


def _veto(p, release, *, role="security", reason="prompt injection via ticket body", **kwargs):
    return veto_cast(release=release, actor=p.actor(role), role=role, reason=reason, **kwargs)


def test_veto_blocks_a_cleared_release(personas):
    p = personas
    release = cleared_release(p)
    _veto(p, release)
    assert codes(decide(release)) == ["veto"]


def test_veto_carries_forward_to_a_later_release_of_the_same_project_and_environment(personas):
    p = personas
    vetoed = cleared_release(p, version="1.4.2")
    veto = _veto(p, vetoed)
    later = cleared_release(p, version="1.4.3")
    decision = decide(later)
    assert codes(decision) == ["veto"]
    carried = blockers(decision, "veto")[0]
    assert carried["release_id"] == vetoed.pk
    assert carried["veto_id"] == veto.pk
    assert "another release" in carried["message"]


def test_veto_reaches_back_to_an_earlier_release_not_yet_promoted(personas):
    p = personas
    earlier = cleared_release(p, version="1.4.2")
    vetoed = cleared_release(p, version="1.4.3")
    _veto(p, vetoed)
    assert codes(decide(earlier)) == ["veto"]


def test_veto_does_not_reach_a_release_promoted_before_it_was_cast(personas):
    p = personas
    shipped = cleared_release(p, version="1.4.2")
    release_promote(release=shipped, actor=p.actor("requester"))
    vetoed = cleared_release(p, version="1.4.3")
    _veto(p, vetoed)
    assert decide(shipped).cleared


def test_veto_does_not_carry_to_another_environment(personas):
    p = personas
    vetoed = cleared_release(p, version="1.4.2", environment="production")
    _veto(p, vetoed)
    staging = cleared_release(p, version="1.4.3", environment="staging")
    assert decide(staging).cleared


def test_veto_carries_to_the_same_artifact_in_another_environment(personas):
    p = personas
    artifact = digest_of("the-one-build")
    vetoed = cleared_release(p, version="1.4.2", environment="staging", artifact=artifact)
    _veto(p, vetoed)
    # Same artifact, earlier or later, any environment: still that build.
    prod = cleared_release(p, version="1.4.2-prod", environment="production", artifact=artifact)
    assert codes(decide(prod)) == ["veto"]


def test_veto_on_an_artifact_blocks_it_in_another_project_without_telling_why(personas):
    p = personas
    other = make_personas(slug="other-project", prefix="o_")
    artifact = digest_of("shared-base-model")
    vetoed = cleared_release(p, version="2.0.0", artifact=artifact)
    vera = person_with(p, "vera", "security")
    veto_cast(
        release=vetoed, actor=Actor.for_user(vera), role="security", reason="exfiltrates tickets"
    )
    theirs = cleared_release(other, version="9.0.0", artifact=artifact)
    decision = decide(theirs)
    assert codes(decision) == ["veto"]
    shown = blockers(decision, "veto")[0]
    text = repr(shown)
    assert "exfiltrates" not in text
    assert "vera" not in text
    assert "vera" not in decision.as_dict().__repr__()
    assert shown["by"] is None
    assert "veto_id" not in shown
    assert "release_id" not in shown


def test_release_only_veto_blocks_that_release_alone(personas):
    p = personas
    artifact = digest_of("rebuilt")
    vetoed = cleared_release(p, version="1.4.2", artifact=artifact)
    _veto(p, vetoed, scope=Veto.Scope.RELEASE)
    later = cleared_release(p, version="1.4.3", artifact=artifact)
    assert codes(decide(vetoed)) == ["veto"]
    assert decide(later).cleared


def test_lifted_veto_no_longer_blocks_nor_carries(personas):
    p = personas
    vetoed = cleared_release(p, version="1.4.2")
    veto = _veto(p, vetoed)
    later = cleared_release(p, version="1.4.3")
    lifted = veto_lift(veto=veto, actor=p.actor("security"), reason="fixed in the prompt filter")
    assert lifted.lifted_by == p.security
    assert lifted.lift_reason == "fixed in the prompt filter"
    assert decide(vetoed).cleared
    assert decide(later).cleared


def test_another_holder_of_the_vetoing_role_may_lift(personas):
    p = personas
    release = cleared_release(p)
    veto = _veto(p, release)
    colleague = person_with(p, "sec2", "security")
    veto_lift(veto=veto, actor=Actor.for_user(colleague), reason="reviewed again")
    assert decide(release).cleared


@pytest.mark.parametrize("who", ["sme", "requester", "admin", "auditor", "outsider"])
def test_only_holders_of_the_vetoing_role_may_lift(personas, who):
    p = personas
    release = cleared_release(p)
    veto = _veto(p, release)
    before = snapshot()
    with pytest.raises(NotPermitted):
        veto_lift(veto=veto, actor=p.actor(who), reason="ship it")
    assert snapshot() == before
    assert codes(decide(release)) == ["veto"]


def test_superuser_cannot_lift_a_veto(personas):
    p = personas
    release = cleared_release(p)
    veto = _veto(p, release)
    with pytest.raises(NotPermitted):
        veto_lift(veto=veto, actor=Actor.for_user(superuser()), reason="override")
    assert codes(decide(release)) == ["veto"]


def test_requester_holding_the_role_still_cannot_lift_a_veto_on_their_release(personas):
    p = personas
    release = cleared_release(p)
    veto = _veto(p, release)
    role_grant(project=p.project, user=p.requester, role="security", actor=Actor.system_actor())
    with pytest.raises(NotPermitted) as refused:
        veto_lift(veto=veto, actor=p.actor("requester"), reason="my release, my call")
    assert refused.value.code == "requester_cannot_lift"
    assert codes(decide(release)) == ["veto"]


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_lifting_needs_a_written_reason(personas, reason):
    p = personas
    release = cleared_release(p)
    veto = _veto(p, release)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        veto_lift(veto=veto, actor=p.actor("security"), reason=reason)
    assert refused.value.code == "reason_required"
    assert refused.value.errors[0].field == "reason"
    assert snapshot() == before


def test_lifting_twice_is_a_conflict(personas):
    p = personas
    veto = _veto(p, cleared_release(p))
    veto_lift(veto=veto, actor=p.actor("security"), reason="ok now")
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        veto_lift(veto=veto, actor=p.actor("security"), reason="again")
    assert refused.value.code == "already_lifted"
    assert snapshot() == before


@pytest.mark.parametrize("reason", ["", " \n ", None, 42])
def test_a_veto_needs_a_written_reason(personas, reason):
    p = personas
    release = cleared_release(p)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        veto_cast(release=release, actor=p.actor("security"), role="security", reason=reason)
    assert refused.value.code == "reason_required"
    assert snapshot() == before
    assert decide(release).cleared


@pytest.mark.parametrize("reason", ["leaks\x00PII", "x" * 5001])
def test_a_veto_reason_with_a_nul_or_over_the_limit_is_refused_naming_it(personas, reason):
    p = personas
    release = cleared_release(p)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        veto_cast(release=release, actor=p.actor("security"), role="security", reason=reason)
    assert [e.field for e in refused.value.errors] == ["reason"]
    assert snapshot() == before


def test_unknown_veto_scope_is_bad_input(personas):
    p = personas
    release = cleared_release(p)
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        _veto(p, release, scope="forever")
    assert refused.value.errors[0].field == "scope"
    assert snapshot() == before


def test_a_role_outside_the_policy_veto_roles_cannot_veto(personas):
    p = personas
    confirmed(
        policy_change(
            project=p.project, actor=p.actor("admin"), changes={"veto_roles": ["security"]}
        ),
        by=p.security,
    )
    release = cleared_release(p)
    with pytest.raises(NotPermitted) as refused:
        _veto(p, release, role="sme")
    assert refused.value.code == "not_a_veto_role"
    assert decide(release).cleared


def test_veto_on_a_promoted_release_blocks_its_gate(personas):
    p = personas
    release = cleared_release(p)
    promoted, _ = release_promote(release=release, actor=p.actor("requester"))
    assert decide(promoted).cleared
    _veto(p, load(promoted), reason="leaks PII in production")
    decision = decide(promoted)
    assert not decision.cleared
    assert codes(decision) == ["veto"]
    assert decision.release.state == "promoted"


def test_veto_on_a_draft_carries_to_a_later_submitted_release(personas):
    p = personas
    draft = make_release(p.project, p.requester, version="0.9.0")
    _veto(p, draft, reason="model card missing")
    release = cleared_release(p, version="1.0.0")
    assert codes(decide(release)) == ["veto"]
    with pytest.raises(Conflict) as refused:
        release_promote(release=release, actor=p.actor("requester"))
    assert refused.value.code == "blocked"
    assert [b["code"] for b in refused.value.extra["blockers"]] == ["veto"]


def test_requester_of_a_later_release_the_veto_carries_to_cannot_lift_it(personas):
    p = personas
    vetoed = cleared_release(p, version="1.4.2")
    veto = _veto(p, vetoed)
    # Bob holds the security role and requests the next release, which the veto blocks.
    bob = person_with(p, "bob", "requester", "security")
    later = cleared_release(p, version="1.4.3")
    Release.objects.filter(pk=later.pk).update(requester=bob)
    with pytest.raises(NotPermitted) as refused:
        veto_lift(veto=veto, actor=Actor.for_user(bob), reason="my release must ship")
    assert refused.value.code == "requester_cannot_lift"
    assert codes(decide(later)) == ["veto"]
    # Once bob's release is out of the way (withdrawn), bob is just another security holder.
    release_withdraw(release=load(later), actor=Actor.for_user(bob), reason="replaced")
    veto_lift(veto=veto, actor=Actor.for_user(bob), reason="reviewed the fix")
    assert decide(vetoed).cleared


def test_requester_of_a_promoted_release_the_veto_carries_to_cannot_lift_it(personas):
    """A veto carried to a promoted release (through its artifact digest) stops its rollout;
    that release's requester may not be the one to lift it, as for a release in review."""
    p = personas
    earlier = cleared_release(p, version="1.4.2")
    bob = person_with(p, "bob", "requester", "security")
    later = cleared_release(p, version="1.4.3", artifact=earlier.artifact_digest)
    Release.objects.filter(pk=later.pk).update(requester=bob)
    release_promote(release=load(later), actor=p.actor("requester"))
    veto = veto_cast(
        release=earlier, actor=p.actor("security"), role="security", reason="data leak found"
    )
    assert codes(decide(later)) == ["veto"]

    with pytest.raises(NotPermitted) as refused:
        veto_lift(veto=veto, actor=Actor.for_user(bob), reason="my release is rolling out")

    assert refused.value.code == "requester_cannot_lift"
    assert Veto.objects.get(pk=veto.pk).lifted_at is None
    assert codes(decide(later)) == ["veto"]
