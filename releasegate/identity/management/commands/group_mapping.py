"""Map IdP groups to a project's roles from the shell, acting as one of its admins.

manage.py group_mapping add --project P --as ADMIN --group G --role R
manage.py group_mapping list --project P
manage.py group_mapping remove --id N --as ADMIN
"""

from argparse import ArgumentParser
from typing import Any

from releasegate.accounts.roles import Role
from releasegate.errors import FieldError, InvalidInput
from releasegate.identity.models import GroupMapping
from releasegate.identity.selectors import group_mappings_of
from releasegate.identity.services import group_mapping_add, group_mapping_remove
from releasegate.releases.management.project_objects import ProjectObjectsCommand


class Command(ProjectObjectsCommand):
    help = "Add, list or remove a project's IdP group to role mappings (single sign-on)."

    def add_options(self, add: ArgumentParser) -> None:
        add.add_argument("--group", required=True)
        add.add_argument("--role", required=True, choices=[r.value for r in Role])

    def _add(self, options: dict[str, Any]) -> None:
        mapping = group_mapping_add(
            project=self._project(options["project"]),
            actor=self._actor(options),
            group=options["group"],
            role=options["role"],
        )
        self.stdout.write(f"added group mapping {mapping.pk}: {mapping.group} -> {mapping.role}")

    def _list(self, options: dict[str, Any]) -> None:
        for mapping in group_mappings_of(self._project(options["project"])):
            by = mapping.created_by.get_username()
            self.stdout.write(f"{mapping.pk}\t{mapping.group}\t{mapping.role}\t{by}")

    def _remove(self, options: dict[str, Any]) -> None:
        mapping = GroupMapping.objects.select_related("project").filter(pk=options["id"])
        found = mapping.first()
        if found is None:
            raise InvalidInput("No such mapping.", errors=[FieldError("id", "unknown mapping")])
        group_mapping_remove(mapping=found, actor=self._actor(options))
        self.stdout.write(f"removed group mapping {options['id']}")
