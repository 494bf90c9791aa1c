"""Personas per project (requester, security, sme, admin, auditor, outsider) and service markers."""

import os
import socket
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from releasegate.accounts.actors import Actor
from releasegate.releases.models import Project
from releasegate.releases.services import project_create, role_grant

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_up() -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_URL)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 0.5):
            return True
    except OSError:
        return False


def missing(reason: str) -> None:
    """Skip for want of a service or the shared data on a laptop; under CI=true, fail instead."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing service fails the run instead of skipping)")
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        missing("needs PostgreSQL: set DATABASE_URL=postgres://... or start it on 127.0.0.1:5432")
    if item.get_closest_marker("redis") and not _redis_up():
        missing(f"needs Redis at {REDIS_URL}")


@dataclass
class Personas:
    project: Project
    requester: Any
    security: Any
    sme: Any
    admin: Any
    auditor: Any
    outsider: Any

    def actor(self, name: str) -> Actor:
        return Actor.for_user(getattr(self, name))

    @property
    def all(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in ("requester", "security", "sme", "admin", "auditor", "outsider")
        }


def make_personas(slug: str = "support-assistant", prefix: str = "") -> Personas:
    User = get_user_model()
    system = Actor.system_actor()
    project = project_create(slug=slug, name=slug.replace("-", " ").title(), actor=system)
    people = {}
    for name, role in (
        ("requester", "requester"),
        ("security", "security"),
        ("sme", "sme"),
        ("admin", "admin"),
        ("auditor", "auditor"),
        ("outsider", None),
    ):
        user = User.objects.create_user(f"{prefix}{name}", password=f"{name}-password-123")
        if role:
            role_grant(project=project, user=user, role=role, actor=system)
        people[name] = user
    return Personas(project=project, **people)


@pytest.fixture
def personas(db: Any) -> Personas:
    return make_personas()


@pytest.fixture
def advisory_db(db: Any) -> int:
    """The bundled sample of real PyPI advisories, imported as `seed_demo` does; how many."""
    from releasegate.checks.advisories import advisories_import
    from releasegate.releases.demo import DEMO_ADVISORIES

    report = advisories_import(path=DEMO_ADVISORIES)
    return report.created + report.updated + report.unchanged
