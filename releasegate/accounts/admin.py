"""Accounts in the Django admin: tokens (seen and revoked, never edited) and users, whose every
change is audited and told to the security holders concerned (accounts.users), so the site
administrator's tools are no side door around the gate's roles."""

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.accounts.selectors import roles_by_project
from releasegate.accounts.tokens import token_revoke
from releasegate.accounts.users import user_change_record
from releasegate.readonly_admin import ReadOnlyAdmin
from releasegate.releases.permissions import may_set_password_of


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


def _actor(request: HttpRequest) -> Actor:
    # The admin site lets only signed-in staff this far.
    return Actor.for_user(cast(User, request.user))


def _shown(user: User, name: str) -> Any:
    """A changed field as the audit trail keeps it: names for groups and permissions."""
    if name == "groups":
        return sorted(user.groups.values_list("name", flat=True))
    if name == "user_permissions":
        return sorted(
            f"{app}.{codename}"
            for app, codename in user.user_permissions.values_list(
                "content_type__app_label", "codename"
            )
        )
    value = getattr(user, name)
    return value.isoformat() if hasattr(value, "isoformat") else value


admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):
    def save_related(
        self, request: HttpRequest, form: "ModelForm[User]", formsets: Any, change: bool
    ) -> None:
        # After the many-to-many fields are saved, so groups and permissions are the new ones.
        super().save_related(request, form, formsets, change)
        user = form.instance
        # The add form's password fields are never recorded, only that one was set.
        names = [
            n
            for n in form.changed_data
            if n not in {"password", "password1", "password2", "usable_password"}
        ]
        changes = {name: _shown(user, name) for name in names}
        if not change:
            changes["password_set"] = user.has_usable_password()
        if changes or not change:
            user_change_record(
                user=user,
                actor=_actor(request),
                changes=changes,
                action="user_changed" if change else "user_created",
            )

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        user = self.get_object(request, id)
        if user is not None and not may_set_password_of(_actor(request), user):
            messages.error(
                request,
                f"{user.get_username()} holds a role on a project: the site administrator may not "
                "set their password. They change it themselves, or reset it through the sign-in "
                "provider.",
            )
            return HttpResponseRedirect(reverse("admin:auth_user_change", args=[user.pk]))
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and isinstance(response, HttpResponseRedirect) and user:
            user.refresh_from_db()
            if response.url == reverse("admin:auth_user_change", args=[user.pk]):
                user_change_record(
                    user=user,
                    actor=_actor(request),
                    changes={"password_set": user.has_usable_password()},
                )
        return response

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # Deleting an account would drop its roles with no revocation to confirm.
        if obj is not None and roles_by_project(obj.pk):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        user_change_record(
            user=obj, actor=_actor(request), changes={"deleted": True}, action="user_deleted"
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            if roles_by_project(user.pk):
                # The bulk action checks permission per model, not per object.
                messages.error(request, f"{user.get_username()} holds a role and was not deleted.")
                continue
            user_change_record(
                user=user, actor=_actor(request), changes={"deleted": True}, action="user_deleted"
            )
            user.delete()
