from releasegate.releases.selectors import gate_decision, gate_release_queryset
from releasegate.releases.services import approval_give, release_promote, veto_cast
from tests.builders import pass_checks, submitted_release


def test_full_flow_clears_and_promotes(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    pass_checks(release)
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    decision = gate_decision(gate_release_queryset().get(pk=release.pk))
    assert decision.cleared, decision.blockers
    promoted, _ = release_promote(release=release, actor=p.actor("requester"))
    assert promoted.state == "promoted"
    veto_cast(release=promoted, actor=p.actor("security"), role="security", reason="leaks PII")
    after = gate_decision(gate_release_queryset().get(pk=release.pk))
    assert not after.cleared
    assert [b.code for b in after.blockers] == ["veto"]
