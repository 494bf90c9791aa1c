"""Map IdP groups to a project's roles from the shell, acting as one of its admins.

manage.py group_mapping add --project P --as ADMIN --group G --role R
manage.py group_mapping list --project P
manage.py group_mapping remove --id N --as ADMIN

A mapping of a guarded role (or its removal) waits for a holder of the role to confirm it, as
on the pages: the command then prints the governance request it made.
"""

from argparse import ArgumentParser
from typing import Any

from releasegate.accounts.roles import Role
from releasegate.errors import FieldError, InvalidInput
from releasegate.identity.models import GroupMapping
from releasegate.identity.selectors import group_mapping_requests_of, group_mappings_of
from releasegate.identity.services import group_mapping_add, group_mapping_remove
from releasegate.releases.management.project_objects import ProjectObjectsCommand
from releasegate.releases.models import GovernanceChange


class Command(ProjectObjectsCommand):
    help = "Add, list or remove a project's IdP group to role mappings (single sign-on)."

    def add_options(self, add: ArgumentParser) -> None:
        add.add_argument("--group", required=True)
        add.add_argument("--role", required=True, choices=[r.value for r in Role])

    def _waits(self, change: GovernanceChange) -> None:
        self.stdout.write(
            f"request {change.pk} waits for a {change.role} holder other than "
            f"{change.requested_by.get_username()} to confirm it (the project page, or "
            f"POST /api/v1/projects/{change.project.slug}/governance-requests/{change.pk}/confirm)"
        )

    def _add(self, options: dict[str, Any]) -> None:
        made = group_mapping_add(
            project=self._project(options["project"]),
            actor=self._actor(options),
            group=options["group"],
            role=options["role"],
        )
        if isinstance(made, GovernanceChange):
            self._waits(made)
            return
        self.stdout.write(f"added group mapping {made.pk}: {made.group} -> {made.role}")

    def _list(self, options: dict[str, Any]) -> None:
        project = self._project(options["project"])
        for mapping in group_mappings_of(project):
            by = mapping.created_by.get_username()
            confirmed = mapping.confirmed_by.get_username() if mapping.confirmed_by else "-"
            self.stdout.write(f"{mapping.pk}\t{mapping.group}\t{mapping.role}\t{by}\t{confirmed}")
        for change in group_mapping_requests_of(project):
            act = "add" if change.kind == GovernanceChange.Kind.GROUP_MAPPING_ADD else "remove"
            self.stdout.write(
                f"pending request {change.pk}\t{act}\t{change.group}\t{change.role}\t"
                f"{change.requested_by.get_username()}"
            )

    def _remove(self, options: dict[str, Any]) -> None:
        mapping = GroupMapping.objects.select_related("project").filter(pk=options["id"])
        found = mapping.first()
        if found is None:
            raise InvalidInput("No such mapping.", errors=[FieldError("id", "unknown mapping")])
        pending = group_mapping_remove(mapping=found, actor=self._actor(options))
        if pending is not None:
            self._waits(pending)
            return
        self.stdout.write(f"removed group mapping {options['id']}")
