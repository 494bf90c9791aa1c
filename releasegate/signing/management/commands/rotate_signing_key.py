from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasegate.signing.services import signing_key_rotate


class Command(BaseCommand):
    help = (
        "Make a new signing key (or take one from --from-file) and retire the old one; its public "
        "key stays listed so earlier signatures still verify. Prints the new key id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from-file",
            type=Path,
            help="a PEM ECDSA P-256 private key made elsewhere, instead of generating one",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from releasegate.signing.keys import SigningKeyError

        try:
            keyid = signing_key_rotate(source=options.get("from_file"))
        except SigningKeyError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot write the new key: {exc.strerror}") from None
        self.stdout.write(keyid)
