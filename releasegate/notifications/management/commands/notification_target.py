"""Manage a project's notification targets from the shell, acting as one of its admins.

  manage.py notification_target add --project P --as ADMIN --kind webhook --url URL --events a,b
  manage.py notification_target add --project P --as ADMIN --kind email --address A --events a
  manage.py notification_target list --project P
  manage.py notification_target remove --id N --as ADMIN

`add` prints a webhook's signing secret once, alone on its last line; it is never shown again.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasegate.accounts.actors import Actor
from releasegate.errors import FieldError, InvalidInput, ReleasegateError
from releasegate.notifications.models import NOTIFICATION_EVENTS, NotificationTarget
from releasegate.notifications.services import (
    notification_target_add,
    notification_target_remove,
    redacted_destination,
)
from releasegate.releases.models import Project
from releasegate.releases.services import user_by_username


class Command(BaseCommand):
    help = "Add, list or remove a project's notification targets (e-mail, webhook)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add")
        add.add_argument("--project", required=True)
        add.add_argument("--as", dest="username", required=True)
        add.add_argument("--kind", required=True, choices=NotificationTarget.Kind.values)
        add.add_argument("--url", default="")
        add.add_argument("--address", default="")
        add.add_argument("--events", required=True, help=", ".join(NOTIFICATION_EVENTS))
        listing = sub.add_parser("list")
        listing.add_argument("--project", required=True)
        remove = sub.add_parser("remove")
        remove.add_argument("--id", dest="target_id", type=int, required=True)
        remove.add_argument("--as", dest="username", required=True)

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

    def _add(self, options: dict[str, Any]) -> None:
        actor = Actor.for_user(user_by_username(options["username"]))
        target, secret = notification_target_add(
            project=self._project(options["project"]),
            actor=actor,
            kind=options["kind"],
            url=options["url"],
            address=options["address"],
            events=[e.strip() for e in options["events"].split(",") if e.strip()],
        )
        self.stdout.write(f"added target {target.pk}: {target.kind} {redacted_destination(target)}")
        if secret:
            self.stdout.write("webhook signing secret (shown once, store it with the receiver):")
            self.stdout.write(secret)

    def _list(self, options: dict[str, Any]) -> None:
        project = self._project(options["project"])
        for target in NotificationTarget.objects.filter(project=project, removed_at__isnull=True):
            events = ",".join(target.events)
            destination = redacted_destination(target)
            self.stdout.write(f"{target.pk}\t{target.kind}\t{destination}\t{events}")

    def _remove(self, options: dict[str, Any]) -> None:
        found = NotificationTarget.objects.select_related("project")
        target = found.filter(pk=options["target_id"]).first()
        if target is None:
            raise InvalidInput("No such target.", errors=[FieldError("id", "unknown target")])
        actor = Actor.for_user(user_by_username(options["username"]))
        notification_target_remove(target=target, actor=actor)
        self.stdout.write(f"removed target {target.pk}")
