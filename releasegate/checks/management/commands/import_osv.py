"""`manage.py import_osv PATH`: import OSV advisories offline from a folder or a zip of OSV JSON."""

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releasegate.checks.advisories import advisories_import


class Command(BaseCommand):
    help = "Import OSV advisories (a folder or a zip of OSV JSON documents); safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="a folder (searched recursively) or a .zip")

    def handle(self, *args: Any, path: Path, **options: Any) -> None:
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        started = time.monotonic()
        try:
            report = advisories_import(path=path)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for problem in report.skipped:
            self.stderr.write(f"skipped {problem}")
        self.stdout.write(
            f"read {report.read} documents: {report.created} new, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.skipped)} skipped "
            f"in {time.monotonic() - started:.1f}s"
        )
