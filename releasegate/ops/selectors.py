"""Reads for notifications."""

from datetime import datetime

from django.db.models import Q, QuerySet

from releasegate.ops.models import Delivery


def stale_pending_deliveries(*, older_than: datetime) -> QuerySet[Delivery]:
    """Pending deliveries last tried (or, never tried, created) before `older_than`."""
    return Delivery.objects.filter(
        Q(last_attempt_at__lt=older_than)
        | Q(last_attempt_at__isnull=True, created_at__lt=older_than),
        status=Delivery.Status.PENDING,
    ).order_by("created_at")[:500]
