"""Issuing and revoking signed clearance attestations (PRODUCT.md, "Signed clearance").

An attestation is issued only while the gate answers cleared, under the same locks as promotion
and vetoes (artifact -> project -> release, see releasegate/transactions.py), so a veto
either comes first (the gate answers blocked: 409) or comes after and finds the attestation to
revoke.
"""

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from django.conf import settings
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.attestations.models import IssuedAttestation, Revocation
from releasegate.attestations.selectors import may_read_attestations
from releasegate.attestations.statement import (
    BREAK_GLASS_LEVEL,
    EXTENSION,
    PASSED,
    STATEMENT_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    VSA_PREDICATE_TYPE,
    cleared_level,
    iso,
)
from releasegate.audit.services import audit_record
from releasegate.errors import Conflict, NotPermitted
from releasegate.releases.evidence import canonical_json
from releasegate.releases.gate import GateDecision, GateFacts, evaluate_gate
from releasegate.releases.models import GatePolicy, Release
from releasegate.releases.selectors import (
    GenerationsRelease,
    gate_release_queryset,
    load_gate_facts,
)
from releasegate.releases.signals import send_after_commit
from releasegate.signing.dsse import sign_envelope
from releasegate.transactions import (
    LockRank,
    lock_artifact,
    lock_many,
    lock_one,
    lock_project,
    service,
)

# Fields of a policy version that are bookkeeping, not what the gate enforces.
_POLICY_BOOKKEEPING = frozenset({"id", "project", "created_by", "created_at", "note"})


def _package_version() -> str:
    try:
        return version("releasegate")
    except PackageNotFoundError:
        return "unknown"


def policy_digest(policy: GatePolicy, project_slug: str) -> str:
    """Hex sha256 over the canonical JSON of what one policy version enforces."""
    fields: dict[str, Any] = {"project": project_slug}
    for field in GatePolicy._meta.concrete_fields:
        if field.name not in _POLICY_BOOKKEEPING:
            fields[field.name] = field.value_from_object(policy)
    return hashlib.sha256(canonical_json(fields)).hexdigest()


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def build_statement(
    *,
    facts: GateFacts,
    decision: GateDecision,
    policy: GatePolicy,
    attestation_id: int,
    issued: IssuedAttestation,
) -> dict[str, Any]:
    """The in-toto Statement v1 with the SLSA VSA v1 predicate for a cleared release; a
    clearance under a break-glass says so in `verifiedLevels`."""
    base = settings.RELEASEGATE_BASE_URL
    release = facts.release
    levels = [cleared_level(release.environment)]
    if decision.break_glass is not None:
        levels.append(BREAK_GLASS_LEVEL)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"{release.project_slug}/{release.version}",
                "digest": {"sha256": _hex(release.artifact_digest)},
            }
        ],
        "predicateType": VSA_PREDICATE_TYPE,
        "predicate": {
            "verifier": {"id": base, "version": {"releasegate": _package_version()}},
            "timeVerified": iso(issued.issued_at),
            "resourceUri": f"{base}/releases/{release.id}/",
            "policy": {
                "uri": f"{base}/projects/{release.project_slug}/policy/#version-{policy.version}",
                "digest": {"sha256": policy_digest(policy, release.project_slug)},
            },
            "inputAttestations": [
                {
                    "name": f"{release.project_slug}/{release.version}/evidence/{item.kind}",
                    "uri": f"{base}/api/v1/releases/{release.id}",
                    "digest": {"sha256": _hex(item.digest)},
                }
                for item in facts.evidence
            ],
            "verificationResult": PASSED,
            "verifiedLevels": levels,
            EXTENSION: {
                "attestation_id": attestation_id,
                "release_id": release.id,
                "environment": release.environment,
                "policy_version": policy.version,
                "manifest_digest": issued.manifest_digest,
            },
        },
    }


def _lock_for_issue(release: Release) -> GenerationsRelease:
    """Take the locks a veto or promotion of this release takes (the order of
    releasegate/transactions.py: artifact, project, release), so issuing and vetoing never
    interleave."""
    lock_artifact(release.artifact_digest)
    lock_project(release.project_id)
    return lock_one(
        gate_release_queryset().select_related("project__current_policy"),
        LockRank.RELEASE,
        pk=release.pk,
    )


@service
def attestation_issue(
    *, release: Release, actor: Actor
) -> tuple[IssuedAttestation, dict[str, Any]]:
    """Sign an attestation that the release is cleared for its environment, if the gate says so
    at this instant (409 with the blockers otherwise); recorded and audited so it can be revoked."""
    if not may_read_attestations(actor, release.project):
        raise NotPermitted(
            "Attestations need a person who may read the project, or a service token with "
            "gate:read or attestations:read.",
            code="missing_scope",
        )
    locked = _lock_for_issue(release)
    facts = load_gate_facts(locked)
    decision = evaluate_gate(facts, timezone.now())
    if not decision.cleared:
        raise Conflict(
            "The release is not cleared.",
            code="blocked",
            extra={"blockers": [b.as_dict() for b in decision.blockers]},
        )
    policy = locked.project.current_policy
    assert policy is not None  # load_gate_facts refuses a project without one
    issued = IssuedAttestation.objects.create(
        release=locked,
        project_id=locked.project_id,
        subject_digest=locked.artifact_digest,
        environment=locked.environment,
        policy_version=decision.policy_version,
        manifest_digest=decision.manifest_digest,
        issued_by_label=actor.label,
        issued_at=decision.evaluated_at,
    )
    statement = build_statement(
        facts=facts, decision=decision, policy=policy, attestation_id=issued.pk, issued=issued
    )
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    envelope = sign_envelope(STATEMENT_PAYLOAD_TYPE, payload)
    issued.keyid = envelope["signatures"][0]["keyid"]
    issued.payload_digest = f"sha256:{hashlib.sha256(payload).hexdigest()}"
    issued.save(update_fields=["keyid", "payload_digest"])
    audit_record(
        action="attestation_issued",
        actor=actor,
        project_id=locked.project_id,
        release_id=locked.pk,
        data={
            "attestation_id": issued.pk,
            "environment": issued.environment,
            "keyid": issued.keyid,
            "payload_digest": issued.payload_digest,
            "manifest_digest": issued.manifest_digest,
            "policy_version": issued.policy_version,
        },
    )
    return issued, envelope


@service
def attestations_revoke(
    *, release_ids: list[int], reason: str, cause: str, actor: Actor
) -> list[int]:
    """Revoke every unrevoked attestation of these releases; the ids revoked now (idempotent: an
    attestation revoked already is left as it is). Called inside the transaction of the act that
    blocks them (a veto, a hold), whose service decided the actor may, before that act's own
    audit record (attestation rows rank below the audit head); audited per release."""
    if not release_ids:
        return []
    # Attestations are rows of their release: locked after it (the caller holds the release).
    attestations = lock_many(
        IssuedAttestation.objects.filter(release_id__in=release_ids), LockRank.RELEASE_ROWS
    )
    done = set(
        Revocation.objects.filter(attestation__in=attestations).values_list(
            "attestation_id", flat=True
        )
    )
    now = timezone.now()
    revoked: dict[int, list[int]] = {}
    project_of = {a.release_id: a.project_id for a in attestations}
    for attestation in attestations:
        if attestation.pk in done:
            continue
        Revocation.objects.create(
            attestation=attestation,
            project_id=attestation.project_id,
            reason=reason,
            cause=cause,
            revoked_by_label=actor.label,
            revoked_at=now,
        )
        revoked.setdefault(attestation.release_id, []).append(attestation.pk)
    for release_id, ids in revoked.items():
        audit_record(
            action="attestation_revoked",
            actor=actor,
            project_id=project_of[release_id],
            release_id=release_id,
            data={"attestation_ids": ids, "reason": reason, "cause": cause},
        )
        send_after_commit("attestation_revoked", release_id=release_id, attestation_ids=ids)
    return sorted(pk for ids in revoked.values() for pk in ids)
