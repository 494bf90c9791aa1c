"""Models to the JSON the API answers with (shapes documented in serializers.py)."""

from typing import Any

from releasegate.accounts.actors import Actor
from releasegate.audit import selectors as audit_selectors
from releasegate.audit.models import AuditEvent
from releasegate.checks.findings import check_findings
from releasegate.checks.models import CheckResult, Waiver
from releasegate.releases.models import (
    Approval,
    Evidence,
    GovernanceChange,
    Project,
    Release,
    Veto,
)
from releasegate.releases.permissions import may_cancel_change, may_confirm_change


def _iso(moment: Any) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def release_dict(release: Release) -> dict[str, Any]:
    return {
        "id": release.pk,
        "project": release.project.slug,
        "version": release.version,
        "artifact_digest": release.artifact_digest,
        "environment": release.environment,
        "summary": release.summary,
        "state": release.state,
        "requester": release.requester.get_username(),
        "manifest_digest": release.manifest_digest,
        "created_at": _iso(release.created_at),
        "submitted_at": _iso(release.submitted_at),
    }


def evidence_dict(evidence: Evidence) -> dict[str, Any]:
    return {
        "kind": evidence.kind,
        "digest": evidence.digest,
        "attached_by": evidence.attached_by_label,
        "attached_at": _iso(evidence.attached_at),
        "link": evidence.link,
    }


def check_dict(result: CheckResult, manifest: str) -> dict[str, Any]:
    """A result; one on the current evidence with its findings, exactly as the release page
    lists them (`check_findings`), an older one without (null)."""
    current = result.manifest_digest == manifest
    found = check_findings(result.check_name, result.details) if current else None
    return {
        "id": result.pk,
        "check": result.check_name,
        "status": result.status,
        "source": result.source,
        "external_id": result.external_id,
        "summary": result.summary,
        "details_url": result.details_url,
        "manifest_digest": result.manifest_digest,
        "current": current,
        "updated_at": _iso(result.updated_at),
        "findings": [f.as_dict() for f in found.listed] if found is not None else None,
        "unlisted_counting": found.unlisted_counting if found is not None else None,
    }


def approval_dict(approval: Approval, manifest: str) -> dict[str, Any]:
    return {
        "id": approval.pk,
        "decision": "approve",
        "role": approval.role,
        "by": approval.user.get_username(),
        "comment": approval.comment,
        "manifest_digest": approval.manifest_digest,
        "current": approval.manifest_digest == manifest,
        "created_at": _iso(approval.created_at),
    }


def veto_dict(veto: Veto) -> dict[str, Any]:
    return {
        "id": veto.pk,
        "decision": "veto",
        "release_id": veto.release_id,
        "role": veto.role,
        "by": veto.user.get_username(),
        "reason": veto.reason,
        "scope": veto.scope,
        "created_at": _iso(veto.created_at),
        "active": veto.lifted_at is None,
        "lifted_at": _iso(veto.lifted_at),
        "lifted_by": veto.lifted_by.get_username() if veto.lifted_by is not None else None,
        "lift_reason": veto.lift_reason,
    }


def release_detail_dict(release: Release) -> dict[str, Any]:
    manifest = release.manifest_digest
    return {
        **release_dict(release),
        "evidence": [
            evidence_dict(e) for e in Evidence.objects.filter(release=release, is_current=True)
        ],
        "checks": [
            check_dict(c, manifest)
            for c in CheckResult.objects.filter(release=release).order_by(
                "check_name", "-updated_at"
            )
        ],
        "signoffs": [
            approval_dict(a, manifest)
            for a in Approval.objects.filter(release=release).select_related("user")
        ],
        "vetoes": [
            veto_dict(v)
            for v in Veto.objects.filter(release=release).select_related("user", "lifted_by")
        ],
    }


def audit_event_dict(event: AuditEvent) -> dict[str, Any]:
    """Every field the event's `entry_hash` covers, and its link: enough to recompute both."""
    return {
        "chain": event.chain.name,
        "seq": event.seq,
        "created_at": _iso(event.created_at),
        "action": event.action,
        "actor": event.actor,
        "actor_user_id": event.actor_user_id,
        "project_id": event.project_id,
        "release_id": event.release_id,
        "data": event.data,
        "entry_hash": event.entry_hash,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def audit_trail_dict(release: Release) -> dict[str, Any]:
    """The release's trail as one document, with the proof that links it to a checkpoint."""
    events = list(audit_selectors.release_events(release))
    proof = audit_selectors.chain_proof(events)
    return {
        "release": release_dict(release),
        "events": [audit_event_dict(e) for e in events],
        "proof": proof.as_dict() if proof is not None else None,
    }


def waiver_dict(waiver: Waiver, project: Project) -> dict[str, Any]:
    return {
        "id": waiver.pk,
        "project": project.slug,
        "advisory_id": waiver.advisory_id,
        "reason": waiver.reason,
        "expires_at": _iso(waiver.expires_at),
        "created_by": waiver.created_by.get_username(),
        "created_at": _iso(waiver.created_at),
    }


def governance_change_dict(change: GovernanceChange, actor: Actor) -> dict[str, Any]:
    """A governance request, with what the caller may do with it (as `may_*` decide)."""
    return {
        "id": change.pk,
        "project": change.project.slug,
        "kind": change.kind,
        "status": change.status,
        "requested_by": change.requested_by.get_username(),
        "requested_at": _iso(change.requested_at),
        "note": change.note,
        "user": change.subject.get_username() if change.subject is not None else None,
        "role": change.role or None,
        "group": change.group or None,
        "from_version": change.base_policy_version,
        "policy": change.policy or None,
        "weakenings": change.weakenings,
        "decided_by": change.decided_by.get_username() if change.decided_by is not None else None,
        "decided_at": _iso(change.decided_at),
        "decision_reason": change.decision_reason,
        "may_confirm": may_confirm_change(actor, change),
        "may_cancel": may_cancel_change(actor, change),
    }
