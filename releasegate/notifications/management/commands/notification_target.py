"""Manage a project's notification targets from the shell, acting as one of its admins.

  manage.py notification_target add --project P --as ADMIN --kind webhook --url URL --events a,b
  manage.py notification_target add --project P --as ADMIN --kind email --address A --events a
  manage.py notification_target list --project P
  manage.py notification_target remove --id N --as ADMIN

`add` prints a webhook's signing secret once, alone on its last line; it is never shown again.
"""

from argparse import ArgumentParser
from typing import Any

from releasegate.errors import FieldError, InvalidInput
from releasegate.notifications.models import NOTIFICATION_EVENTS, NotificationTarget
from releasegate.notifications.services import (
    notification_target_add,
    notification_target_remove,
    redacted_destination,
)
from releasegate.releases.management.project_objects import ProjectObjectsCommand


class Command(ProjectObjectsCommand):
    help = "Add, list or remove a project's notification targets (e-mail, webhook)."

    def add_options(self, add: ArgumentParser) -> None:
        add.add_argument("--kind", required=True, choices=NotificationTarget.Kind.values)
        add.add_argument("--url", default="")
        add.add_argument("--address", default="")
        add.add_argument("--events", required=True, help=", ".join(NOTIFICATION_EVENTS))

    def _add(self, options: dict[str, Any]) -> None:
        actor = self._actor(options)
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
        target = found.filter(pk=options["id"]).first()
        if target is None:
            raise InvalidInput("No such target.", errors=[FieldError("id", "unknown target")])
        actor = self._actor(options)
        notification_target_remove(target=target, actor=actor)
        self.stdout.write(f"removed target {target.pk}")
