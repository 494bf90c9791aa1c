"""Checks start as soon as there is something to check: on submission, when evidence of a
release in review changes, and when a policy change alters what its checks read (the signal is
sent after commit)."""

from typing import Any

from django.dispatch import receiver

from releasegate.checks.selectors import checks_due
from releasegate.checks.tasks import enqueue_checks
from releasegate.releases.signals import release_event


@receiver(release_event, dispatch_uid="releasegate.checks.enqueue_on_release_event")
def enqueue_on_release_event(sender: Any, event: str, release_id: int | None, **extra: Any) -> None:
    if event in {"evidence_attached", "review_requested"} and release_id is not None:
        # Only releases in review are due; a draft's evidence is checked once it is submitted.
        enqueue_checks(checks_due(release_ids=[release_id]))


@receiver(release_event, dispatch_uid="releasegate.checks.enqueue_on_policy_change")
def enqueue_on_policy_change(
    sender: Any, event: str, project_id: int | None = None, **extra: Any
) -> None:
    if event == "policy_changed" and project_id is not None:
        # Results computed under the old deny-list, threshold or CI settings no longer count.
        enqueue_checks(checks_due(project_id=project_id))
