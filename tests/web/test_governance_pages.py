"""Governance requests and withdrawal on the pages: the project page lists what waits, with a
confirm button only for who may confirm; "Waiting on me" lists it for them; the release page has
a withdraw button for its requester and admins."""

import pytest

from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import roles_for
from releasegate.releases.models import GovernanceChange, Release
from releasegate.releases.services import policy_change
from tests.releases.gatehelpers import cleared_release, person_with
from tests.web.helpers import signed_in, text

pytestmark = pytest.mark.django_db
PROJECT = "/projects/support-assistant/"


def test_a_grant_of_security_by_the_admin_waits_and_sam_confirms_it_on_the_project_page(
    client, personas
):
    p = personas
    sock = person_with(p, "sock")
    response = signed_in(client, p.admin).post(
        f"{PROJECT}roles/grant/", {"username": "sock", "role": "security"}, follow=True
    )
    assert "Nothing changed yet" in text(response)
    assert Role.SECURITY not in roles_for(sock, p.project)
    change = GovernanceChange.objects.get(status="pending")
    admin_page = text(client.get(PROJECT))
    assert f"Request {change.pk}" in admin_page and "Cancel my request" in admin_page
    assert f"/requests/{change.pk}/confirm/" not in admin_page

    home = text(signed_in(client, p.security).get("/"))
    assert "Changes to a gate that need your confirmation" in home
    assert f"#request-{change.pk}" in home
    page = text(client.get(PROJECT))
    assert f"/requests/{change.pk}/confirm/" in page
    response = client.post(f"{PROJECT}requests/{change.pk}/confirm/", {"reason": "ok"})
    assert response.status_code == 302
    assert Role.SECURITY in roles_for(sock, p.project)
    assert "Changes waiting for confirmation" not in text(client.get(PROJECT))


@pytest.mark.parametrize("who", ["requester", "sme", "auditor", "admin"])
def test_only_who_may_confirm_is_offered_and_allowed_to(client, personas, who):
    p = personas
    change = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"vulnerability_threshold": "critical"}
    )
    signed_in(client, getattr(p, who))
    assert f"/requests/{change.pk}/confirm/" not in text(client.get(PROJECT))
    assert "need your confirmation" not in text(client.get("/"))
    response = client.post(f"{PROJECT}requests/{change.pk}/confirm/", {"reason": "ok"})
    assert response.status_code == 403
    p.project.refresh_from_db()
    assert p.project.current_policy.version == 1


def test_an_outsider_gets_a_404_for_a_request(client, personas):
    p = personas
    change = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 30}
    )
    response = signed_in(client, p.outsider).post(f"{PROJECT}requests/{change.pk}/confirm/")
    assert response.status_code == 404


def test_a_pending_change_shows_what_it_loosens_and_can_be_rejected(client, personas):
    p = personas
    signed_in(client, p.security)
    change = policy_change(
        project=p.project, actor=p.actor("admin"), changes={"required_approvals": {"security": 1}}
    )
    page = text(client.get(PROJECT))
    assert "sme approvals required go from 1 to 0" in page
    response = client.post(f"{PROJECT}requests/{change.pk}/reject/", {"reason": "keep sme"})
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.status == "rejected" and change.decision_reason == "keep sme"


@pytest.mark.parametrize("who", ["requester", "admin"])
def test_the_requester_or_an_admin_withdraws_with_the_page_button(client, personas, who):
    release = cleared_release(personas)
    signed_in(client, getattr(personas, who))
    assert f"/releases/{release.pk}/withdraw/" in text(client.get(f"/releases/{release.pk}/"))
    response = client.post(f"/releases/{release.pk}/withdraw/", {"reason": "replaced"})
    assert response.status_code == 302
    assert Release.objects.get(pk=release.pk).state == "withdrawn"


@pytest.mark.parametrize("who", ["security", "sme", "auditor"])
def test_others_get_no_withdraw_button_and_cannot_withdraw(client, personas, who):
    release = cleared_release(personas)
    signed_in(client, getattr(personas, who))
    assert "/withdraw/" not in text(client.get(f"/releases/{release.pk}/"))
    response = client.post(f"/releases/{release.pk}/withdraw/", {"reason": "no"})
    assert response.status_code == 403
    assert Release.objects.get(pk=release.pk).state == "in_review"
