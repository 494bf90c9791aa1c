"""A veto that carries forward to a promoted release (the same artifact: a release promoted before
the veto was cast is otherwise judged as it was) stops its rollout; that release's requester may
not be the one to lift it, as for a release still in review."""

import pytest

from releasegate.accounts.actors import Actor
from releasegate.errors import NotPermitted
from releasegate.releases.models import Release, Veto
from releasegate.releases.services import release_promote, veto_cast, veto_lift
from tests.releases.gatehelpers import cleared_release, codes, decide, load, person_with

pytestmark = pytest.mark.django_db


def test_requester_of_a_promoted_release_the_veto_carries_to_cannot_lift_it(personas):
    """The veto reaches the promoted release through its artifact digest."""
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
