"""Who guards the guards, for holds and break-glass: fewer severities that hold, a longer
break-glass or a later post-incident review weaken the gate and wait for a second person."""

import pytest

from releasegate.releases.models import GatePolicy, GovernanceChange
from releasegate.releases.services import governance_change_confirm, policy_change

pytestmark = pytest.mark.django_db

WEAKENINGS = [
    ({"hold_severities": []}, "a critical production alert no longer holds a release"),
    ({"break_glass_hours": 12}, "a break-glass lasts 12 hours instead of 4"),
    (
        {"break_glass_review_days": 30},
        "the post-incident review of a break-glass is due after 30 days instead of 7",
    ),
]


@pytest.mark.parametrize(("changes", "said"), WEAKENINGS, ids=[w[1][:30] for w in WEAKENINGS])
def test_loosening_holds_or_break_glass_waits_for_a_security_holder(personas, changes, said):
    p = personas
    pending = policy_change(project=p.project, actor=p.actor("admin"), changes=changes)
    assert isinstance(pending, GovernanceChange) and pending.is_pending
    assert pending.weakenings == [said]
    p.project.refresh_from_db()
    assert p.project.current_policy.version == 1
    done = governance_change_confirm(change=pending, actor=p.actor("security"), reason="ok")
    assert done.status == "applied"
    p.project.refresh_from_db()
    policy = p.project.current_policy
    assert {k: getattr(policy, k) for k in changes} == changes


def test_tightening_holds_and_break_glass_takes_effect_at_once(personas):
    p = personas
    new = policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={
            "hold_severities": ["critical", "high"],
            "break_glass_hours": 1,
            "break_glass_review_days": 2,
        },
    )
    assert isinstance(new, GatePolicy) and new.version == 2
    assert (new.hold_severities, new.break_glass_hours, new.break_glass_review_days) == (
        ["critical", "high"],
        1,
        2,
    )
    assert not GovernanceChange.objects.exists()


def test_dropping_one_of_several_severities_is_a_weakening(personas):
    p = personas
    policy_change(
        project=p.project, actor=p.actor("admin"), changes={"hold_severities": ["critical", "high"]}
    )
    pending = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"hold_severities": ["critical"]}
    )
    assert isinstance(pending, GovernanceChange)
    assert pending.weakenings == ["a high production alert no longer holds a release"]
