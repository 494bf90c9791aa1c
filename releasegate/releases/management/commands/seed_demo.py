from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasegate.releases.demo import DEMO_PEOPLE, demo_password, reset_demo, seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo projects, people and releases (refused when DEBUG is off); "
        "--reset empties the database first and rebuilds the story."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="delete everything in the database, then seed the demo again",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo is refused when DEBUG is off: demo logins are public.")
        if options["reset"]:
            reset_demo()
        else:
            seed_demo()
        self.stdout.write("Demo projects: support-assistant, claims-triage")
        self.stdout.write("Logins (username / password):")
        for person in DEMO_PEOPLE:
            self.stdout.write(
                f"  {person.username:<7} / {demo_password(person.username):<28} {person.what}"
            )
