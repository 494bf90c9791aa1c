"""`POST /api/v1/releases/<id>/withdraw {reason}`: the requester or a project admin, from draft or
review, audited; the gate then answers `withdrawn`."""

import pytest

from releasegate.audit.models import AuditEvent
from releasegate.releases.models import Release
from releasegate.releases.services import release_promote
from tests.api.conftest import Caller, service_token
from tests.builders import make_release
from tests.releases.gatehelpers import cleared_release, codes, decide

pytestmark = pytest.mark.django_db


def withdraw(caller: Caller, release: Release, reason: object = "superseded by 1.0.1"):
    body = {} if reason is None else {"reason": reason}
    return caller.request("POST", f"/api/v1/releases/{release.pk}/withdraw", body)


@pytest.mark.parametrize("who", ["requester", "admin"])
def test_the_requester_or_an_admin_withdraws_a_release_in_review(personas, who):
    release = cleared_release(personas)
    response = withdraw(Caller(who, user=getattr(personas, who)), release)
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "withdrawn"
    assert codes(decide(release)) == ["withdrawn"]
    event = AuditEvent.objects.get(action="release_withdrawn", release_id=release.pk)
    assert event.actor == who and event.data == {"reason": "superseded by 1.0.1"}


def test_a_draft_can_be_withdrawn(personas):
    draft = make_release(personas.project, personas.requester)
    assert withdraw(Caller("requester", user=personas.requester), draft).status_code == 200


@pytest.mark.parametrize("who", ["security", "sme", "auditor"])
def test_reviewers_and_auditors_may_not_withdraw(personas, who):
    release = cleared_release(personas)
    response = withdraw(Caller(who, user=getattr(personas, who)), release)
    assert response.status_code == 403
    assert response.json()["code"] == "may_not_withdraw"
    assert Release.objects.get(pk=release.pk).state == "in_review"


def test_an_outsider_gets_a_404(personas):
    release = cleared_release(personas)
    assert withdraw(Caller("outsider", user=personas.outsider), release).status_code == 404


def test_a_service_token_never_withdraws(personas):
    release = cleared_release(personas)
    _, raw = service_token(personas, "releases:write")
    assert withdraw(Caller("ci", token=raw), release).status_code == 403


def test_a_promoted_release_cannot_be_withdrawn(personas):
    release = cleared_release(personas)
    release_promote(release=release, actor=personas.actor("requester"))
    response = withdraw(Caller("requester", user=personas.requester), release)
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"


def test_withdrawing_needs_a_reason(personas):
    release = cleared_release(personas)
    response = withdraw(Caller("requester", user=personas.requester), release, reason=None)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["reason"]
    assert Release.objects.get(pk=release.pk).state == "in_review"
