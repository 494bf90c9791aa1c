from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from releasegate.releases.demo import DEMO_PEOPLE, DEMO_PROJECT, demo_password, seed_demo


class Command(BaseCommand):
    help = "Create the demo project support-assistant and its people (refused when DEBUG is off)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo is refused when DEBUG is off: demo logins are public.")
        seed_demo()
        self.stdout.write(f"Demo project: {DEMO_PROJECT}")
        self.stdout.write("Logins (username / password):")
        for person in DEMO_PEOPLE:
            self.stdout.write(
                f"  {person.username:<7} / {demo_password(person.username):<28} {person.what}"
            )
