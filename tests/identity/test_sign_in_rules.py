"""Who a single sign-on finds or creates, and how IdP groups become roles, at the service: the
identity is issuer + sub, never the e-mail; group roles go through the role services."""

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from releasegate.accounts.selectors import roles_for
from releasegate.audit.models import AuditEvent
from releasegate.errors import NotPermitted
from releasegate.identity.models import ExternalIdentity, GroupMapping, IdpRoleGrant
from releasegate.identity.services import group_mapping_add, sso_sign_in
from releasegate.releases.services import approval_give, role_grant
from tests.builders import submitted_release

ISSUER = "https://idp.example"
QUERIES = 8  # session, user, project, roles, policies, mappings, IdP grants, holders
QUERIES = 8  # session, user, project, roles, policies, mappings, IdP grants, holders


def sign_in(sub: str, groups: list[str] | None = None, **claims: Any) -> Any:
    return sso_sign_in(
        issuer=ISSUER, claims={"sub": sub, "groups": groups or [], **claims}, groups_claim="groups"
    )


@pytest.mark.django_db
def test_first_sign_in_creates_a_person_without_a_password(personas):
    result = sign_in("sub-nina", preferred_username="nina", email="nina@example.com")
    assert result.created and result.user.username == "nina"
    assert not result.user.has_usable_password()
    again = sign_in("sub-nina", preferred_username="nina")
    assert not again.created and again.user.pk == result.user.pk


@pytest.mark.django_db
def test_same_email_as_an_existing_person_takes_over_nobody(personas):
    personas.sme.email = "erin@example.com"
    personas.sme.save()
    result = sign_in("sub-mallory", preferred_username="sme", email="erin@example.com")
    assert result.user.pk != personas.sme.pk
    assert result.user.username == "sme-2"
    assert roles_for(result.user, personas.project) == frozenset()


@pytest.mark.django_db
def test_a_changed_email_keeps_the_same_person(personas):
    first = sign_in("sub-nina", email="nina@example.com").user
    second = sign_in("sub-nina", email="nina@new.example").user
    assert first.pk == second.pk
    assert ExternalIdentity.objects.get().email == "nina@new.example"


@pytest.mark.django_db
def test_two_idp_accounts_with_one_email_are_two_people(personas):
    a = sign_in("sub-a", email="shared@example.com").user
    b = sign_in("sub-b", email="shared@example.com").user
    assert a.pk != b.pk


@pytest.mark.django_db
def test_same_sub_at_another_issuer_is_another_person(personas):
    a = sign_in("sub-a").user
    b = sso_sign_in(issuer="https://other.example", claims={"sub": "sub-a"}, groups_claim="g")
    assert a.pk != b.user.pk


@pytest.mark.django_db
def test_disabled_person_cannot_sign_in(personas):
    user = sign_in("sub-a").user
    user.is_active = False
    user.save()
    with pytest.raises(NotPermitted):
        sign_in("sub-a")


@pytest.mark.django_db
def test_group_grants_and_later_revokes_the_role(personas):
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="ml", role="auditor"
    )
    user = sign_in("sub-nina", ["ml"]).user
    assert "auditor" in roles_for(user, personas.project)
    grant = IdpRoleGrant.objects.get()
    assert grant.group == "ml" and grant.granted_by == personas.admin
    sign_in("sub-nina", [])
    assert "auditor" not in roles_for(user, personas.project)
    assert not IdpRoleGrant.objects.exists()
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert "role_granted" in actions and "role_revoked" in actions


@pytest.mark.django_db
def test_hand_granted_role_stays_when_the_group_goes(personas):
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="ml", role="auditor"
    )
    user = sign_in("sub-nina", []).user
    role_grant(project=personas.project, user=user, role="auditor", actor=personas.actor("admin"))
    sign_in("sub-nina", ["ml"])
    sign_in("sub-nina", [])
    assert "auditor" in roles_for(user, personas.project)  # the admin's grant, not the IdP's


@pytest.mark.django_db
def test_nobody_is_granted_a_role_by_their_own_mapping(personas):
    """The admin maps a group they belong to: the IdP cannot make them grant themselves."""
    ExternalIdentity.objects.create(issuer=ISSUER, subject="sub-admin", user=personas.admin)
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="sec", role="security"
    )
    result = sign_in("sub-admin", ["sec"])
    assert "security" not in roles_for(personas.admin, personas.project)
    assert result.refused and "themselves" in result.refused[0]


@pytest.mark.django_db
def test_requester_given_a_reviewer_role_by_the_idp_still_cannot_approve_their_release(personas):
    ExternalIdentity.objects.create(issuer=ISSUER, subject="sub-req", user=personas.requester)
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="ml", role="sme"
    )
    release = submitted_release(personas.project, personas.requester)
    sign_in("sub-req", ["ml"])
    # sme is a veto role the project has a holder of: the IdP's grant waits for that holder.
    from releasegate.releases.models import GovernanceChange
    from releasegate.releases.services import governance_change_confirm

    pending = GovernanceChange.objects.get(subject=personas.requester, role="sme")
    governance_change_confirm(change=pending, actor=personas.actor("sme"))
    assert "sme" in roles_for(personas.requester, personas.project)
    with pytest.raises(NotPermitted) as refused:
        approval_give(release=release, actor=personas.actor("requester"), role="sme")
    assert refused.value.code == "requester_cannot_approve"


@pytest.mark.django_db
def test_only_a_project_admin_maps_groups(personas):
    for who in ("requester", "security", "sme", "auditor", "outsider"):
        with pytest.raises(NotPermitted):
            group_mapping_add(
                project=personas.project, actor=personas.actor(who), group="g", role="sme"
            )


@pytest.mark.django_db
def test_group_mapping_command_adds_lists_and_removes(personas):
    out = StringIO()
    call_command(
        "group_mapping",
        "add",
        "--project",
        "support-assistant",
        "--as",
        "admin",
        "--group",
        "ml-experts",
        "--role",
        "sme",
        stdout=out,
    )
    mapping = GroupMapping.objects.get()
    assert out.getvalue().strip() == f"added group mapping {mapping.pk}: ml-experts -> sme"
    listing = StringIO()
    call_command("group_mapping", "list", "--project", "support-assistant", stdout=listing)
    assert listing.getvalue().strip() == f"{mapping.pk}\tml-experts\tsme\tadmin"
    call_command("group_mapping", "remove", "--id", str(mapping.pk), "--as", "admin", stdout=out)
    assert not GroupMapping.objects.exists()
    assert AuditEvent.objects.filter(action="group_mapping_removed").exists()


@pytest.mark.django_db
def test_identities_page_shows_idp_roles_apart_from_hand_granted(
    personas, django_assert_num_queries
):
    group_mapping_add(
        project=personas.project, actor=personas.actor("admin"), group="ml", role="auditor"
    )
    sign_in("sub-nina", ["ml"], preferred_username="nina")
    client = Client()
    client.force_login(personas.admin)
    client.get("/projects/support-assistant/identities/")
    with django_assert_num_queries(QUERIES):
        response = client.get("/projects/support-assistant/identities/")
    assert response.status_code == 200
    page = response.content.decode()
    idp = page.split('id="roles-from-idp"')[1].split("</table>")[0]
    by_hand = page.split('id="roles-by-hand"')[1].split("</table>")[0]
    assert "nina" in idp and "ml" in idp
    assert "nina" not in by_hand and "admin" in by_hand


@pytest.mark.django_db
def test_outsider_gets_404_for_the_identities_page(personas):
    client = Client()
    client.force_login(personas.outsider)
    assert client.get("/projects/support-assistant/identities/").status_code == 404


@pytest.mark.django_db
def test_password_sign_in_is_refused_when_local_login_is_off(personas, settings):
    settings.RELEASEGATE_LOCAL_LOGIN = False
    settings.OIDC_ISSUER = "https://idp.example"
    client = Client()
    page = client.get("/login/").content.decode()
    assert 'name="password"' not in page and "single sign-on" in page
    posted = client.post("/login/", {"username": "admin", "password": "admin-password-123"})
    assert posted.status_code == 403
    assert client.get("/").status_code == 302  # still signed out
    assert not client.login(username="admin", password="admin-password-123")
    get_user_model().objects.create_superuser("root", password="root-password-123")
    admin = client.post(
        "/admin/login/", {"username": "root", "password": "root-password-123", "next": "/admin/"}
    )
    assert admin.status_code == 200  # the form again, with an error: not signed in


@pytest.mark.django_db
def test_password_sign_in_still_works_by_default(personas):
    client = Client()
    response = client.post("/login/", {"username": "admin", "password": "admin-password-123"})
    assert response.status_code == 302
