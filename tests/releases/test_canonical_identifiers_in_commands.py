"""The management commands match identifiers whole too: a slug with a trailing newline, a
look-alike or upper case is refused and nothing is created."""

import pytest
from django.core.management import CommandError, call_command

from releasegate.releases.models import Project


@pytest.mark.parametrize(
    "slug", ["new-project\n", "new-pr\u043eject", "New-Project", "new-project ", "x" * 65]
)
def test_create_project_refuses_a_slug_that_is_not_matched_whole(personas, slug):
    before = Project.objects.count()
    with pytest.raises(CommandError, match="slug"):
        call_command("create_project", slug, "--name", "New", "--admin", personas.admin.username)
    assert Project.objects.count() == before


def test_create_token_names_no_project_for_a_slug_with_a_trailing_newline(personas):
    with pytest.raises(CommandError, match="No project"):
        call_command("create_token", "--project", "support-assistant\n", "--scopes", "gate:read")
