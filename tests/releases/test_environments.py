"""A release names one of its project's environments, so a carry-forward veto cannot be escaped by
inventing a new environment name."""

import pytest

from releasegate.errors import InvalidInput
from releasegate.releases.models import Release
from releasegate.releases.services import policy_change, veto_cast
from tests.builders import confirmed, digest_of, make_release, submitted_release
from tests.releases.gatehelpers import codes, decide


def test_a_release_in_an_environment_the_policy_does_not_name_is_refused(personas):
    p = personas
    with pytest.raises(InvalidInput) as refused:
        make_release(p.project, p.requester, version="1.0.0", environment="production-eu")
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("environment", "must be one of this project's environments: production, staging")
    ]
    assert not Release.objects.exists()


def test_a_new_environment_name_does_not_escape_a_carried_veto(personas):
    p = personas
    vetoed = submitted_release(p.project, p.requester, version="1.4.2")
    veto_cast(release=vetoed, actor=p.actor("security"), role="security", reason="leaks PII")
    with pytest.raises(InvalidInput):
        make_release(
            p.project, p.requester, version="1.4.3", environment="prod", artifact=digest_of("new")
        )
    later = submitted_release(p.project, p.requester, version="1.4.3", artifact=digest_of("new"))
    assert "veto" in codes(decide(later))


def test_an_admin_adds_an_environment_with_a_new_policy_version(personas):
    p = personas
    # A new environment starts free of carried vetoes: it waits for a security holder.
    policy = confirmed(
        policy_change(
            project=p.project,
            actor=p.actor("admin"),
            changes={"environments": ["production", "staging", "production-eu"]},
        ),
        by=p.security,
    )
    assert policy.environments == ["production", "staging", "production-eu"]
    p.project.refresh_from_db()
    release = make_release(p.project, p.requester, version="2.0.0", environment="production-eu")
    assert release.environment == "production-eu"


@pytest.mark.parametrize("bad", [[], ["Prod EU"], "production", [""], ["a"] * 21])
def test_a_policy_with_bad_environments_is_refused_naming_the_field(personas, bad):
    with pytest.raises(InvalidInput) as refused:
        policy_change(
            project=personas.project, actor=personas.actor("admin"), changes={"environments": bad}
        )
    assert [e.field for e in refused.value.errors] == ["environments"]
