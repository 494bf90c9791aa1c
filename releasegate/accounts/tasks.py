"""E-mail to persons (see accounts.notify)."""

import smtplib

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage


@shared_task(
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=8,
)
def tell_people(user_ids: list[int], subject: str, body: str) -> int:
    """Send `subject`/`body` to each active person with an e-mail address; how many were sent."""
    addresses = sorted(
        {
            email
            for email in get_user_model()
            .objects.filter(pk__in=user_ids, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        }
    )
    if addresses:
        # One message, blind copies: a retry after a failure never sends anyone a second copy
        # of what the first attempt delivered, and recipients do not see each other.
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, bcc=addresses).send()
    return len(addresses)
