import os
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from releasegate.audit.checkpoint import create_checkpoint


def write_atomically(path: Path, content: str) -> None:
    """Whole or not at all: a reader never sees half a checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


@shared_task
def publish_checkpoint() -> str:
    """Write a signed checkpoint into RELEASEGATE_CHECKPOINT_DIR, named for its time (UTC), so
    the folder keeps every one published. Run by the scheduler; returns the file's path."""
    folder = Path(settings.RELEASEGATE_CHECKPOINT_DIR)
    now = timezone.now()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint-{now.strftime('%Y%m%dT%H%M%S%fZ')}.txt"
    write_atomically(path, create_checkpoint(now=now))
    return str(path)
