"""The demo data of the product brief: one project, its default policy, and six people."""

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from releasegate.accounts.actors import Actor
from releasegate.checks.advisories import advisories_import
from releasegate.releases.models import Project
from releasegate.releases.services import project_create, role_grant

DEMO_PROJECT = "support-assistant"
# A small sample of real PyPI advisories (see releasegate/checks/data/NOTICE.md), so the demo's
# vulnerabilities check has a database to match against; it fails closed on an empty one.
DEMO_ADVISORIES = Path(__file__).resolve().parent.parent / "checks" / "data" / "osv-demo-sample.zip"


@dataclass(frozen=True)
class DemoPerson:
    username: str
    role: str | None
    what: str


DEMO_PEOPLE = (
    DemoPerson("alice", "requester", "requester (product manager)"),
    DemoPerson("sam", "security", "security lead"),
    DemoPerson("erin", "sme", "subject-matter expert"),
    DemoPerson("olga", "admin", "project admin"),
    DemoPerson("audrey", "auditor", "auditor"),
    DemoPerson("oscar", None, "signed in, but no role on the project"),
)


def demo_password(username: str) -> str:
    return f"{username}-releasegate-demo"


@transaction.atomic
def seed_demo() -> Project:
    """Create (or complete) the demo project and people. Safe to run again."""
    User = get_user_model()
    system = Actor.system_actor()
    project = Project.objects.filter(slug=DEMO_PROJECT).first() or project_create(
        slug=DEMO_PROJECT, name="Support assistant", actor=system
    )
    for person in DEMO_PEOPLE:
        user, created = User.objects.get_or_create(
            username=person.username, defaults={"email": f"{person.username}@example.com"}
        )
        if created:
            user.set_password(demo_password(person.username))
            user.save()
        if person.role is not None:
            role_grant(project=project, user=user, role=person.role, actor=system)
    advisories_import(path=DEMO_ADVISORIES)
    return project
