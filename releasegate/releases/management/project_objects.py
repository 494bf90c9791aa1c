"""The shape of the shell commands that manage one kind of a project's objects as one of its
admins (notification targets, OIDC trust policies, IdP group mappings):

  manage.py NAME add --project P --as ADMIN ...    (the options of the kind, `add_options`)
  manage.py NAME list --project P
  manage.py NAME remove --id N --as ADMIN

A subclass writes `_add`, `_list` and `_remove`; a refusal of the service they call is the
command's error message.
"""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasegate.accounts.actors import Actor
from releasegate.errors import ReleasegateError
from releasegate.releases.models import Project
from releasegate.releases.services import user_by_username


class ProjectObjectsCommand(BaseCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add")
        add.add_argument("--project", required=True)
        add.add_argument("--as", dest="username", required=True)
        self.add_options(add)
        listing = sub.add_parser("list")
        listing.add_argument("--project", required=True)
        remove = sub.add_parser("remove")
        remove.add_argument("--id", type=int, required=True)
        remove.add_argument("--as", dest="username", required=True)

    def add_options(self, add: ArgumentParser) -> None:
        """The options of `add` for this kind of object."""

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ReleasegateError as refused:
            raise CommandError(str(refused)) from None

    def _project(self, slug: str) -> Project:
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise CommandError(f"No project {slug!r}.")
        return project

    def _actor(self, options: dict[str, Any]) -> Actor:
        return Actor.for_user(user_by_username(options["username"]))
