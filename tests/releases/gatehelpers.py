"""Small helpers shared by the gate-core tests: load a release as the gate does, decide, count."""

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from guardian.models import UserObjectPermission

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.audit.models import AuditEvent
from releasegate.checks.models import CheckResult
from releasegate.releases.gate import GateDecision, evaluate_gate
from releasegate.releases.models import (
    Approval,
    Evidence,
    GatePolicy,
    Project,
    Promotion,
    Release,
    Veto,
)
from releasegate.releases.selectors import gate_decision, gate_release_queryset, load_gate_facts
from releasegate.releases.services import approval_give, role_grant
from tests.builders import pass_checks, submitted_release


def load(release: Release | int) -> Release:
    pk = release if isinstance(release, int) else release.pk
    return gate_release_queryset().get(pk=pk)


def decide(release: Release | int, now: datetime | None = None) -> GateDecision:
    loaded = load(release)
    if now is None:
        return gate_decision(loaded)
    return evaluate_gate(load_gate_facts(loaded), now)


def codes(decision: GateDecision) -> list[str]:
    return [b.code for b in decision.blockers]


def blockers(decision: GateDecision, code: str) -> list[dict[str, Any]]:
    return [b.as_dict() for b in decision.blockers if b.code == code]


def cleared_release(p: Any, **kwargs: Any) -> Release:
    """A release in review with all evidence, every check passed and both approvals."""
    release = submitted_release(p.project, p.requester, **kwargs)
    pass_checks(release)
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    return load(release)


def person_with(p: Any, username: str, *roles: str) -> Any:
    user = get_user_model().objects.create_user(username, password=f"{username}-password-123")
    for role in roles:
        role_grant(project=p.project, user=user, role=role, actor=Actor.system_actor())
    return user


def superuser(username: str = "root") -> Any:
    return get_user_model().objects.create_superuser(username, password="root-password-123")


def snapshot() -> dict[str, Any]:
    """Everything a service could change, to assert that a refused act changed nothing."""
    return {
        "projects": list(
            Project.objects.order_by("pk").values_list("pk", "name", "current_policy")
        ),
        "policies": GatePolicy.objects.count(),
        "roles": UserObjectPermission.objects.count(),
        "releases": list(
            Release.objects.order_by("pk").values_list("pk", "state", "manifest_digest")
        ),
        "evidence": list(Evidence.objects.order_by("pk").values_list("pk", "is_current", "digest")),
        "approvals": Approval.objects.count(),
        "vetoes": list(Veto.objects.order_by("pk").values_list("pk", "lifted_at")),
        "promotions": Promotion.objects.count(),
        "checks": list(CheckResult.objects.order_by("pk").values_list("pk", "status")),
        "audit_events": AuditEvent.objects.count(),
    }


def service_token(
    project, scopes=("gate:read", "releases:write", "checks:write", "releases:promote")
):
    """A CI service token bound to the project (its secret is never used by these tests)."""
    return ApiToken.objects.create(
        kind=ApiToken.Kind.SERVICE,
        name="ci",
        key_id=f"ci{ApiToken.objects.count():010d}",
        secret_hash="0" * 64,
        project=project,
        scopes=list(scopes),
        expires_at=timezone.now() + timedelta(days=30),
    )
