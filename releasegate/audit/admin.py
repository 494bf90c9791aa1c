"""The audit trail in the Django admin: read-only, like the table itself (a trigger refuses
UPDATE and DELETE on PostgreSQL)."""

from django.contrib import admin
from django.http import HttpRequest

from releasegate.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ("chain", "seq", "created_at", "action", "actor", "project_id", "release_id")
    list_select_related = ("chain",)
    list_filter = ("action", "chain")
    search_fields = ("action", "actor")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
