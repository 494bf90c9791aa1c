"""Small helpers for the page tests."""

from typing import Any

from django.test import Client

from releasegate.accounts.actors import Actor
from releasegate.checks.services import check_result_record
from releasegate.releases.models import Release


def signed_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def record_check(release: Release, check: str, status: str = "passed", **kwargs: Any) -> None:
    release.refresh_from_db()
    check_result_record(
        release=release, actor=Actor.system_actor(), check=check, status=status, **kwargs
    )


def text(response: Any) -> str:
    return response.content.decode()
