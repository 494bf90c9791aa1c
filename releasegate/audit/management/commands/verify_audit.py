from typing import Any

from django.core.management.base import BaseCommand, CommandError

from releasegate.audit.verify import verify_chain


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chain; exit non-zero naming the first bad event."

    def handle(self, *args: Any, **options: Any) -> None:
        checked, problem = verify_chain()
        if problem is not None:
            raise CommandError(f"audit trail broken at event #{problem.seq}: {problem.message}")
        self.stdout.write(f"audit trail intact: {checked} events verified")
