"""Valid evidence documents and small helpers to put a release into a given state."""

import copy
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from releasegate.accounts.actors import Actor
from releasegate.checks.services import check_result_record
from releasegate.releases.models import Release
from releasegate.releases.services import evidence_attach, release_create, release_submit

PIPELINE_REVIEW: dict[str, Any] = {
    "reviewer": "Sam Security",
    # Relative to today: a fixed date would age past the policy's max_review_age_days.
    "reviewed_at": (datetime.now(UTC).date() - timedelta(days=6)).isoformat(),
    "scope": ["training", "serving", "feature-store"],
    "findings": [
        {"id": "PR-1", "severity": "low", "title": "Verbose logs in staging", "status": "open"},
        {"id": "PR-2", "severity": "high", "title": "Unpinned base image", "status": "mitigated"},
    ],
}
DATA_FLOW_MAP: dict[str, Any] = {
    "flows": [
        {
            "source": "support tickets",
            "destination": "vector store",
            "data_classes": ["pii"],
            "third_party": False,
            "customer_data": "real",
            "cached": True,
        },
        {
            "source": "prompt",
            "destination": "LLM provider",
            "data_classes": ["pii"],
            "third_party": True,
            "customer_data": "real",
            "cached": False,
            "agreement_ref": "DPA-12",
        },
    ]
}
SBOM: dict[str, Any] = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "components": [
        {
            "type": "library",
            "name": "requests",
            "version": "2.32.3",
            "purl": "pkg:pypi/requests@2.32.3",
            "licenses": [{"license": {"id": "Apache-2.0"}}],
        },
        {
            "type": "machine-learning-model",
            "name": "support-intent-classifier",
            "version": "3.1.0",
        },
    ],
}
MONITORING_PLAN: dict[str, Any] = {
    "owner": "ml-platform on-call",
    "escalation": "page #support-ai-oncall, then the security lead",
    "signals": [
        {
            "name": "toxic output rate",
            "kind": "output_anomaly",
            "threshold": "> 0.5% over 10 min",
            "runbook": "https://runbooks.example.com/toxic-output",
        },
        {
            "name": "PII in responses",
            "kind": "data_exposure",
            "threshold": "any",
            "runbook": "https://runbooks.example.com/pii-leak",
        },
    ],
}
AGENT_ACCESS_REVIEW: dict[str, Any] = {
    "identities": [
        {
            "name": "ticket-triage-agent",
            "kind": "agent",
            "permissions": ["read"],
            "resources": ["tickets"],
            "auth": "oauth",
        },
        {
            "name": "crm-mcp",
            "kind": "mcp_server",
            "permissions": ["read", "write"],
            "resources": ["crm.contacts"],
            "auth": "mtls",
            "justification": "updates contact preferences on request",
        },
    ]
}

EVIDENCE: dict[str, dict[str, Any]] = {
    "pipeline_review": PIPELINE_REVIEW,
    "data_flow_map": DATA_FLOW_MAP,
    "sbom": SBOM,
    "monitoring_plan": MONITORING_PLAN,
    "agent_access_review": AGENT_ACCESS_REVIEW,
}

DEFAULT_CHECKS = (
    "sbom_valid",
    "vulnerabilities",
    "licenses",
    "pipeline_findings",
    "data_flow",
    "monitoring_coverage",
    "least_privilege",
)


def document(kind: str) -> dict[str, Any]:
    return copy.deepcopy(EVIDENCE[kind])


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def make_release(
    project: Any,
    requester: Any,
    *,
    version: str = "1.0.0",
    environment: str = "production",
    artifact: str | None = None,
) -> Release:
    return release_create(
        project=project,
        actor=Actor.for_user(requester),
        version=version,
        artifact_digest=artifact or digest_of(f"{project.slug}-{version}"),
        environment=environment,
        summary=f"release {version}",
    )


def attach_all(release: Release, requester: Any) -> None:
    for kind in EVIDENCE:
        evidence_attach(
            release=release, actor=Actor.for_user(requester), kind=kind, document=document(kind)
        )


def pass_checks(release: Release, checks: tuple[str, ...] = DEFAULT_CHECKS) -> None:
    release.refresh_from_db()
    for check in checks:
        check_result_record(
            release=release, actor=Actor.system_actor(), check=check, status="passed", summary="ok"
        )


def submitted_release(project: Any, requester: Any, **kwargs: Any) -> Release:
    release = make_release(project, requester, **kwargs)
    attach_all(release, requester)
    release_submit(release=release, actor=Actor.for_user(requester))
    release.refresh_from_db()
    return release


def confirmed(outcome: Any, by: Any) -> Any:
    """A governance act's outcome once `by` (a user) confirms it if it is waiting: the new policy
    version for a policy change, None for a role change."""
    from releasegate.releases.models import GovernanceChange
    from releasegate.releases.services import governance_change_confirm

    if not isinstance(outcome, GovernanceChange):
        return outcome
    done = governance_change_confirm(change=outcome, actor=Actor.for_user(by))
    return done.applied_policy
