"""Telling people directly (by e-mail), for acts that concern a project's guards rather than one
release: a governance change waiting on them, a change to a role holder's account in the admin.

Project notification targets are about releases; these go to the persons who must act or watch.
"""

import logging
from collections.abc import Iterable

from django.db import transaction

logger = logging.getLogger(__name__)


def people_tell(*, user_ids: Iterable[int], subject: str, body: str) -> None:
    """After commit, enqueue one e-mail to each of these people who has an address."""
    ids = sorted(set(user_ids))
    if not ids:
        return

    def enqueue() -> None:
        from releasegate.notifications.tasks import tell_people

        try:
            tell_people.delay(ids, subject, body)
        except Exception:
            # The act is committed already; a broker outage loses the message, not the act
            # (the audit trail has it).
            logger.exception("could not enqueue a message to people", extra={"users": ids})

    transaction.on_commit(enqueue)
