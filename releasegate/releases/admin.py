"""The Django admin for the gate's domain: a window, never a path around the gate.

Every state change goes through a service with its rules and its audit event, so the admin shows
releases, evidence, sign-offs, vetoes, promotions and policies read-only. A project's display
name is the one thing it edits, and that too through its service.
"""

from typing import cast

from django.contrib import admin
from django.contrib.auth.models import User
from django.forms import ModelForm
from django.http import HttpRequest

from releasegate.accounts.actors import Actor, Capability
from releasegate.readonly_admin import ReadOnlyAdmin
from releasegate.releases.models import (
    Approval,
    Evidence,
    GatePolicy,
    Project,
    Promotion,
    Release,
    Veto,
)
from releasegate.releases.services import project_rename


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    list_display = ("slug", "name", "current_policy", "created_at")
    search_fields = ("slug", "name")
    fields = ("slug", "name", "current_policy", "created_at")
    readonly_fields = ("slug", "current_policy", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A project starts with its first policy version and audit event: project_create.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Project | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Project | None = None) -> bool:
        # Staff holding the model permission alone would reach project_rename and be refused
        # there with a server error: offer the form only to whom the service lets rename.
        if not super().has_change_permission(request, obj):
            return False
        user = cast(User, request.user)
        if obj is None or user.is_superuser:
            return True
        return Actor.for_user(user).can(obj, Capability.CHANGE_POLICY)

    def save_model(
        self, request: HttpRequest, obj: Project, form: "ModelForm[Project]", change: bool
    ) -> None:
        project_rename(
            project=Project.objects.get(pk=obj.pk),
            # The admin site lets only signed-in staff this far.
            actor=Actor.for_user(cast(User, request.user)),
            name=obj.name,
        )


@admin.register(GatePolicy)
class GatePolicyAdmin(ReadOnlyAdmin[GatePolicy]):
    list_display = ("project", "version", "max_approval_age_days", "created_by", "created_at")
    list_filter = ("project",)
    list_select_related = ("project", "created_by")


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin[Release]):
    list_display = ("project", "version", "environment", "state", "requester", "created_at")
    list_filter = ("state", "environment", "project")
    search_fields = ("version", "artifact_digest")
    list_select_related = ("project", "requester")


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin[Evidence]):
    list_display = ("release", "kind", "is_current", "attached_by_label", "attached_at")
    list_filter = ("kind", "is_current")
    list_select_related = ("release__project",)


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin[Approval]):
    list_display = ("release", "role", "user", "created_at")
    list_filter = ("role",)
    list_select_related = ("release__project", "user")


@admin.register(Veto)
class VetoAdmin(ReadOnlyAdmin[Veto]):
    list_display = ("release", "role", "user", "scope", "created_at", "lifted_at")
    list_filter = ("role", "scope")
    list_select_related = ("release__project", "user")


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin[Promotion]):
    list_display = ("release", "promoted_by_label", "promoted_at", "policy_version")
    list_select_related = ("release__project",)
