"""Manage a project's CI trust policies from the shell, acting as one of its admins.

  manage.py trust_policy add --project P --as ADMIN --issuer URL --audience A \
      --claim K=V [--claim K=V ...] --scopes a,b [--lifetime 10m]
  manage.py trust_policy list --project P
  manage.py trust_policy remove --id N --as ADMIN
"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasegate.accounts.actors import Actor
from releasegate.errors import FieldError, InvalidInput, ReleasegateError
from releasegate.identity.models import TrustPolicy
from releasegate.identity.selectors import trust_policies_of
from releasegate.identity.services import parse_lifetime, trust_policy_add, trust_policy_remove
from releasegate.releases.models import Project
from releasegate.releases.services import user_by_username


def _claims(pairs: list[str]) -> dict[str, str]:
    claims: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidInput(
                "Invalid claim.", errors=[FieldError("claim", f"{pair!r} is not NAME=VALUE")]
            )
        if name in claims:
            raise InvalidInput("Invalid claim.", errors=[FieldError("claim", f"{name} twice")])
        claims[name] = value
    return claims


class Command(BaseCommand):
    help = "Add, list or remove a project's OIDC trust policies (CI without stored secrets)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add")
        add.add_argument("--project", required=True)
        add.add_argument("--as", dest="username", required=True)
        add.add_argument("--issuer", required=True)
        add.add_argument("--audience", required=True)
        add.add_argument("--claim", action="append", default=[], help="NAME=VALUE, exact")
        add.add_argument("--scopes", required=True, help="comma-separated")
        add.add_argument("--lifetime", default="10m", help="5m to 15m (default 10m)")
        listing = sub.add_parser("list")
        listing.add_argument("--project", required=True)
        remove = sub.add_parser("remove")
        remove.add_argument("--id", dest="policy_id", type=int, required=True)
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
        policy = trust_policy_add(
            project=self._project(options["project"]),
            actor=Actor.for_user(user_by_username(options["username"])),
            issuer=options["issuer"],
            audience=options["audience"],
            claims=_claims(options["claim"]),
            scopes=[s.strip() for s in options["scopes"].split(",") if s.strip()],
            lifetime=parse_lifetime(options["lifetime"]),
        )
        self.stdout.write(f"added trust policy {policy.pk}")

    def _list(self, options: dict[str, Any]) -> None:
        for policy in trust_policies_of(self._project(options["project"])):
            claims = json.dumps(policy.claims, sort_keys=True)
            self.stdout.write(
                f"{policy.pk}\t{policy.issuer}\t{policy.audience}\t{claims}\t"
                f"{','.join(policy.scopes)}\t{policy.lifetime_seconds // 60}m"
            )

    def _remove(self, options: dict[str, Any]) -> None:
        policy = (
            TrustPolicy.objects.select_related("project")
            .filter(pk=options["policy_id"], removed_at__isnull=True)
            .first()
        )
        if policy is None:
            raise InvalidInput("No such policy.", errors=[FieldError("id", "unknown policy")])
        trust_policy_remove(
            policy=policy, actor=Actor.for_user(user_by_username(options["username"]))
        )
        self.stdout.write(f"removed trust policy {policy.pk}")
