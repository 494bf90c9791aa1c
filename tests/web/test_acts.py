"""Approve, veto, lift, submit, promote; policy and roles; personal tokens, through the pages."""

import pytest

from releasegate.accounts.models import ApiToken
from releasegate.accounts.selectors import roles_for
from releasegate.accounts.tokens import token_authenticate
from releasegate.releases.models import GatePolicy, GovernanceChange, Release, Veto
from releasegate.releases.services import approval_give, veto_cast
from tests.builders import attach_all, make_release, pass_checks, submitted_release
from tests.web.helpers import signed_in, text

pytestmark = pytest.mark.django_db


@pytest.fixture
def release(personas):
    return submitted_release(personas.project, personas.requester)


def test_requester_submits_a_draft(client, personas):
    draft = make_release(personas.project, personas.requester)
    attach_all(draft, personas.requester)
    signed_in(client, personas.requester)
    assert "Submit for review" in text(client.get(f"/releases/{draft.pk}/"))
    assert client.post(f"/releases/{draft.pk}/submit/").status_code == 302
    draft.refresh_from_db()
    assert draft.state == Release.State.IN_REVIEW


def test_veto_without_a_reason_is_refused_and_keeps_the_choices(client, personas, release):
    signed_in(client, personas.security)
    response = client.post(
        f"/releases/{release.pk}/veto/", {"role": "security", "reason": "   ", "scope": "release"}
    )
    assert response.status_code == 400
    body = text(response)
    assert "Reason (required): This field is required." in body
    assert 'value="release" required id="id_scope_1" checked' in body
    assert not Veto.objects.exists()


def test_veto_blocks_and_the_requester_sees_why_without_a_promote_button(client, personas, release):
    p = personas
    pass_checks(release)
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    signed_in(client, p.security)
    response = client.post(
        f"/releases/{release.pk}/veto/",
        {
            "role": "security",
            "reason": "Prompts leave for the vendor unredacted",
            "scope": "carry_forward",
        },
    )
    assert response.status_code == 302
    body = text(signed_in(client, p.requester).get(f"/releases/{release.pk}/"))
    assert "Blocked" in body
    assert "Vetoed by security (security): Prompts leave for the vendor unredacted" in body
    assert 'id="promote-button"' not in body
    assert client.post(f"/releases/{release.pk}/promote/").status_code == 302
    release.refresh_from_db()
    assert release.state == Release.State.IN_REVIEW


def test_the_requester_cannot_lift_a_veto(client, personas, release):
    veto = veto_cast(
        release=release, actor=personas.actor("security"), role="security", reason="no"
    )
    signed_in(client, personas.requester)
    response = client.post(
        f"/releases/{release.pk}/vetoes/{veto.pk}/lift/", {"reason": "I disagree"}
    )
    assert response.status_code == 403
    veto.refresh_from_db()
    assert veto.is_active


def test_lift_needs_a_reason(client, personas, release):
    veto = veto_cast(
        release=release, actor=personas.actor("security"), role="security", reason="no"
    )
    signed_in(client, personas.security)
    assert "Lift veto" in text(client.get(f"/releases/{release.pk}/"))
    response = client.post(f"/releases/{release.pk}/vetoes/{veto.pk}/lift/", {"reason": ""})
    assert response.status_code == 400
    assert "Reason for lifting (required): This field is required." in text(response)
    response = client.post(
        f"/releases/{release.pk}/vetoes/{veto.pk}/lift/", {"reason": "fixed in 1.0.1"}
    )
    assert response.status_code == 302
    veto.refresh_from_db()
    assert not veto.is_active and veto.lift_reason == "fixed in 1.0.1"
    body = text(client.get(f"/releases/{release.pk}/"))
    assert "Veto lifted" in body and "fixed in 1.0.1" in body


def test_a_veto_of_another_role_is_not_offered_for_lifting(client, personas, release):
    veto_cast(release=release, actor=personas.actor("security"), role="security", reason="no")
    assert "Lift veto" not in text(signed_in(client, personas.sme).get(f"/releases/{release.pk}/"))


def test_requester_cannot_approve_their_own_release(client, personas, release):
    signed_in(client, personas.requester)
    response = client.post(f"/releases/{release.pk}/approve/", {"role": "security"})
    assert response.status_code == 302  # no reviewer role: the form refuses the role
    assert not release.approvals.exists()


def test_approve_and_promote_once_cleared(client, personas, release):
    p = personas
    pass_checks(release)
    signed_in(client, p.security)
    assert (
        client.post(
            f"/releases/{release.pk}/approve/", {"role": "security", "comment": "ok"}
        ).status_code
        == 302
    )
    body = text(client.get(f"/releases/{release.pk}/"))
    assert "Approved" in body and f'action="/releases/{release.pk}/approve/"' not in body
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    signed_in(client, p.requester)
    body = text(client.get(f"/releases/{release.pk}/"))
    assert "Cleared for production" in body and 'id="promote-button"' in body
    assert "Confirm promotion" in text(client.get(f"/releases/{release.pk}/promote/"))
    response = client.post(f"/releases/{release.pk}/promote/")
    assert response.status_code == 302
    release.refresh_from_db()
    assert release.state == Release.State.PROMOTED
    body = text(client.get(f"/releases/{release.pk}/"))
    assert "Promoted" in body and 'id="promote-button"' not in body


def test_a_carried_forward_veto_links_to_its_release(client, personas, release):
    veto_cast(
        release=release, actor=personas.actor("security"), role="security", reason="bad model"
    )
    later = submitted_release(personas.project, personas.requester, version="1.0.1")
    body = text(signed_in(client, personas.requester).get(f"/releases/{later.pk}/"))
    assert "on another release carries forward: bad model" in body
    assert f'<a href="/releases/{release.pk}/">(on another release)</a>' in body


def test_admin_changes_the_policy_as_a_new_version(client, personas):
    signed_in(client, personas.admin)
    data = {
        "required_items": ["sbom", "data_flow_map"],
        "required_checks": ["sbom_valid"],
        "security_approvals": "2",
        "sme_approvals": "0",
        "veto_roles": ["security"],
        "max_approval_age_days": "7",
        "max_review_age_days": "90",
        "vulnerability_threshold": "critical",
        "license_denylist": "AGPL-3.0-only, SSPL-1.0",
        "external_ci_url": "",
        "environments": "production, staging, canary",
        "hold_severities": "critical",
        "break_glass_hours": "4",
        "break_glass_review_days": "7",
        "note": "tighter",
    }
    assert client.post("/projects/support-assistant/policy/", data).status_code == 302
    # It loosens the gate (fewer items, checks and veto roles): a security holder confirms it.
    personas.project.refresh_from_db()
    assert personas.project.current_policy.version == 1
    change = GovernanceChange.objects.get(project=personas.project, status="pending")
    signed_in(client, personas.security)
    confirm = f"/projects/support-assistant/requests/{change.pk}/confirm/"
    assert client.post(confirm, {"reason": "reviewed"}).status_code == 302
    personas.project.refresh_from_db()
    policy = personas.project.current_policy
    assert policy.version == 2 and policy.required_approvals == {"security": 2}
    assert policy.veto_roles == ["security"]
    assert policy.environments == ["production", "staging", "canary"]
    body = text(client.get("/projects/support-assistant/"))
    assert "v2 (in force)" in body and "v1" in body and "tighter" in body


def test_a_policy_error_is_shown_on_its_field(client, personas):
    signed_in(client, personas.admin)
    data = {
        "required_items": [],
        "required_checks": ["external_ci"],
        "security_approvals": "1",
        "sme_approvals": "1",
        "max_approval_age_days": "14",
        "max_review_age_days": "180",
        "vulnerability_threshold": "high",
        "environments": "production",
        "hold_severities": "critical",
        "break_glass_hours": "4",
        "break_glass_review_days": "7",
    }
    response = client.post("/projects/support-assistant/policy/", data)
    assert response.status_code == 400
    assert "External CI status URL: the external_ci check needs a url to pull from" in text(
        response
    )
    assert GatePolicy.objects.filter(project=personas.project).count() == 1


@pytest.mark.parametrize("name", ("requester", "security", "sme", "auditor"))
def test_only_an_admin_changes_policy_or_roles(client, personas, name):
    signed_in(client, getattr(personas, name))
    response = client.post(
        "/projects/support-assistant/policy/",
        {
            "security_approvals": "0",
            "sme_approvals": "0",
            "max_approval_age_days": "1",
            "max_review_age_days": "1",
            "vulnerability_threshold": "low",
        },
    )
    assert response.status_code == 403
    response = client.post(
        "/projects/support-assistant/roles/grant/", {"username": "outsider", "role": "security"}
    )
    assert response.status_code == 403
    assert not roles_for(personas.outsider, personas.project)


def test_outsider_cannot_touch_the_project(client, personas):
    signed_in(client, personas.outsider)
    response = client.post(
        "/projects/support-assistant/roles/grant/", {"username": "outsider", "role": "admin"}
    )
    assert response.status_code == 404


def test_admin_grants_and_revokes_roles(client, personas):
    # auditor: no guarded role, so it takes effect at once (see test_governance_pages.py).
    signed_in(client, personas.admin)
    response = client.post(
        "/projects/support-assistant/roles/grant/", {"username": "outsider", "role": "auditor"}
    )
    assert response.status_code == 302
    assert {r.value for r in roles_for(personas.outsider, personas.project)} == {"auditor"}
    assert "<td>outsider</td>" in text(client.get("/projects/support-assistant/"))
    response = client.post(
        "/projects/support-assistant/roles/revoke/", {"username": "outsider", "role": "auditor"}
    )
    assert response.status_code == 302
    assert not roles_for(personas.outsider, personas.project)
    response = client.post(
        "/projects/support-assistant/roles/grant/", {"username": "nobody", "role": "sme"}
    )
    assert response.status_code == 400
    assert "Username: No active user with this username." in text(response)


def test_personal_token_is_shown_once_listed_and_revoked(client, personas):
    signed_in(client, personas.requester)
    response = client.post("/tokens/", {"name": "laptop", "expires_in_days": "30"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = text(response)
    token = ApiToken.objects.get(user=personas.requester)
    start = body.index('value="rgp_') + len('value="')
    plaintext = body[start : body.index('"', start)]
    assert token_authenticate(plaintext) == token
    listing = text(client.get("/tokens/"))
    assert "laptop" in listing and plaintext not in listing and "Active" in listing
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 302
    assert token_authenticate(plaintext) is None
    assert "Revoked" in text(client.get("/tokens/"))


def test_nobody_revokes_another_persons_token(client, personas):
    signed_in(client, personas.requester)
    client.post("/tokens/", {"name": "laptop", "expires_in_days": "30"})
    token = ApiToken.objects.get(user=personas.requester)
    signed_in(client, personas.admin)
    assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 404
    assert "<td>laptop</td>" not in text(client.get("/tokens/"))
    token.refresh_from_db()
    assert token.revoked_at is None


def test_a_token_without_a_name_is_refused(client, personas):
    response = signed_in(client, personas.requester).post(
        "/tokens/", {"name": "", "expires_in_days": "30"}
    )
    assert response.status_code == 400
    assert "Token name: This field is required." in text(response)
    assert not ApiToken.objects.exists()
