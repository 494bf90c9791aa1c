"""Who holds which role: reads of the role permissions (accounts.roles) on projects."""

from typing import TYPE_CHECKING

from django.contrib.contenttypes.models import ContentType
from guardian.models import UserObjectPermission

from releasegate.accounts.roles import ROLE_PERMISSION_PREFIX, Role, permission_codename
from releasegate.releases.models import Project

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def roles_for(user: "User | AnonymousUser | None", project: "Project") -> frozenset[Role]:
    """The roles a user holds on one project, in one query."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    codenames = UserObjectPermission.objects.filter(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(project),
        object_pk=str(project.pk),
        permission__codename__startswith=ROLE_PERMISSION_PREFIX,
    ).values_list("permission__codename", flat=True)
    return frozenset(Role(name.removeprefix(ROLE_PERMISSION_PREFIX)) for name in codenames)


def project_ids_with_role(user: "User | AnonymousUser | None") -> "list[int]":
    """Ids of every project on which the user holds any role (one query)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    return [
        int(pk)
        for pk in UserObjectPermission.objects.filter(
            user_id=user.pk,
            content_type=ContentType.objects.get_for_model(Project),
            permission__codename__startswith=ROLE_PERMISSION_PREFIX,
        )
        .values_list("object_pk", flat=True)
        .distinct()
    ]


def holder_ids(
    project: "Project", roles: "set[Role] | frozenset[Role]", *, active_only: bool = True
) -> "list[int]":
    """Ids of the people holding any of `roles` on the project (one query); with
    `active_only=False`, deactivated accounts that still hold one too."""
    rows = UserObjectPermission.objects.filter(
        content_type=ContentType.objects.get_for_model(project),
        object_pk=str(project.pk),
        permission__codename__in=[permission_codename(r) for r in roles],
    )
    if active_only:
        rows = rows.filter(user__is_active=True)
    return sorted(set(rows.values_list("user_id", flat=True)))


def roles_by_project(user_id: int) -> "dict[int, list[Role]]":
    """Project id -> the roles the account holds there, whether or not it is active (one query)."""
    held: dict[int, list[Role]] = {}
    for pk, codename in UserObjectPermission.objects.filter(
        user_id=user_id,
        content_type=ContentType.objects.get_for_model(Project),
        permission__codename__startswith=ROLE_PERMISSION_PREFIX,
    ).values_list("object_pk", "permission__codename"):
        held.setdefault(int(pk), []).append(Role(codename.removeprefix(ROLE_PERMISSION_PREFIX)))
    return held
