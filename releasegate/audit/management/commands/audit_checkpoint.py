from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from releasegate.audit.checkpoint import create_checkpoint
from releasegate.audit.tasks import write_atomically
from releasegate.signing.keys import SigningKeyError


class Command(BaseCommand):
    help = (
        "Print (or write to FILE) a checkpoint of the audit trail signed with the service key; "
        "keep it outside the database and check it later with verify_audit --checkpoint FILE."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("-o", "--output", metavar="FILE", help="write it here instead")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoint = create_checkpoint(now=timezone.now())
        except SigningKeyError as exc:
            raise CommandError(str(exc)) from None
        if options["output"]:
            try:
                write_atomically(Path(options["output"]), checkpoint)
            except OSError as exc:
                raise CommandError(f"cannot write {options['output']}: {exc.strerror}") from None
            self.stdout.write(f"checkpoint written to {options['output']}")
        else:
            self.stdout.write(checkpoint, ending="")
