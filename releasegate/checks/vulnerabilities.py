"""The `vulnerabilities` check: SBOM components against imported OSV advisories, offline.

Loading is one query per ecosystem and batch of package names (the affected table is indexed on
ecosystem and name), plus one for the project's waivers; the evaluation itself is pure.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q

from releasegate.checks.models import AffectedPackage, Waiver
from releasegate.checks.osv import (
    UNKNOWN_SEVERITY,
    NotComparable,
    at_or_above,
    fixed_versions,
    is_affected,
    purl_package,
)
from releasegate.checks.outcome import Outcome
from releasegate.checks.sbom import Component

NAME_BATCH = 1000
MAX_LISTED = 200


@dataclass(frozen=True)
class KnownAffected:
    """One affected package of one advisory, as the check needs it."""

    advisory_id: str
    aliases: tuple[str, ...]
    ecosystem: str
    name: str
    ranges: tuple[dict[str, Any], ...]
    versions: frozenset[str]
    severity: str  # empty when the advisory gives none


@dataclass(frozen=True)
class ActiveWaiver:
    id: int
    advisory_id: str
    expires_at: datetime


def load_affected(components: Iterable[Component]) -> list[KnownAffected]:
    """Every advisory entry naming a package of these components (withdrawn ones left out)."""
    names: dict[str, set[str]] = defaultdict(set)
    for component in components:
        found = purl_package(component.purl) if component.purl else None
        if found:
            names[found[0]].add(found[1])
    out: list[KnownAffected] = []
    for ecosystem, wanted in sorted(names.items()):
        ordered = sorted(wanted)
        for i in range(0, len(ordered), NAME_BATCH):
            rows = AffectedPackage.objects.filter(
                ecosystem=ecosystem,
                name__in=ordered[i : i + NAME_BATCH],
                advisory__withdrawn__isnull=True,
            ).values_list(
                "ecosystem",
                "name",
                "ranges",
                "versions",
                "severity",
                "advisory__osv_id",
                "advisory__aliases",
                "advisory__severity",
            )
            out.extend(
                KnownAffected(
                    advisory_id=osv_id,
                    aliases=tuple(aliases),
                    ecosystem=eco,
                    name=name,
                    ranges=tuple(ranges),
                    versions=frozenset(versions),
                    severity=severity or fallback,
                )
                for eco, name, ranges, versions, severity, osv_id, aliases, fallback in rows
            )
    return out


def load_waivers(project_id: int, at: datetime) -> list[ActiveWaiver]:
    return [
        ActiveWaiver(id=w.pk, advisory_id=w.advisory_id, expires_at=w.expires_at)
        for w in Waiver.objects.filter(
            Q(project_id=project_id, revoked_at__isnull=True, expires_at__gt=at)
        ).only("advisory_id", "expires_at")
    ]


def evaluate_vulnerabilities(
    *,
    components: list[Component],
    affected: list[KnownAffected],
    waivers: list[ActiveWaiver],
    threshold: str,
) -> Outcome:
    """Fail when a component is affected by an advisory at or above `threshold` that no active
    waiver covers. An advisory without a severity counts as high."""
    by_package: dict[tuple[str, str], list[KnownAffected]] = defaultdict(list)
    for entry in affected:
        by_package[(entry.ecosystem, entry.name)].append(entry)
    waiver_for: dict[str, ActiveWaiver] = {}
    for waiver in waivers:
        held = waiver_for.get(waiver.advisory_id)
        if held is None or waiver.expires_at > held.expires_at:
            waiver_for[waiver.advisory_id] = waiver
    failing: list[dict[str, Any]] = []
    below: list[dict[str, Any]] = []
    waived: list[dict[str, Any]] = []
    not_compared: list[dict[str, str]] = []
    without_purl = 0
    used_waivers: list[ActiveWaiver] = []
    for component in components:
        found = purl_package(component.purl) if component.purl else None
        if found is None:
            without_purl += 1
            continue
        ecosystem, name, version = found
        for entry in by_package.get((ecosystem, name), ()):
            try:
                hit = is_affected(ecosystem, version, entry.ranges, entry.versions)
            except NotComparable as exc:
                not_compared.append(
                    {"advisory": entry.advisory_id, "purl": component.purl, "why": str(exc)}
                )
                continue
            if not hit:
                continue
            finding = {
                "advisory": entry.advisory_id,
                "aliases": list(entry.aliases),
                "severity": entry.severity or UNKNOWN_SEVERITY,
                "severity_given": bool(entry.severity),
                "component": component.name,
                "version": version,
                "purl": component.purl,
                "fixed": fixed_versions(ecosystem, version, entry.ranges),
            }
            cover = waiver_for.get(entry.advisory_id)
            if not at_or_above(entry.severity, threshold):
                below.append(finding)
            elif cover is not None:
                used_waivers.append(cover)
                waived.append(
                    {**finding, "waiver": cover.id, "expires_at": cover.expires_at.isoformat()}
                )
            else:
                failing.append(finding)
    details: dict[str, Any] = {
        "threshold": threshold,
        "components": len(components),
        "components_without_matchable_purl": without_purl,
        "failing": failing[:MAX_LISTED],
        "failing_count": len(failing),
        "waived": waived[:MAX_LISTED],
        "waived_count": len(waived),
        "below_threshold": below[:MAX_LISTED],
        "below_threshold_count": len(below),
        "not_compared": not_compared[:MAX_LISTED],
    }
    valid_until = min((w.expires_at for w in used_waivers), default=None)
    if failing:
        ids = sorted({f["advisory"] for f in failing})
        parts = sorted({f"{f['component']}@{f['version']}" for f in failing})
        return Outcome(
            "failed",
            f"{len(ids)} advisories at or above {threshold} affect {len(parts)} components: "
            f"{', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}",
            details,
            valid_until,
        )
    summary = f"no advisory at or above {threshold} in {len(components)} components"
    if waived:
        summary += f" ({len(waived)} waived)"
    return Outcome("passed", summary, details, valid_until)
