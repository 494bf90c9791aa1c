"""Sign-in lockout: after MAX_FAILURES failed sign-ins for one username from one address within
WINDOW, further attempts (even with the right password) are refused for WINDOW after the last
failure. Refused attempts are not counted, so a locked-out pair unlocks on time."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from releasegate.web.models import SignInFailure

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
KEEP = timedelta(days=1)


def _key(username: str) -> str:
    return (username or "").strip().lower()[:150]


def signin_locked_until(*, username: str, ip: str | None) -> datetime | None:
    """When the lockout for this username and address ends, or None if there is none (1 query)."""
    now = timezone.now()
    recent = list(
        SignInFailure.objects.filter(username=_key(username), ip=ip, at__gt=now - 2 * WINDOW)
        .order_by("-at")
        .values_list("at", flat=True)[:MAX_FAILURES]
    )
    if len(recent) < MAX_FAILURES or recent[0] - recent[-1] > WINDOW:
        return None
    until = recent[0] + WINDOW
    return until if until > now else None


@transaction.atomic
def signin_failure_record(*, username: str, ip: str | None) -> None:
    now = timezone.now()
    SignInFailure.objects.filter(at__lt=now - KEEP).delete()
    SignInFailure.objects.create(username=_key(username), ip=ip, at=now)


def signin_failures_clear(*, username: str, ip: str | None) -> None:
    SignInFailure.objects.filter(username=_key(username), ip=ip).delete()
