"""Reads for the project dashboard: how the gate is doing, week by week.

Everything is computed from a fixed number of queries whatever the number of releases: one each for
the project's releases (with their promotions), evidence versions, approvals, vetoes and check
results, then the gate itself (`evaluate_gate`) over those facts as they stood at a given moment.
Only "what runs where" asks the live gate (`gate_decision`), once per environment of the policy.

Definitions (docs/dashboard.md says the same):
- a release is *requested* when it is submitted for review;
- it is *cleared* at the first moment the gate, over the facts as they stood then, clears it;
- a role is *waited on* from the request until the first approval or veto in that role on the
  release (until now while the release is still in review);
- medians are the middle value (the mean of the two middle ones), p90 the nearest rank;
- weeks start on Monday (UTC); a release counts in the week it was requested;
- blockers "by code over time" are those of every release in review at the end of each week
  (now, for the current week); a check result counts from the moment it was last updated.
"""

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, OuterRef, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.checks.models import CheckResult
from releasegate.releases.gate import (
    FAILED_STATUSES,
    ApprovalFact,
    BlockerCode,
    CheckFact,
    EvidenceFact,
    GateDecision,
    GateFacts,
    ReleaseFacts,
    VetoFact,
    evaluate_gate,
)
from releasegate.releases.models import Approval, Evidence, Project, Release, Veto
from releasegate.releases.selectors import (
    gate_decision,
    gate_release_queryset,
    policy_facts,
    visible_project_ids,
)

WEEKS = 8
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class LeadTime:
    week: date
    requested: int
    cleared: int
    cleared_median: float | None
    cleared_p90: float | None
    promoted: int
    promoted_median: float | None
    promoted_p90: float | None


@dataclass(frozen=True)
class RoleWait:
    role: str
    releases: int
    still_waiting: int
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class VetoWeek:
    week: date
    cast: int
    lifted: int


@dataclass(frozen=True)
class Running:
    environment: str
    release: Release | None
    promoted_at: datetime | None
    state: str  # "cleared", "vetoed", "held", "blocked" or "nothing" (nothing promoted yet)
    decision: GateDecision | None


@dataclass
class Dashboard:
    weeks: list[date]
    lead_times: list[LeadTime]
    role_waits: list[RoleWait]
    blocker_codes: list[str]
    blockers: dict[str, list[int]]  # code -> count per week
    vetoes: list[VetoWeek]
    checks_failed: list[tuple[str, int]]
    running: list[Running]
    releases: int = 0
    notes: list[str] = field(default_factory=list)


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile: the smallest value at least 90% of the values do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[math.ceil(0.9 * len(ordered)) - 1])


def week_of(moment: datetime) -> date:
    day = timezone.localtime(moment, timezone.get_fixed_timezone(0)).date()
    return day - timedelta(days=day.weekday())


def _week_end(week: date, now: datetime) -> datetime:
    end = datetime.combine(week + timedelta(days=7), time.min, tzinfo=now.tzinfo)
    return min(end, now)


def _hours(delta: timedelta) -> float:
    return round(delta / HOUR, 1)


@dataclass
class _History:
    """One release's facts with their times, to rebuild the gate's view at any moment."""

    release: dict[str, Any]
    evidence: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def state_at(self, at: datetime) -> str:
        r = self.release
        if r["promoted_at"] is not None and r["promoted_at"] <= at:
            return Release.State.PROMOTED
        if r["withdrawn_at"] is not None and r["withdrawn_at"] <= at:
            return Release.State.WITHDRAWN
        if r["submitted_at"] is not None and r["submitted_at"] <= at:
            return Release.State.IN_REVIEW
        return Release.State.DRAFT


class _Facts:
    """The project's facts, loaded once; `gate_at(release, moment)` asks the real gate."""

    def __init__(self, project: Project) -> None:
        policy = project.current_policy
        assert policy is not None
        self.project = project
        self.policy = policy_facts(policy)
        self.history: dict[int, _History] = {}
        for release in Release.objects.filter(project_id=project.pk).values(
            "id",
            "version",
            "artifact_digest",
            "environment",
            "state",
            "requester_id",
            "created_at",
            "submitted_at",
            "withdrawn_at",
            "promotion__promoted_at",
        ):
            row: dict[str, Any] = dict(release)
            row["promoted_at"] = row.pop("promotion__promoted_at")
            self.history[row["id"]] = _History(release=row)
        for evidence in (
            Evidence.objects.filter(release__project_id=project.pk)
            .annotate(reviewed_at=KeyTextTransform("reviewed_at", "document"))
            .values("release_id", "kind", "digest", "attached_at", "reviewed_at")
            .order_by("attached_at", "id")
        ):
            self.history[evidence["release_id"]].evidence.append(dict(evidence))
        for approval in (
            Approval.objects.filter(release__project_id=project.pk)
            .values(
                "release_id", "user_id", "user__username", "role", "manifest_digest", "created_at"
            )
            .order_by("created_at", "id")
        ):
            self.history[approval["release_id"]].approvals.append(dict(approval))
        for check in (
            CheckResult.objects.filter(release__project_id=project.pk)
            .values(
                "release_id",
                "check_name",
                "status",
                "manifest_digest",
                "updated_at",
                "summary",
                "valid_until",
            )
            .order_by("updated_at", "id")
        ):
            self.history[check["release_id"]].checks.append(dict(check))
        self.vetoes = list(
            Veto.objects.filter(project_id=project.pk)
            .values(
                "id",
                "release_id",
                "environment",
                "artifact_digest",
                "role",
                "user__username",
                "reason",
                "scope",
                "created_at",
                "lifted_at",
            )
            .order_by("created_at", "id")
        )

    def _vetoes_at(self, r: dict[str, Any], at: datetime) -> tuple[VetoFact, ...]:
        standing = []
        for v in self.vetoes:
            if v["created_at"] > at or (v["lifted_at"] is not None and v["lifted_at"] <= at):
                continue
            carries = v["scope"] == Veto.Scope.CARRY_FORWARD and (
                (v["environment"] == r["environment"] and v["release_id"] <= r["id"])
                or v["artifact_digest"] == r["artifact_digest"]
            )
            if v["release_id"] == r["id"] or carries:
                standing.append(
                    VetoFact(
                        id=v["id"],
                        release_id=v["release_id"],
                        project_id=self.project.pk,
                        role=v["role"],
                        by=v["user__username"],
                        reason=v["reason"],
                        since=v["created_at"],
                        scope=v["scope"],
                    )
                )
        return tuple(standing)

    def gate_at(self, h: _History, at: datetime) -> GateDecision:
        r = h.release
        evidence: dict[str, EvidenceFact] = {}
        for e in h.evidence:
            if e["attached_at"] <= at:
                evidence[e["kind"]] = EvidenceFact(e["kind"], e["digest"], e["reviewed_at"])
        state = h.state_at(at)
        facts = GateFacts(
            release=ReleaseFacts(
                id=r["id"],
                project_id=self.project.pk,
                project_slug=self.project.slug,
                version=r["version"],
                artifact_digest=r["artifact_digest"],
                environment=r["environment"],
                state=state,
                requester_id=r["requester_id"],
                promoted_at=r["promoted_at"] if state == Release.State.PROMOTED else None,
            ),
            policy=self.policy,
            evidence=tuple(evidence[k] for k in sorted(evidence)),
            approvals=tuple(
                ApprovalFact(
                    user_id=a["user_id"],
                    username=a["user__username"],
                    role=a["role"],
                    manifest_digest=a["manifest_digest"],
                    created_at=a["created_at"],
                )
                for a in h.approvals
                if a["created_at"] <= at
            ),
            vetoes=self._vetoes_at(r, at),
            checks=tuple(
                CheckFact(
                    check=c["check_name"],
                    status=c["status"],
                    manifest_digest=c["manifest_digest"],
                    updated_at=c["updated_at"],
                    summary=c["summary"],
                    valid_until=c["valid_until"],
                )
                for c in h.checks
                if c["updated_at"] <= at
            ),
        )
        # History keeps no advisory or waiver generations: a result stands, as when it was
        # recorded, for the inputs of its moment (the live gate binds them; see gate.py).
        inputs = facts.check_inputs
        facts = replace(
            facts,
            checks=tuple(replace(c, inputs_digest=inputs.get(c.check, "")) for c in facts.checks),
        )
        return evaluate_gate(facts, at)

    def cleared_at(self, h: _History, now: datetime) -> datetime | None:
        """The first moment after the request at which the gate cleared the release."""
        requested = h.release["submitted_at"]
        if requested is None:
            return None
        until = h.release["promoted_at"] or h.release["withdrawn_at"] or now
        moments: set[datetime] = {requested}
        moments.update(e["attached_at"] for e in h.evidence)
        moments.update(a["created_at"] for a in h.approvals)
        moments.update(c["updated_at"] for c in h.checks)
        moments.update(v["lifted_at"] for v in self.vetoes if v["lifted_at"] is not None)
        for moment in sorted(m for m in moments if requested <= m <= until):
            if self.gate_at(h, moment).cleared:
                return moment
        return None


def _lead_times(facts: _Facts, weeks: list[date], now: datetime) -> list[LeadTime]:
    to_cleared: dict[date, list[float]] = defaultdict(list)
    to_promoted: dict[date, list[float]] = defaultdict(list)
    requested: Counter[date] = Counter()
    for h in facts.history.values():
        submitted = h.release["submitted_at"]
        if submitted is None:
            continue
        week = week_of(submitted)
        requested[week] += 1
        cleared = facts.cleared_at(h, now)
        if cleared is not None:
            to_cleared[week].append(_hours(cleared - submitted))
        if h.release["promoted_at"] is not None:
            to_promoted[week].append(_hours(h.release["promoted_at"] - submitted))
    return [
        LeadTime(
            week=w,
            requested=requested[w],
            cleared=len(to_cleared[w]),
            cleared_median=median(to_cleared[w]),
            cleared_p90=p90(to_cleared[w]),
            promoted=len(to_promoted[w]),
            promoted_median=median(to_promoted[w]),
            promoted_p90=p90(to_promoted[w]),
        )
        for w in weeks
    ]


def _role_waits(facts: _Facts, since: datetime, now: datetime) -> list[RoleWait]:
    first_veto: dict[tuple[int, str], datetime] = {}
    for v in facts.vetoes:
        first_veto.setdefault((v["release_id"], v["role"]), v["created_at"])
    waits: dict[str, list[float]] = defaultdict(list)
    open_now: Counter[str] = Counter()
    for h in facts.history.values():
        r = h.release
        if r["submitted_at"] is None or r["submitted_at"] < since:
            continue
        for role in sorted(facts.policy.required_approvals):
            answers = [
                a["created_at"]
                for a in h.approvals
                if a["role"] == role and a["user_id"] != r["requester_id"]
            ]
            veto = first_veto.get((r["id"], role))
            if veto is not None:
                answers.append(veto)
            if answers:
                end = min(answers)
            elif r["state"] == Release.State.IN_REVIEW:
                end = now
                open_now[role] += 1
            else:
                continue  # withdrawn or promoted without an answer in this role: nothing waited
            waits[role].append(_hours(end - r["submitted_at"]))
    return [
        RoleWait(
            role=role,
            releases=len(waits[role]),
            still_waiting=open_now[role],
            median=median(waits[role]),
            p90=p90(waits[role]),
        )
        for role in sorted(facts.policy.required_approvals)
    ]


def _blockers(facts: _Facts, weeks: list[date], now: datetime) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {code.value: [0] * len(weeks) for code in BlockerCode}
    for i, week in enumerate(weeks):
        end = _week_end(week, now)
        for h in facts.history.values():
            if h.release["created_at"] > end or h.state_at(end) != Release.State.IN_REVIEW:
                continue
            for blocker in facts.gate_at(h, end).blockers:
                counts[blocker.code][i] += 1
    return {code: row for code, row in counts.items() if any(row)}


def _vetoes(facts: _Facts, weeks: list[date]) -> list[VetoWeek]:
    cast: Counter[date] = Counter(week_of(v["created_at"]) for v in facts.vetoes)
    lifted: Counter[date] = Counter(
        week_of(v["lifted_at"]) for v in facts.vetoes if v["lifted_at"] is not None
    )
    return [VetoWeek(week=w, cast=cast[w], lifted=lifted[w]) for w in weeks]


def _checks_failed(facts: _Facts, since: datetime) -> list[tuple[str, int]]:
    """Per required check: the releases on which it failed (or errored) at least once."""
    failed: dict[str, set[int]] = defaultdict(set)
    for h in facts.history.values():
        for c in h.checks:
            if c["status"] in FAILED_STATUSES and c["updated_at"] >= since:
                failed[c["check_name"]].add(h.release["id"])
    return [(check, len(failed[check])) for check in facts.policy.required_checks]


def _state_now(decision: GateDecision) -> str:
    codes = {b.code for b in decision.blockers}
    if BlockerCode.VETO in codes:
        return "vetoed"
    if BlockerCode.HOLD in codes:
        return "held"
    return "cleared" if decision.cleared else "blocked"


def _running(facts: _Facts, environments: list[str]) -> list[Running]:
    """The release promoted last per environment, with what the live gate says of it now."""
    latest: dict[str, _History] = {}
    for h in facts.history.values():
        r = h.release
        if r["promoted_at"] is None:
            continue
        held = latest.get(r["environment"])
        if held is None or r["promoted_at"] > held.release["promoted_at"]:
            latest[r["environment"]] = h
    ids = [h.release["id"] for h in latest.values()]
    loaded = {r.pk: r for r in gate_release_queryset().filter(pk__in=ids)} if ids else {}
    running = []
    for environment in environments:
        last = latest.get(environment)
        if last is None:
            running.append(Running(environment, None, None, "nothing", None))
            continue
        release = loaded[last.release["id"]]
        decision = gate_decision(release)
        running.append(
            Running(
                environment, release, last.release["promoted_at"], _state_now(decision), decision
            )
        )
    return running


def project_dashboard(project: Project, *, now: datetime | None = None) -> Dashboard:
    """The dashboard of one project over the last WEEKS weeks (the caller checked it may read)."""
    now = now or timezone.now()
    facts = _Facts(project)
    this_week = week_of(now)
    weeks = [this_week - timedelta(weeks=n) for n in range(WEEKS - 1, -1, -1)]
    since = datetime.combine(weeks[0], time.min, tzinfo=now.tzinfo)
    blockers = _blockers(facts, weeks, now)
    policy = project.current_policy
    assert policy is not None
    return Dashboard(
        weeks=weeks,
        lead_times=_lead_times(facts, weeks, now),
        role_waits=_role_waits(facts, since, now),
        blocker_codes=list(blockers),
        blockers=blockers,
        vetoes=_vetoes(facts, weeks),
        checks_failed=_checks_failed(facts, since),
        running=_running(facts, list(policy.environments)),
        releases=len(facts.history),
    )


@dataclass(frozen=True)
class ProjectGlance:
    project: Project
    in_review: int
    active_vetoes: int


def projects_at_a_glance(actor: Actor) -> list[ProjectGlance]:
    """Every project the person holds a role on, with what is open there (two queries)."""
    in_review = (
        Release.objects.filter(project_id=OuterRef("pk"), state=Release.State.IN_REVIEW)
        .order_by()
        .values("project_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    vetoes = (
        Veto.objects.filter(project_id=OuterRef("pk"), lifted_at__isnull=True)
        .order_by()
        .values("project_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    projects = Project.objects.filter(pk__in=visible_project_ids(actor)).annotate(
        in_review=Coalesce(Subquery(in_review), 0), active_vetoes=Coalesce(Subquery(vetoes), 0)
    )
    return [ProjectGlance(p, p.in_review, p.active_vetoes) for p in projects]
