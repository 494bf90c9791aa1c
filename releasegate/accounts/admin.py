from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.accounts.tokens import token_revoke
from releasegate.readonly_admin import ReadOnlyAdmin


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are issued with `create_token` (the secret is shown once); here they are seen and
    revoked, never edited."""

    list_display = (
        "name",
        "kind",
        "key_id",
        "user",
        "project",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_filter = ("kind", "project")
    search_fields = ("name", "key_id", "user__username", "project__slug")
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        # The site administrator may always take a token away (a leak is an emergency);
        # revoking only removes access, so it opens no path around the gate.
        for token in queryset:
            token_revoke(token=token, actor=Actor.system_actor())
        messages.success(request, f"Revoked {queryset.count()} token(s).")
