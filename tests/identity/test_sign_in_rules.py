"""Who a single sign-on finds or creates, at the service: the identity is issuer + sub, never
the e-mail; password sign-in can be turned off (IdP groups to roles: test_group_mappings.py)."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from releasegate.accounts.selectors import roles_for
from releasegate.errors import NotPermitted
from releasegate.identity.models import ExternalIdentity
from releasegate.identity.services import sso_sign_in

ISSUER = "https://idp.example"


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
