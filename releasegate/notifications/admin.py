from django.contrib import admin

from releasegate.notifications.models import Delivery, NotificationTarget
from releasegate.readonly_admin import ReadOnlyAdmin


@admin.register(NotificationTarget)
class NotificationTargetAdmin(ReadOnlyAdmin):
    """Read-only: targets are added and removed through the audited services, and the webhook
    secret is never shown after creation."""

    list_display = ("id", "project", "kind", "destination", "events", "created_at", "removed_at")
    list_filter = ("kind", "project")
    fields = (
        "project",
        "kind",
        "url",
        "address",
        "events",
        "created_by",
        "created_at",
        "removed_at",
    )
    readonly_fields = fields


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "event",
        "release",
        "target",
        "status",
        "attempts",
        "response_code",
        "created_at",
    )
    list_filter = ("status", "event")
    readonly_fields = (
        "target",
        "event",
        "release",
        "dedupe_key",
        "payload",
        "status",
        "attempts",
        "last_error",
        "response_code",
        "created_at",
        "last_attempt_at",
        "delivered_at",
    )
    list_select_related = ("target", "release", "release__project")
