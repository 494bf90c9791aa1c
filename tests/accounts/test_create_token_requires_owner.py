"""`create_token --scopes releases:write` without `--owner` is refused with a message: such a
token has no person to request releases in the name of, so every create was a 403."""

import pytest
from django.core.management import CommandError, call_command

from releasegate.accounts.models import ApiToken

pytestmark = pytest.mark.django_db


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
