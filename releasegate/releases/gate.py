"""The gate: one pure function over loaded facts.

`evaluate_gate(facts, now)` answers whether a release is cleared and, if not, every reason why,
each as a blocker with a stable code. It reads nothing and writes nothing;
`selectors.load_gate_facts` loads the facts in a fixed number of queries. Everything that asks
"is it cleared?" (API, pages, promotion, CLI) comes here.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any

from releasegate.releases.evidence import manifest_digest

PASSED = "passed"


class BlockerCode(StrEnum):
    """Every blocker code the gate reports: the stable vocabulary of the CI contract."""

    NOT_SUBMITTED = "not_submitted"
    WITHDRAWN = "withdrawn"
    WRONG_ENVIRONMENT = "wrong_environment"
    EVIDENCE_MISSING = "evidence_missing"
    EVIDENCE_INVALID = "evidence_invalid"
    CHECK_PENDING = "check_pending"
    CHECK_FAILED = "check_failed"
    APPROVAL_MISSING = "approval_missing"
    APPROVAL_STALE = "approval_stale"
    APPROVAL_EXPIRED = "approval_expired"
    VETO = "veto"
    HOLD = "hold"
    REVIEW_OVERDUE = "review_overdue"


FAILED_STATUSES = frozenset({"failed", "error"})


@dataclass(frozen=True)
class PolicyFacts:
    version: int
    required_items: tuple[str, ...]
    required_checks: tuple[str, ...]
    required_approvals: dict[str, int]
    max_approval_age: timedelta
    max_review_age: timedelta
    # What the checks read from the policy: a change of any of them unsettles their results.
    vulnerability_threshold: str = "high"
    license_denylist: tuple[str, ...] = ()
    external_ci: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseFacts:
    id: int
    project_id: int
    project_slug: str
    version: str
    artifact_digest: str
    environment: str
    state: str
    requester_id: int
    promoted_at: datetime | None = None


@dataclass(frozen=True)
class EvidenceFact:
    kind: str
    digest: str
    reviewed_at: str | None = None  # pipeline_review only: its date, checked for age


@dataclass(frozen=True)
class ApprovalFact:
    user_id: int
    username: str
    role: str
    manifest_digest: str
    created_at: datetime
    # False once the approver no longer holds the role on the project or is deactivated.
    holds_role: bool = True


@dataclass(frozen=True)
class VetoFact:
    id: int
    release_id: int
    project_id: int
    role: str
    by: str
    reason: str
    since: datetime
    scope: str


@dataclass(frozen=True)
class CheckFact:
    check: str
    status: str
    manifest_digest: str
    updated_at: datetime
    summary: str = ""
    # Set when the result rests on something that ends (a vulnerability waiver's expiry).
    valid_until: datetime | None = None
    # `check_inputs_digest` of what the result was computed from; it counts only while equal to
    # the digest of the current inputs.
    inputs_digest: str = ""


@dataclass(frozen=True)
class HoldFact:
    """An active hold on the release, placed by a production alert (releasegate.incidents)."""

    id: int
    alert_name: str
    summary: str
    severity: str
    signal: str  # the monitoring plan's signal it matched; "" when none
    since: datetime
    alert_status: str  # the alert's latest status: firing, or resolved (noted, never lifts)
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class BreakGlassFact:
    """A confirmed break-glass of the release (the latest one)."""

    id: int
    requested_by: str
    confirmed_by: str
    confirmed_at: datetime
    until: datetime


@dataclass(frozen=True)
class ReviewDueFact:
    """A confirmed break-glass of the project whose post-incident review is not filed yet."""

    break_glass_id: int
    release_id: int
    version: str
    due: datetime


@dataclass(frozen=True)
class GateFacts:
    release: ReleaseFacts
    policy: PolicyFacts
    evidence: tuple[EvidenceFact, ...] = ()
    approvals: tuple[ApprovalFact, ...] = ()
    vetoes: tuple[VetoFact, ...] = ()
    checks: tuple[CheckFact, ...] = ()
    holds: tuple[HoldFact, ...] = ()
    break_glass: BreakGlassFact | None = None
    reviews_due: tuple[ReviewDueFact, ...] = ()
    # How many times the advisory set changed (every import that changes it bumps it), and the
    # project's waivers (every waiver or revocation bumps it): what `vulnerabilities` reads
    # besides the evidence and the policy.
    advisory_generation: int = 0
    waiver_generation: int = 0

    # Pure functions of the facts, which are frozen: worked out once per facts, however many
    # times they are judged (a connection keeps the facts of a read the database has not changed
    # since, releasegate/releases/gate_statement.py). Not fields: equality and `replace` ignore
    # them, and a replaced copy works them out afresh.
    @cached_property
    def manifest(self) -> str:
        """The digest of the artifact and the evidence as they stand."""
        return manifest_digest(
            artifact_digest=self.release.artifact_digest,
            evidence={e.kind: e.digest for e in self.evidence},
        )

    @cached_property
    def check_inputs(self) -> MappingProxyType[str, str]:
        """The digest of the current inputs of every check the policy requires."""
        return MappingProxyType(
            {
                check: check_inputs_digest(
                    check,
                    manifest=self.manifest,
                    policy=self.policy,
                    advisory_generation=self.advisory_generation,
                    waiver_generation=self.waiver_generation,
                )
                for check in self.policy.required_checks
            }
        )


def _vulnerability_inputs(policy: PolicyFacts, advisories: int, waivers: int) -> dict[str, Any]:
    return {
        "threshold": policy.vulnerability_threshold,
        "advisory_generation": advisories,
        "waiver_generation": waivers,
    }


# What each check reads besides the evidence manifest (which every check reads). A check missing
# here reads the evidence alone.
_CHECK_INPUTS: dict[str, Callable[[PolicyFacts, int, int], dict[str, Any]]] = {
    "vulnerabilities": _vulnerability_inputs,
    # The check lower-cases the deny-list and reads it as a set.
    "licenses": lambda policy, _a, _w: {
        "denylist": sorted({d.lower() for d in policy.license_denylist})
    },
    "external_ci": lambda policy, _a, _w: {"external_ci": policy.external_ci},
}


def check_inputs_digest(
    check: str,
    *,
    manifest: str,
    policy: PolicyFacts,
    advisory_generation: int,
    waiver_generation: int,
) -> str:
    """The digest of every input `check` reads: the evidence manifest, the policy parameters it
    reads and, for `vulnerabilities`, the advisory and waiver generations. Workers store it with
    each result; the gate counts a result only while it equals the digest of the current inputs."""
    reads = _CHECK_INPUTS.get(check)
    parameters = reads(policy, advisory_generation, waiver_generation) if reads else None
    # Most checks read the manifest alone; the others' parameters are a few small values.
    encoded = "{}" if parameters is None else json.dumps(parameters, sort_keys=True)
    return _inputs_digest(check, manifest, encoded)


@lru_cache(maxsize=4096)
def _inputs_digest(check: str, manifest: str, parameters: str) -> str:
    """A pure function of its arguments, asked for every required check of every gate answer:
    kept (by value) rather than hashed again on each."""
    body = json.dumps(
        {"check": check, "manifest": manifest, "parameters": json.loads(parameters)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(b"releasegate-check-inputs-v1\n" + body.encode()).hexdigest()


@dataclass(frozen=True)
class Blocker:
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, **self.details, "message": self.message}


@dataclass(frozen=True)
class BreakGlassUse:
    """A break-glass in force at the moment judged, and the blockers it set aside."""

    fact: BreakGlassFact
    bypassed: tuple[Blocker, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.fact.id,
            "requested_by": self.fact.requested_by,
            "confirmed_by": self.fact.confirmed_by,
            "until": _iso(self.fact.until),
            "bypassed": [b.as_dict() for b in self.bypassed],
        }


@dataclass(frozen=True)
class GateDecision:
    release: ReleaseFacts
    cleared: bool
    blockers: tuple[Blocker, ...]
    policy_version: int
    manifest_digest: str
    evaluated_at: datetime
    break_glass: BreakGlassUse | None = None

    def as_dict(self) -> dict[str, Any]:
        r = self.release
        answer = {
            "release": {
                "id": r.id,
                "project": r.project_slug,
                "version": r.version,
                "artifact_digest": r.artifact_digest,
                "environment": r.environment,
                "state": r.state,
            },
            "cleared": self.cleared,
            "blockers": [b.as_dict() for b in self.blockers],
            "policy_version": self.policy_version,
            "manifest_digest": self.manifest_digest,
            "evaluated_at": _iso(self.evaluated_at),
        }
        if self.break_glass is not None:
            answer["break_glass"] = self.break_glass.as_dict()
        return answer


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _lifecycle_blockers(release: ReleaseFacts) -> list[Blocker]:
    if release.state == "withdrawn":
        return [Blocker("withdrawn", "The release was withdrawn.")]
    if release.state == "draft":
        return [Blocker("not_submitted", "The release has not been submitted for review.")]
    return []


def _veto_blockers(facts: GateFacts) -> list[Blocker]:
    blockers = []
    for veto in facts.vetoes:
        details: dict[str, Any] = {"role": veto.role, "since": _iso(veto.since)}
        if veto.project_id != facts.release.project_id:
            # A veto on the same artifact in another project blocks too, but tells nothing of it:
            # not who, not why, not which veto or release (ids a caller could probe with).
            details.update(by=None, reason="This artifact is vetoed in another project.")
            message = "The same artifact is vetoed in another project."
        else:
            details.update(
                by=veto.by, reason=veto.reason, veto_id=veto.id, release_id=veto.release_id
            )
            if veto.release_id == facts.release.id:
                message = f"Vetoed by {veto.by} ({veto.role}): {veto.reason}"
            else:
                message = (
                    f"A veto by {veto.by} ({veto.role}) on another release carries forward: "
                    f"{veto.reason}"
                )
        blockers.append(Blocker("veto", message, details))
    return blockers


def _review_date_problem(value: str | None, at: datetime, max_age: timedelta) -> str | None:
    try:
        reviewed = date.fromisoformat(value or "")
    except ValueError:
        return "the review date is not a date"
    if reviewed > at.date():
        return "the review is dated in the future"
    if at.date() - reviewed > max_age:
        return f"the review is older than {max_age.days} days"
    return None


def _evidence_blockers(facts: GateFacts, at: datetime) -> list[Blocker]:
    present = {e.kind: e for e in facts.evidence}
    blockers = []
    for kind in facts.policy.required_items:
        item = present.get(kind)
        if item is None:
            blockers.append(Blocker("evidence_missing", f"No {kind} evidence.", {"kind": kind}))
            continue
        if kind == "pipeline_review":
            problem = _review_date_problem(item.reviewed_at, at, facts.policy.max_review_age)
            if problem:
                blockers.append(
                    Blocker("evidence_invalid", f"pipeline_review: {problem}.", {"kind": kind})
                )
    return blockers


def _recency(result: CheckFact) -> tuple[datetime, int]:
    # Two results stamped the same instant (a worker's and CI's): the worse one stands, so the
    # answer never depends on the order rows come back in, and never errs towards cleared.
    severity = 0 if result.status == PASSED else 2 if result.status in FAILED_STATUSES else 1
    return result.updated_at, severity


def _check_blockers(facts: GateFacts, at: datetime) -> list[Blocker]:
    manifest, current = facts.manifest, facts.check_inputs
    latest: dict[str, CheckFact] = {}
    outdated: set[str] = set()
    for result in facts.checks:
        if result.manifest_digest != manifest:
            continue  # computed on older evidence: never counts
        if facts.release.promoted_at is None and result.inputs_digest != current.get(result.check):
            # Computed under another policy, advisory set or waivers: never counts either. (A
            # promoted release was judged on what held when it was promoted.)
            outdated.add(result.check)
            continue
        held = latest.get(result.check)
        if held is None or _recency(result) >= _recency(held):
            latest[result.check] = result
    blockers = []
    for check in facts.policy.required_checks:
        latest_result = latest.get(check)
        if latest_result is None and check in outdated:
            blockers.append(
                Blocker(
                    "check_pending",
                    f"Check {check} was computed before the policy, advisories or waivers it "
                    "reads changed; it runs again.",
                    {"check": check, "status": "outdated"},
                )
            )
        elif latest_result is None:
            blockers.append(
                Blocker(
                    "check_pending",
                    f"Check {check} has no result for the current evidence yet.",
                    {"check": check, "status": "missing"},
                )
            )
        elif latest_result.status in FAILED_STATUSES:
            summary = latest_result.summary
            verb = "errored" if latest_result.status == "error" else "failed"
            blockers.append(
                Blocker(
                    "check_failed",
                    f"Check {check} {verb}{f': {summary}' if summary else ''}",
                    {"check": check, "status": latest_result.status, "summary": summary},
                )
            )
        elif latest_result.valid_until is not None and latest_result.valid_until <= at:
            blockers.append(
                Blocker(
                    "check_pending",
                    f"Check {check} passed on a waiver that has since expired; it runs again.",
                    {"check": check, "status": "expired"},
                )
            )
        elif latest_result.status != PASSED:
            blockers.append(
                Blocker(
                    "check_pending",
                    f"Check {check} is {latest_result.status}.",
                    {"check": check, "status": latest_result.status},
                )
            )
    return blockers


def _approval_blockers(facts: GateFacts, at: datetime) -> list[Blocker]:
    policy, manifest = facts.policy, facts.manifest
    oldest_valid = at - policy.max_approval_age
    counted_role: dict[int, str] = {}  # one person counts for one role only: their first
    stale: dict[str, set[int]] = {}
    expired: dict[str, set[int]] = {}
    for approval in sorted(facts.approvals, key=lambda a: a.created_at):
        if approval.user_id == facts.release.requester_id:
            continue
        if approval.role not in policy.required_approvals:
            continue
        if not approval.holds_role and facts.release.promoted_at is None:
            continue  # an approval stands only while its giver still holds the role
        if approval.manifest_digest != manifest:
            stale.setdefault(approval.role, set()).add(approval.user_id)
        elif approval.created_at < oldest_valid:
            expired.setdefault(approval.role, set()).add(approval.user_id)
        else:
            counted_role.setdefault(approval.user_id, approval.role)
    blockers = []
    for role, need in sorted(policy.required_approvals.items()):
        have = sum(1 for r in counted_role.values() if r == role)
        if have >= need:
            continue
        details = {"role": role, "have": have, "need": need}
        others = set(counted_role)
        if stale.get(role, set()) - others:
            blockers.append(
                Blocker(
                    "approval_stale",
                    f"{role} approval was given on earlier evidence; it must be given again "
                    f"({have} of {need}).",
                    details,
                )
            )
        elif expired.get(role, set()) - others:
            blockers.append(
                Blocker(
                    "approval_expired",
                    f"{role} approval is older than {policy.max_approval_age.days} days "
                    f"({have} of {need}).",
                    details,
                )
            )
        else:
            blockers.append(
                Blocker("approval_missing", f"{role} approval needed ({have} of {need}).", details)
            )
    return blockers


def _hold_blockers(facts: GateFacts) -> list[Blocker]:
    blockers = []
    for hold in facts.holds:
        signal = hold.signal or None
        resolved = (
            f" (the alert resolved at {_iso(hold.resolved_at)}; a security holder lifts the hold)"
            if hold.resolved_at is not None
            else ""
        )
        blockers.append(
            Blocker(
                BlockerCode.HOLD,
                f"Held by the production alert {hold.alert_name}"
                f"{f': {hold.summary}' if hold.summary else ''}"
                f" (signal: {signal or 'no signal of the plan'}){resolved}",
                {
                    "hold_id": hold.id,
                    "alert": hold.alert_name,
                    "summary": hold.summary,
                    "severity": hold.severity,
                    "signal": signal,
                    "since": _iso(hold.since),
                    "alert_status": hold.alert_status,
                },
            )
        )
    return blockers


def _review_overdue_blockers(facts: GateFacts, now: datetime) -> list[Blocker]:
    # A promoted release was judged already: only releases still to be promoted wait for it.
    if facts.release.promoted_at is not None:
        return []
    return [
        Blocker(
            BlockerCode.REVIEW_OVERDUE,
            f"The post-incident review of break-glass {due.break_glass_id} (release "
            f"{due.version}) was due {_iso(due.due)}; no release of the project is cleared "
            "until it is filed.",
            {
                "break_glass_id": due.break_glass_id,
                "release_id": due.release_id,
                "due": _iso(due.due),
            },
        )
        for due in facts.reviews_due
        if due.due <= now
    ]


# What a confirmed break-glass sets aside: the people and machines that could not answer in time.
# Never a veto or a hold (someone said no), nor the lifecycle, the environment, the evidence
# (what the post-incident review reads) or an overdue review (the loop must close first).
BYPASSABLE = frozenset(
    {
        BlockerCode.APPROVAL_MISSING,
        BlockerCode.APPROVAL_STALE,
        BlockerCode.APPROVAL_EXPIRED,
        BlockerCode.CHECK_PENDING,
        BlockerCode.CHECK_FAILED,
    }
)


def _break_glass_in_force(facts: GateFacts, at: datetime) -> BreakGlassFact | None:
    bg = facts.break_glass
    if bg is None or not bg.confirmed_at <= at < bg.until:
        return None
    return bg


def _environment_blockers(release: ReleaseFacts, environment: str | None) -> list[Blocker]:
    if environment is None or environment == release.environment:
        return []
    return [
        Blocker(
            BlockerCode.WRONG_ENVIRONMENT,
            f"The release is for {release.environment}, not {environment}.",
            {"environment": release.environment, "asked": environment},
        )
    ]


def evaluate_gate(facts: GateFacts, now: datetime, environment: str | None = None) -> GateDecision:
    """Decide whether the release is cleared at `now` for a deploy to `environment` (None: to its
    own environment), with every blocker that stands."""
    # A promoted release was judged when it was promoted; what can still stop it is a veto.
    at = facts.release.promoted_at or now
    blockers = [
        *_environment_blockers(facts.release, environment),
        *_lifecycle_blockers(facts.release),
        *_veto_blockers(facts),
        *_hold_blockers(facts),
        *_review_overdue_blockers(facts, now),
        *_evidence_blockers(facts, at),
        *_check_blockers(facts, at),
        *_approval_blockers(facts, at),
    ]
    use = None
    in_force = _break_glass_in_force(facts, at)
    if in_force is not None:
        use = BreakGlassUse(in_force, tuple(b for b in blockers if b.code in BYPASSABLE))
        blockers = [b for b in blockers if b.code not in BYPASSABLE]
    return GateDecision(
        release=facts.release,
        cleared=not blockers,
        blockers=tuple(blockers),
        policy_version=facts.policy.version,
        manifest_digest=facts.manifest,
        evaluated_at=now,
        break_glass=use,
    )
