"""Issue an API token. Prints details, then the token alone on its last line (shown only once)."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasegate.accounts.actors import Actor, Scope
from releasegate.accounts.tokens import DEFAULT_EXPIRY, token_create
from releasegate.cli import parse_duration
from releasegate.errors import ReleasegateError
from releasegate.releases.models import Project


class Command(BaseCommand):
    help = (
        "Create a personal token (--user U) or a service token bound to one project "
        "(--project P --scopes gate:read,checks:write). The token is printed once, last."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        kind = parser.add_mutually_exclusive_group(required=True)
        kind.add_argument("--user", help="personal token: the user it acts as")
        kind.add_argument("--project", help="service token: the project's slug")
        parser.add_argument("--scopes", default="", help="service token: comma-separated scopes")
        parser.add_argument(
            "--owner",
            help="service token: the person releases created through it are requested by "
            "(they can then never approve them)",
        )
        parser.add_argument("--name", default="", help="what the token is for")
        parser.add_argument("--expires-in", default="90d", help="e.g. 30d, 12h (default 90d)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            expires_in = (
                parse_duration(options["expires_in"]) if options["expires_in"] else DEFAULT_EXPIRY
            )
        except ValueError as error:
            raise CommandError(str(error)) from None
        User = get_user_model()
        try:
            if options["user"]:
                user = User.objects.filter(username=options["user"], is_active=True).first()
                if user is None:
                    raise CommandError(f"No active user {options['user']!r}.")
                token, raw = token_create(
                    actor=Actor.system_actor(),
                    kind="personal",
                    name=options["name"] or f"{user.get_username()} personal token",
                    user=user,
                    expires_in=expires_in,
                )
            else:
                project = Project.objects.filter(slug=options["project"]).first()
                if project is None:
                    raise CommandError(f"No project {options['project']!r}.")
                scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
                if Scope.RELEASES_WRITE in scopes and not options["owner"]:
                    # Issued by the system, such a token has no person to request its releases
                    # in the name of: every create would be refused.
                    raise CommandError(
                        f"--scopes {Scope.RELEASES_WRITE} needs --owner USER: the person its "
                        "releases are requested by (who can then never approve them)."
                    )
                owner = None
                if options["owner"]:
                    owner = User.objects.filter(username=options["owner"], is_active=True).first()
                    if owner is None:
                        raise CommandError(f"No active user {options['owner']!r}.")
                token, raw = token_create(
                    actor=Actor.system_actor(),
                    kind="service",
                    name=options["name"] or f"{project.slug} service token",
                    project=project,
                    scopes=scopes,
                    expires_in=expires_in,
                    owner=owner,
                )
        except ReleasegateError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"{token.kind} token {token.name!r} (key id {token.key_id})")
        if token.scopes:
            self.stdout.write(f"scopes: {', '.join(token.scopes)}")
        self.stdout.write(f"expires: {token.expires_at.isoformat()}")
        self.stdout.write("Store it now; it is not shown again:")
        self.stdout.write(raw)
