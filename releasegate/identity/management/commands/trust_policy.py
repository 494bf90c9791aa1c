"""Manage a project's CI trust policies from the shell, acting as one of its admins.

  manage.py trust_policy add --project P --as ADMIN --issuer URL --audience A \
      --claim K=V [--claim K=V ...] --scopes a,b [--lifetime 10m]
  manage.py trust_policy list --project P
  manage.py trust_policy remove --id N --as ADMIN
"""

import json
from argparse import ArgumentParser
from typing import Any

from releasegate.errors import FieldError, InvalidInput
from releasegate.identity.models import TrustPolicy
from releasegate.identity.selectors import trust_policies_of
from releasegate.identity.services import parse_lifetime, trust_policy_add, trust_policy_remove
from releasegate.releases.management.project_objects import ProjectObjectsCommand


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


class Command(ProjectObjectsCommand):
    help = "Add, list or remove a project's OIDC trust policies (CI without stored secrets)."

    def add_options(self, add: ArgumentParser) -> None:
        add.add_argument("--issuer", required=True)
        add.add_argument("--audience", required=True)
        add.add_argument("--claim", action="append", default=[], help="NAME=VALUE, exact")
        add.add_argument("--scopes", required=True, help="comma-separated")
        add.add_argument("--lifetime", default="10m", help="5m to 15m (default 10m)")

    def _add(self, options: dict[str, Any]) -> None:
        policy = trust_policy_add(
            project=self._project(options["project"]),
            actor=self._actor(options),
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
            .filter(pk=options["id"], removed_at__isnull=True)
            .first()
        )
        if policy is None:
            raise InvalidInput("No such policy.", errors=[FieldError("id", "unknown policy")])
        trust_policy_remove(policy=policy, actor=self._actor(options))
        self.stdout.write(f"removed trust policy {policy.pk}")
