"""Who may do what in the identity area: each "may X" decided once, asked by services (which
refuse) and by pages and the API (which offer)."""

from django.contrib.auth.models import User

from releasegate.accounts.actors import Actor, Capability
from releasegate.accounts.roles import Role
from releasegate.errors import NotPermitted
from releasegate.identity.models import GroupMapping
from releasegate.releases.models import Project


def can_manage_trust(actor: Actor, project: Project) -> bool:
    """A project admin, in person: a token (even a personal one) never sets who may mint tokens."""
    return actor.token is None and actor.can(project, Capability.MANAGE_SERVICE_TOKENS)


def can_map_groups(actor: Actor, project: Project) -> bool:
    """A project admin, in person (a mapping of a guarded role then waits for a holder)."""
    return (
        actor.token is None
        and actor.person is not None
        and actor.can(project, Capability.MANAGE_ROLES)
    )


def idp_role_refusal(
    user: User, mapping: GroupMapping, held: frozenset[Role], guarded: frozenset[Role]
) -> NotPermitted | None:
    """Why `user` may not hold `mapping`'s role from the IdP, or None. Asked at every sign-in,
    for roles granted then and roles kept, so no IdP group walks around these:

    - nobody holds a role through a mapping they made, or confirmed (as nobody grants a role to
      themselves, nor confirms a grant to themselves);
    - a project admin holds no guarded role from the IdP: who names the reviewers is not one of
      them because of a group kept outside releasegate (by hand, a current holder confirms that
      person by name; see docs/governance.md).
    `held` are the roles the person holds on the project now, `guarded` the project's guarded
    roles."""
    if mapping.created_by_id == user.pk:
        return NotPermitted(
            "Nobody is granted a role by a mapping they made themselves.", code="self_grant"
        )
    if mapping.confirmed_by_id == user.pk:
        return NotPermitted(
            "Nobody is granted a role by a mapping they confirmed themselves.",
            code="confirmer_cannot_gain",
        )
    role = Role(mapping.role)
    if role in guarded and Role.ADMIN in held:
        return NotPermitted(
            f"A project admin does not get the guarded role {role.value} from an IdP group; "
            f"a grant by hand, confirmed by a {role.value} holder, is the way.",
            code="admin_not_from_idp",
        )
    return None
