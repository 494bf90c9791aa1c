"""Who is acting: a person (signed in, or through a personal token), a service token, or the system.

Services take an Actor and decide from it and the project what may be done; views only pass it on.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from releasegate.accounts.roles import Role
from releasegate.accounts.selectors import roles_for

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from releasegate.accounts.models import ApiToken
    from releasegate.releases.models import Project


class Scope(StrEnum):
    GATE_READ = "gate:read"
    RELEASES_WRITE = "releases:write"
    CHECKS_WRITE = "checks:write"
    RELEASES_PROMOTE = "releases:promote"
    ADMISSION_REVIEW = "admission:review"
    ALERTS_WRITE = "alerts:write"
    ATTESTATIONS_READ = "attestations:read"


class Capability(StrEnum):
    READ = "read"
    CREATE_RELEASE = "create_release"
    EDIT_RELEASE = "edit_release"
    PROMOTE = "promote"
    REPORT_CHECK = "report_check"
    CHANGE_POLICY = "change_policy"
    MANAGE_ROLES = "manage_roles"
    MANAGE_SERVICE_TOKENS = "manage_service_tokens"
    WAIVE_ADVISORY = "waive_advisory"
    EXPORT_AUDIT = "export_audit"
    READ_ATTESTATION = "read_attestation"
    REVIEW_ADMISSION = "review_admission"
    REPORT_ALERT = "report_alert"


_ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.REQUESTER: frozenset(
        {Capability.READ, Capability.CREATE_RELEASE, Capability.EDIT_RELEASE, Capability.PROMOTE}
    ),
    Role.SECURITY: frozenset({Capability.READ, Capability.WAIVE_ADVISORY}),
    Role.SME: frozenset({Capability.READ}),
    Role.ADMIN: frozenset(
        {
            Capability.READ,
            Capability.CHANGE_POLICY,
            Capability.MANAGE_ROLES,
            Capability.MANAGE_SERVICE_TOKENS,
            # They answer for the project's roles, policies and tokens, so they read its trail.
            Capability.EXPORT_AUDIT,
        }
    ),
    Role.AUDITOR: frozenset({Capability.READ, Capability.EXPORT_AUDIT}),
}

_SCOPE_CAPABILITIES: dict[Scope, frozenset[Capability]] = {
    Scope.GATE_READ: frozenset({Capability.READ, Capability.READ_ATTESTATION}),
    Scope.RELEASES_WRITE: frozenset(
        {Capability.READ, Capability.CREATE_RELEASE, Capability.EDIT_RELEASE}
    ),
    Scope.CHECKS_WRITE: frozenset({Capability.READ, Capability.REPORT_CHECK}),
    Scope.RELEASES_PROMOTE: frozenset({Capability.READ, Capability.PROMOTE}),
    # A gate:read token may fetch attestations too: they say no more than the gate answer does.
    # These three are narrow on purpose: a deploy target's or Alertmanager's token reads no
    # release, evidence or audit trail through the rest of the API.
    Scope.ATTESTATIONS_READ: frozenset({Capability.READ_ATTESTATION}),
    Scope.ADMISSION_REVIEW: frozenset({Capability.REVIEW_ADMISSION}),
    Scope.ALERTS_WRITE: frozenset({Capability.REPORT_ALERT}),
}


@dataclass
class Actor:
    user: "User | None" = None
    token: "ApiToken | None" = None
    system: bool = False
    _roles: dict[int, frozenset[Role]] = field(default_factory=dict, repr=False)

    @classmethod
    def for_user(cls, user: "User") -> "Actor":
        return cls(user=user)

    @classmethod
    def for_token(cls, token: "ApiToken") -> "Actor":
        return cls(user=token.user, token=token)

    @classmethod
    def system_actor(cls) -> "Actor":
        return cls(system=True)

    @property
    def is_service(self) -> bool:
        return self.token is not None and self.token.kind == "service"

    @property
    def person(self) -> "User | None":
        """The human behind the act, or None for a service token or the system."""
        if self.system or self.is_service:
            return None
        return self.user

    @property
    def label(self) -> str:
        if self.system:
            return "system"
        if self.is_service and self.token is not None:
            return f"token:{self.token.name}"
        if self.user is not None:
            return self.user.get_username()
        return "anonymous"

    def roles(self, project: "Project") -> frozenset[Role]:
        """Roles of the person acting (none for a service token or the system), cached."""
        person = self.person
        if person is None:
            return frozenset()
        if project.pk not in self._roles:
            self._roles[project.pk] = roles_for(person, project)
        return self._roles[project.pk]

    def token_grants(self, capability: Capability) -> bool:
        """Whether this service token's scopes grant `capability` (on its one project)."""
        token = self.token
        if not self.is_service or token is None:
            return False
        return any(
            capability in _SCOPE_CAPABILITIES.get(Scope(s), frozenset())
            for s in token.scopes
            if s in Scope._value2member_map_
        )

    def can(self, project: "Project", capability: Capability) -> bool:
        if self.system:
            return capability in {Capability.READ, Capability.REPORT_CHECK}
        if self.is_service:
            token = self.token
            assert token is not None
            return token.project_id == project.pk and self.token_grants(capability)
        return any(capability in _ROLE_CAPABILITIES[role] for role in self.roles(project))
