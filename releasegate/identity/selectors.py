"""Reads of the identity area, each in a fixed number of queries."""

from dataclasses import dataclass

from django.db.models import QuerySet

from releasegate.api.base import MAX_ID
from releasegate.identity.models import GroupMapping, IdpRoleGrant, TrustPolicy
from releasegate.releases.models import GovernanceChange, Project
from releasegate.web.selectors import role_holders


def trust_policies_of(project: Project) -> QuerySet[TrustPolicy]:
    """The project's policies in force, oldest first (one query)."""
    return TrustPolicy.objects.filter(project=project, removed_at__isnull=True).select_related(
        "created_by"
    )


def trust_policy_for(project: Project, policy_id: int) -> TrustPolicy | None:
    if policy_id > MAX_ID:
        return None
    return (
        TrustPolicy.objects.select_related("project")
        .filter(project=project, pk=policy_id, removed_at__isnull=True)
        .first()
    )


def group_mappings_of(project: Project) -> QuerySet[GroupMapping]:
    """The project's mappings in force (one query)."""
    return GroupMapping.objects.filter(project=project).select_related("created_by", "confirmed_by")


def group_mapping_for(project: Project, mapping_id: int) -> GroupMapping | None:
    if mapping_id > MAX_ID:
        return None
    found = GroupMapping.objects.select_related("project", "created_by", "confirmed_by")
    return found.filter(project=project, pk=mapping_id).first()


def group_mapping_requests_of(project: Project) -> QuerySet[GovernanceChange]:
    """Group mapping changes waiting for a holder's confirmation, oldest first (one query)."""
    return (
        GovernanceChange.objects.filter(
            project=project,
            status=GovernanceChange.Status.PENDING,
            kind__in=[
                GovernanceChange.Kind.GROUP_MAPPING_ADD,
                GovernanceChange.Kind.GROUP_MAPPING_REMOVE,
            ],
        )
        .select_related("requested_by")
        .order_by("requested_at", "id")
    )


@dataclass(frozen=True)
class RoleSource:
    username: str
    role: str
    group: str  # "" when granted by hand


def roles_by_source(project: Project) -> tuple[list[RoleSource], list[RoleSource]]:
    """Who holds which role on the project, split into roles granted by hand and roles that came
    from the IdP (with the group), in two queries."""
    from_idp = {
        (g.user.get_username(), g.role): g.group
        for g in IdpRoleGrant.objects.filter(project=project).select_related("user")
    }
    by_hand: list[RoleSource] = []
    idp: list[RoleSource] = []
    for holder in role_holders(project):
        for role in holder.roles:
            group = from_idp.get((holder.username, role))
            if group is None:
                by_hand.append(RoleSource(holder.username, role, ""))
            else:
                idp.append(RoleSource(holder.username, role, group))
    return by_hand, idp


@dataclass(frozen=True)
class HeldRole:
    role: str
    group: str  # "" when granted by hand


@dataclass(frozen=True)
class HolderRoles:
    username: str
    roles: list[HeldRole]


def holders_with_sources(project: Project) -> list[HolderRoles]:
    """Who holds which role on the project, each role with the IdP group it came from ("" when
    granted by hand), for the project page (two queries)."""
    from_idp = {
        (user_id, role): group
        for user_id, role, group in IdpRoleGrant.objects.filter(project=project).values_list(
            "user_id", "role", "group"
        )
    }
    return [
        HolderRoles(
            holder.username,
            [HeldRole(role, from_idp.get((holder.user_id, role), "")) for role in holder.roles],
        )
        for holder in role_holders(project)
    ]
