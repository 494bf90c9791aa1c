"""The governance requests of a project through the API: listed with what the caller may do,
confirmed, rejected or cancelled by whom `may_confirm_change` / `may_cancel_change` allow."""

import pytest
from django.test import Client

from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import roles_for
from releasegate.releases.services import policy_change, role_grant
from tests.api.conftest import Caller
from tests.releases.gatehelpers import person_with

pytestmark = pytest.mark.django_db
LIST = "/api/v1/projects/support-assistant/governance-requests"


def test_pending_requests_are_listed_with_what_the_caller_may_do(
    personas, django_assert_num_queries
):
    p = personas
    policy_change(project=p.project, actor=p.actor("admin"), changes={"max_approval_age_days": 30})
    for name in ("a", "b", "c"):
        role_grant(project=p.project, user=person_with(p, name), role="sme", actor=p.actor("admin"))
    client = Client()
    client.force_login(p.security)
    # Session, user, project, the caller's roles there, the list: whatever the number listed.
    with django_assert_num_queries(5):
        response = client.get(LIST)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["kind"] for r in results] == ["policy", "role_grant", "role_grant", "role_grant"]
    assert results[0]["weakenings"] == ["approvals expire after 30 days instead of 14"]
    assert [r["may_confirm"] for r in results] == [True, False, False, False]
    by_sme = Caller("sme", user=p.sme).request("GET", LIST).json()["results"]
    assert [r["may_confirm"] for r in by_sme] == [False, True, True, True]
    by_admin = Caller("admin", user=p.admin).request("GET", LIST).json()["results"]
    assert all(r["may_cancel"] and not r["may_confirm"] for r in by_admin)


def test_an_outsider_sees_no_requests(personas):
    response = Caller("outsider", user=personas.outsider).request("GET", LIST)
    assert response.status_code == 404


def test_a_security_holder_confirms_a_grant_through_the_api(personas):
    p = personas
    sock = person_with(p, "sock")
    pending = role_grant(project=p.project, user=sock, role="security", actor=p.actor("admin"))
    response = Caller("admin", user=p.admin).request("POST", f"{LIST}/{pending.pk}/confirm", {})
    assert response.status_code == 403 and response.json()["code"] == "may_not_confirm"
    response = Caller("security", user=p.security).request(
        "POST", f"{LIST}/{pending.pk}/confirm", {"reason": "known colleague"}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "applied" and response.json()["decided_by"] == "security"
    assert Role.SECURITY in roles_for(sock, p.project)
    again = Caller("security", user=p.security).request("POST", f"{LIST}/{pending.pk}/reject", {})
    assert again.status_code == 400  # a rejection needs a reason, before anything else
    again = Caller("security", user=p.security).request(
        "POST", f"{LIST}/{pending.pk}/reject", {"reason": "late"}
    )
    assert again.status_code == 409 and again.json()["code"] == "already_decided"


def test_an_unknown_request_is_a_404(personas):
    response = Caller("security", user=personas.security).request(
        "POST", f"{LIST}/999999/confirm", {}
    )
    assert response.status_code == 404
