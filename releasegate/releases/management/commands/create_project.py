from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from releasegate.accounts.actors import Actor
from releasegate.errors import ReleasegateError
from releasegate.releases.services import project_create, role_grant, user_by_username


class Command(BaseCommand):
    help = (
        "Create a project with the default gate policy and name its first admin, who then grants "
        "every other role from the project's page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="lowercase letters, digits and dashes")
        parser.add_argument("--name", required=True, help="the project's display name")
        parser.add_argument("--admin", required=True, help="username of the project's admin")

    def handle(self, *args: Any, slug: str, name: str, admin: str, **options: Any) -> None:
        system = Actor.system_actor()
        try:
            with transaction.atomic():
                user = user_by_username(admin)
                project = project_create(slug=slug, name=name, actor=system)
                role_grant(project=project, user=user, role="admin", actor=system)
        except ReleasegateError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"project {project.slug} created; {admin} is its admin")
