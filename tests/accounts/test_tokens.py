from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import (
    TokenRejected,
    token_authenticate,
    token_create,
    token_revoke,
    token_verify,
)
from releasegate.audit.models import AuditEvent
from releasegate.errors import InvalidInput, NotPermitted


def _personal(user, **kwargs):
    return token_create(
        actor=Actor.for_user(user), kind="personal", name="laptop", user=user, **kwargs
    )


def test_personal_token_is_shown_once_and_stored_only_as_a_hash(personas):
    token, raw = _personal(personas.requester)
    assert raw.startswith("rgp_")
    assert token.key_id in raw
    secret = raw.split("_", 2)[2]
    assert secret not in token.secret_hash
    assert token_authenticate(raw).pk == token.pk
    assert token.expires_at - timezone.now() > timedelta(days=89)


def test_service_token_carries_scopes_and_its_issuer_as_owner(personas):
    token, raw = token_create(
        actor=personas.actor("admin"),
        kind="service",
        name="ci",
        project=personas.project,
        scopes=["gate:read", "checks:write"],
    )
    assert raw.startswith("rgs_")
    assert token.scopes == ["checks:write", "gate:read"]
    assert token.created_by == personas.admin
    assert Actor.for_token(token_authenticate(raw)).person is None


@pytest.mark.parametrize("name", ["requester", "security", "sme", "auditor", "outsider"])
def test_only_a_project_admin_issues_service_tokens(personas, name):
    with pytest.raises(NotPermitted):
        token_create(
            actor=personas.actor(name),
            kind="service",
            name="ci",
            project=personas.project,
            scopes=["gate:read"],
        )
    assert not ApiToken.objects.exists()


def test_nobody_issues_a_personal_token_for_someone_else(personas):
    with pytest.raises(NotPermitted):
        token_create(actor=personas.actor("admin"), kind="personal", name="x", user=personas.sme)


def test_a_token_cannot_issue_tokens(personas):
    token, _ = _personal(personas.admin)
    with pytest.raises(NotPermitted):
        token_create(actor=Actor.for_token(token), kind="personal", name="x", user=personas.admin)


@pytest.mark.parametrize("scopes", [[], ["everything"], "gate:read"])
def test_service_token_scopes_are_checked(personas, scopes):
    with pytest.raises(InvalidInput) as err:
        token_create(
            actor=Actor.system_actor(),
            kind="service",
            name="ci",
            project=personas.project,
            scopes=scopes,
        )
    assert err.value.errors[0].field == "scopes"


@pytest.mark.parametrize("expires_in", [timedelta(0), timedelta(days=366)])
def test_expiry_is_mandatory_and_bounded(personas, expires_in):
    with pytest.raises(InvalidInput):
        _personal(personas.requester, expires_in=expires_in)


def test_expired_revoked_and_forged_tokens_are_refused_with_a_reason(personas):
    token, raw = _personal(personas.requester)
    with pytest.raises(TokenRejected) as forged:
        token_verify(raw[:-4] + "AAAA")
    assert forged.value.code == "token_invalid"
    assert token_authenticate("rgp_nonsense") is None
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(TokenRejected) as expired:
        token_verify(raw)
    assert expired.value.code == "token_expired"
    token2, raw2 = _personal(personas.requester)
    token_revoke(token=token2, actor=personas.actor("requester"))
    with pytest.raises(TokenRejected) as revoked:
        token_verify(raw2)
    assert revoked.value.code == "token_revoked"


def test_last_use_is_recorded_at_most_once_a_minute(personas, django_assert_num_queries):
    token, raw = _personal(personas.requester)
    with django_assert_num_queries(2):
        token_verify(raw)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    with django_assert_num_queries(1):
        token_verify(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first


def test_creation_and_revocation_are_audited_without_the_secret(personas):
    token, raw = token_create(
        actor=Actor.system_actor(),
        kind="service",
        name="ci",
        project=personas.project,
        scopes=["gate:read"],
    )
    token_revoke(token=token, actor=personas.actor("admin"))
    events = list(AuditEvent.objects.filter(action__in=["token_created", "token_revoked"]))
    assert [e.action for e in events] == ["token_created", "token_revoked"]
    assert all(raw.split("_", 2)[2] not in str(e.data) for e in events)
    assert events[1].actor == "admin"


def test_only_the_admin_or_owner_revokes(personas):
    service, _ = token_create(
        actor=Actor.system_actor(),
        kind="service",
        name="ci",
        project=personas.project,
        scopes=["gate:read"],
    )
    personal, _ = _personal(personas.sme)
    with pytest.raises(NotPermitted):
        token_revoke(token=service, actor=personas.actor("requester"))
    with pytest.raises(NotPermitted):
        token_revoke(token=personal, actor=personas.actor("admin"))
    assert ApiToken.objects.filter(revoked_at__isnull=False).count() == 0


def _command(*args):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_create_token_prints_the_token_alone_on_its_last_line(personas):
    lines = _command(
        "create_token", "--user", "requester", "--name", "laptop", "--expires-in", "30d"
    )
    raw = lines[-1]
    token = token_authenticate(raw)
    assert token is not None and token.user == personas.requester and token.name == "laptop"
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert all(raw not in line for line in lines[:-1])


def test_create_service_token_with_scopes_and_owner_then_revoke_it(personas):
    raw = _command(
        "create_token",
        "--project",
        "support-assistant",
        "--scopes",
        "gate:read,checks:write",
        "--owner",
        "admin",
    )[-1]
    token = token_authenticate(raw)
    assert token.kind == "service" and token.scopes == ["checks:write", "gate:read"]
    assert token.created_by == personas.admin
    assert _command("revoke_token", token.key_id)[-1].endswith("revoked")
    assert token_authenticate(raw) is None
    assert _command("revoke_token", raw)[-1].endswith("was already revoked")


@pytest.mark.parametrize(
    "args",
    [
        ["--user", "nobody"],
        ["--project", "nope", "--scopes", "gate:read"],
        ["--project", "support-assistant", "--scopes", "root"],
        ["--user", "requester", "--expires-in", "400d"],
        ["--user", "requester", "--expires-in", "soon"],
    ],
)
def test_create_token_refuses_bad_input(personas, args):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        _command("create_token", *args)
    assert not ApiToken.objects.exists()


def test_create_token_refuses_releases_write_without_an_owner(personas):
    with pytest.raises(CommandError, match="--owner"):
        call_command(
            "create_token", "--project", "support-assistant", "--scopes", "gate:read,releases:write"
        )
    assert not ApiToken.objects.exists()


def test_create_token_with_an_owner_issues_it(personas, capsys):
    call_command(
        "create_token",
        "--project",
        "support-assistant",
        "--scopes",
        "releases:write",
        "--owner",
        "requester",
    )
    token = ApiToken.objects.get()
    assert token.created_by == personas.requester


def test_a_token_without_releases_write_needs_no_owner(personas):
    call_command("create_token", "--project", "support-assistant", "--scopes", "gate:read")
    assert ApiToken.objects.get().created_by is None


def test_site_admin_sees_tokens_and_revokes_them_but_never_the_secret(personas, client, settings):
    from django.contrib.auth import get_user_model

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    root = get_user_model().objects.create_superuser("root", password="root-password-123")
    token, raw = token_create(
        actor=Actor.system_actor(),
        kind="service",
        name="ci",
        project=personas.project,
        scopes=["gate:read"],
    )
    client.force_login(root)
    listing = client.get("/admin/accounts/apitoken/")
    assert listing.status_code == 200
    assert token.key_id in listing.content.decode()
    assert raw.split("_", 2)[2] not in listing.content.decode()
    response = client.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert response.status_code == 302
    assert token_authenticate(raw) is None
    assert AuditEvent.objects.filter(action="token_revoked").count() == 1
