"""Changes to people's accounts made in the Django admin: each is audited, and the security holders
of every project where the person holds a role are told, so the site administrator acts in view.
"""

from typing import Any

from django.contrib.auth.models import User

from releasegate.accounts.actors import Actor
from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import holder_ids, roles_by_project
from releasegate.audit.services import audit_record
from releasegate.notifications.people import people_tell
from releasegate.releases.models import Project
from releasegate.transactions import service


@service
def user_change_record(
    *, user: User, actor: Actor, changes: dict[str, Any], action: str = "user_changed"
) -> None:
    """Record `changes` (field -> new value; never a password or its hash) to `user`.

    One audit event per project where the person holds a role (so each project's trail shows it),
    or one site event when they hold none; security holders of those projects are told.
    """
    data = {"user": user.get_username(), "user_id": user.pk, "changes": changes}
    held = roles_by_project(user.pk)
    if not held:
        audit_record(action=action, actor=actor, data=data)
        return
    projects = Project.objects.in_bulk(list(held))
    told: set[int] = set()
    for project_id, roles in sorted(held.items()):
        audit_record(
            action=action,
            actor=actor,
            project_id=project_id,
            data={**data, "roles": sorted(r.value for r in roles)},
        )
        told.update(holder_ids(projects[project_id], {Role.SECURITY}))
    what = ", ".join(sorted(changes))
    slugs = ", ".join(projects[pk].slug for pk in sorted(held))
    people_tell(
        user_ids=told,
        subject=f"[releasegate] {actor.label} changed the account of {user.get_username()}",
        body=(
            f"In the site administration, {actor.label} changed {what} of "
            f"{user.get_username()}, who holds a role on {slugs}."
        ),
    )
