"""Telling people directly (by e-mail), for acts that concern a project's guards rather than one
release: a governance change waiting on them, a change to a role holder's account in the admin, a
hold or break-glass (PRODUCT.md: "the holders of the project's roles are told"; "every role
holder of the project is told").

Project notification targets are about releases; these go to the persons who must act or watch.
"""

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import holder_ids
from releasegate.notifications.incidents import HEADLINES
from releasegate.notifications.tasks import tell_people
from releasegate.releases.models import Project, Release

logger = logging.getLogger(__name__)


def people_tell(*, user_ids: Iterable[int], subject: str, body: str) -> None:
    """After commit, enqueue one e-mail to each of these people who has an address."""
    ids = sorted(set(user_ids))
    if not ids:
        return

    def enqueue() -> None:
        try:
            tell_people.delay(ids, subject, body)
        except Exception:
            # The act is committed already; a broker outage loses the message, not the act
            # (the audit trail has it).
            logger.exception("could not enqueue a message to people", extra={"users": ids})

    transaction.on_commit(enqueue)


def holders_tell(*, project: Project, release: Release, event: str, text: str) -> None:
    """After commit, e-mail everyone holding a role on the project about a hold or break-glass
    step. Notification targets are told through the outbox as well; a person is told directly,
    so that nobody who guards the project learns of a bypass only from a channel they may not
    watch."""
    people_tell(
        user_ids=holder_ids(project, set(Role)),
        subject=(
            f"[releasegate] {project.slug} {release.version} ({release.environment}): "
            f"{HEADLINES[event]}"
        ),
        body=(
            f"{project.slug} {release.version} ({release.environment}): {text}\n\n"
            f"{settings.RELEASEGATE_BASE_URL}/releases/{release.pk}/"
        ),
    )
