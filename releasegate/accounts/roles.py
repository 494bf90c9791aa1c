"""Per-project roles, stored as django-guardian object permissions on the project.

Nobody holds a role globally; a superuser administers the site but holds no role by being one.
This module is the vocabulary (the project model declares its permissions from it); who holds
which role is read in accounts.selectors.
"""

from enum import StrEnum


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
