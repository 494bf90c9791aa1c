"""Reads for notifications."""

from datetime import datetime

from django.db.models import Q, QuerySet

from releasegate.notifications.models import Delivery, Notice


def stale_pending_deliveries(*, older_than: datetime) -> QuerySet[Delivery]:
    """Pending deliveries last tried (or, never tried, created) before `older_than`."""
    return Delivery.objects.filter(
        Q(last_attempt_at__lt=older_than)
        | Q(last_attempt_at__isnull=True, created_at__lt=older_than),
        status=Delivery.Status.PENDING,
    ).order_by("created_at")[:500]


def unprocessed_notices(*, older_than: datetime) -> QuerySet[Notice, int]:
    """Ids of outbox notices not yet expanded, created before `older_than`, oldest first."""
    return (
        Notice.objects.filter(processed_at__isnull=True, created_at__lt=older_than)
        .order_by("created_at")
        .values_list("pk", flat=True)[:500]
    )
