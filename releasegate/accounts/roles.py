"""Per-project roles, stored as django-guardian object permissions on the project.

Nobody holds a role globally; a superuser administers the site but holds no role by being one.
"""

from enum import StrEnum
from typing import TYPE_CHECKING

from django.contrib.contenttypes.models import ContentType
from guardian.models import UserObjectPermission

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    from releasegate.releases.models import Project


class Role(StrEnum):
    REQUESTER = "requester"
    SECURITY = "security"
    SME = "sme"
    ADMIN = "admin"
    AUDITOR = "auditor"


ROLE_PERMISSION_PREFIX = "role_"

# Roles whose holders may approve, veto and lift; which of them a project requires is its policy.
REVIEWER_ROLES = frozenset({Role.SECURITY, Role.SME})


def permission_codename(role: Role) -> str:
    return f"{ROLE_PERMISSION_PREFIX}{role.value}"


def role_permissions() -> list[tuple[str, str]]:
    return [(permission_codename(role), f"Holds the {role.value} role") for role in Role]


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
    from releasegate.releases.models import Project

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
    from releasegate.releases.models import Project

    held: dict[int, list[Role]] = {}
    for pk, codename in UserObjectPermission.objects.filter(
        user_id=user_id,
        content_type=ContentType.objects.get_for_model(Project),
        permission__codename__startswith=ROLE_PERMISSION_PREFIX,
    ).values_list("object_pk", "permission__codename"):
        held.setdefault(int(pk), []).append(Role(codename.removeprefix(ROLE_PERMISSION_PREFIX)))
    return held
