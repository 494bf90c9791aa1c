from django.contrib import admin

from releasegate.checks.models import Advisory, CheckResult, Waiver
from releasegate.readonly_admin import ReadOnlyAdmin


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdmin[CheckResult]):
    list_display = ("release", "check_name", "status", "source", "updated_at", "summary")
    list_filter = ("status", "check_name", "source")
    search_fields = ("release__version", "external_id")
    list_select_related = ("release__project",)


@admin.register(Advisory)
class AdvisoryAdmin(ReadOnlyAdmin[Advisory]):
    list_display = ("osv_id", "severity", "summary", "modified", "imported_at")
    list_filter = ("severity",)
    search_fields = ("osv_id", "summary")


@admin.register(Waiver)
class WaiverAdmin(ReadOnlyAdmin[Waiver]):
    """Waivers are granted and revoked by security holders through the API (audited), not here."""

    list_display = ("advisory_id", "project", "expires_at", "revoked_at", "created_by")
    list_filter = ("project",)
    search_fields = ("advisory_id", "reason")
    list_select_related = ("project", "created_by")
