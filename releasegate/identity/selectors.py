"""Reads of the identity area, each in a fixed number of queries."""

from dataclasses import dataclass

from django.db.models import QuerySet

from releasegate.identity.models import GroupMapping, IdpRoleGrant, TrustPolicy
from releasegate.releases.identifiers import MAX_ID
from releasegate.releases.models import Project
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
    return GroupMapping.objects.filter(project=project).select_related("created_by")


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
