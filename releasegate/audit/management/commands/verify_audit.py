import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from releasegate.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    export_problems,
    extension_problems,
    read_checkpoint,
)
from releasegate.audit.verify import verify_trail


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read the {what} {path}: {exc}") from None


class Command(BaseCommand):
    help = (
        "Recompute every chain of the audit trail; exit non-zero naming the first bad event of "
        "each broken chain. With --checkpoint, also prove the log extends that signed checkpoint."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--checkpoint", metavar="FILE", help="a checkpoint written by audit_checkpoint"
        )
        parser.add_argument(
            "--export",
            metavar="FILE",
            help="instead of the database, check a release's exported trail (GET "
            "/api/v1/releases/<id>/audit) against the --checkpoint",
        )
        parser.add_argument(
            "--key",
            metavar="PEM",
            help="the public key to check the checkpoint's signature with (default: the keys "
            "releasegate has registered)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = None
        if options["checkpoint"]:
            pem = _read(options["key"], "key") if options["key"] else None
            try:
                checkpoint = read_checkpoint(
                    _read(options["checkpoint"], "checkpoint"), public_pem=pem
                )
            except CheckpointError as exc:
                raise CommandError(f"checkpoint refused: {exc}") from None
        elif options["key"] or options["export"]:
            raise CommandError("--key and --export need a --checkpoint")
        if checkpoint is not None and options["export"]:
            self._check_export(options["export"], checkpoint)
            return
        report = verify_trail()
        problems = [f"audit trail broken in {p}" for p in report.problems]
        if checkpoint is not None:
            problems += [
                f"the log does not extend the checkpoint: {p}"
                for p in extension_problems(checkpoint)
            ]
        if problems:
            raise CommandError("\n".join(problems))
        self.stdout.write(
            f"audit trail intact: {report.events} events verified in {report.chains} chains"
        )
        if checkpoint is not None:
            self.stdout.write(
                f"extends the checkpoint of {checkpoint.time.isoformat()} ({checkpoint.size} "
                f"events in {len(checkpoint.heads)} chains, key {checkpoint.keyid_hint}…)"
            )

    def _check_export(self, path: str, checkpoint: Checkpoint) -> None:
        try:
            document = json.loads(_read(path, "export"))
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path} is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise CommandError(f"{path} is not a release's audit export")
        covered, problems = export_problems(document, checkpoint)
        if problems:
            raise CommandError("the export does not match the checkpoint: " + "; ".join(problems))
        newer = len(document["events"]) - covered
        self.stdout.write(
            f"export matches the checkpoint: {covered} events verified"
            + (f", {newer} newer than the checkpoint" if newer else "")
        )
