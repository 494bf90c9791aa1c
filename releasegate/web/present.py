"""Evidence documents turned into what a person reads: tables, counts, and the differences from
the project's previous release. Pure functions over documents already loaded; no queries."""

from dataclasses import dataclass, field
from typing import Any

from releasegate.checks.findings import SEVERITY_RANK, Finding, check_findings


@dataclass
class ItemDiff:
    kind: str
    status: str  # "new", "removed", "unchanged" or "changed"
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    other_changes: bool = False  # top-level fields (owner, reviewer, ...) or attachments differ


def _rows(document: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(document, dict):
        return []
    rows = document.get(key)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def sbom_components(document: Any) -> list[dict[str, Any]]:
    """Every component (CycloneDX, nested ones included) or package (SPDX) of an SBOM."""
    if not isinstance(document, dict):
        return []
    if "spdxVersion" in document:
        return [
            {"name": p.get("name", ""), "version": p.get("versionInfo", ""), "type": "package"}
            for p in _rows(document, "packages")
        ]
    found: list[dict[str, Any]] = []
    stack = list(reversed(_rows(document, "components")))
    while stack:
        component = stack.pop()
        found.append(component)
        stack.extend(reversed(_rows(component, "components")))
    return found


def sbom_format(document: Any) -> str:
    if isinstance(document, dict) and "spdxVersion" in document:
        return str(document.get("spdxVersion"))
    if isinstance(document, dict):
        return f"CycloneDX {document.get('specVersion', '?')}"
    return "unknown"


def _component_key(component: dict[str, Any]) -> str:
    group = component.get("group")
    name = str(component.get("name", ""))
    return f"{group}/{name}" if group else name


def _label(row: dict[str, Any], kind: str) -> str:
    if kind == "flows":
        return f"{row.get('source', '?')} → {row.get('destination', '?')}"
    return str(row.get("id") or row.get("name") or "?")


def _keyed(rows: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {_label(row, kind): row for row in rows}


def _compare(before: dict[str, Any], after: dict[str, Any], diff: ItemDiff) -> None:
    diff.added = sorted(k for k in after if k not in before)
    diff.removed = sorted(k for k in before if k not in after)
    diff.changed = sorted(k for k in after if k in before and after[k] != before[k])


ROW_KEYS = {
    "pipeline_review": "findings",
    "data_flow_map": "flows",
    "monitoring_plan": "signals",
    "agent_access_review": "identities",
}


def evidence_diff(kind: str, before: Any, after: Any) -> ItemDiff:
    """What changed in one item between the previous release's evidence and this one's."""
    if before is None and after is None:
        return ItemDiff(kind, "unchanged")
    if before is None:
        return ItemDiff(kind, "new")
    if after is None:
        return ItemDiff(kind, "removed")
    diff = ItemDiff(kind, "unchanged")
    if kind == "sbom":
        versions_before = {
            _component_key(c): str(c.get("version", "")) for c in sbom_components(before)
        }
        versions_after = {
            _component_key(c): str(c.get("version", "")) for c in sbom_components(after)
        }
        _compare(versions_before, versions_after, diff)
        diff.changed = [f"{k} {versions_before[k]} → {versions_after[k]}" for k in diff.changed]
    else:
        rows_key = ROW_KEYS[kind]
        _compare(
            _keyed(_rows(before, rows_key), rows_key),
            _keyed(_rows(after, rows_key), rows_key),
            diff,
        )
        rest_before = {k: v for k, v in before.items() if k != rows_key}
        rest_after = {k: v for k, v in after.items() if k != rows_key}
        diff.other_changes = rest_before != rest_after
    if diff.added or diff.removed or diff.changed or diff.other_changes:
        diff.status = "changed"
    return diff


@dataclass
class VulnerabilitySummary:
    counts: list[tuple[str, int]]  # by severity, worst first, over every listed finding
    failing: int
    waived: int
    below_threshold: int
    threshold: str
    worst: list[Finding]


def vulnerability_summary(details: Any, limit: int = 5) -> VulnerabilitySummary | None:
    """Counts by severity and the worst findings of the `vulnerabilities` check, from the same
    reading of its details as the API's (`releasegate.checks.findings`)."""
    if not isinstance(details, dict) or "failing" not in details:
        return None
    found = check_findings("vulnerabilities", details).listed
    counts: dict[str, int] = {}
    for finding in found:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: -SEVERITY_RANK.get(kv[0], 0))
    return VulnerabilitySummary(
        counts=ordered,
        failing=int(details.get("failing_count") or 0),
        waived=sum(1 for f in found if f.data["status"] == "waived"),
        below_threshold=int(details.get("below_threshold_count") or 0),
        threshold=str(details.get("threshold") or ""),
        worst=found[:limit],
    )


def open_findings(document: Any) -> list[dict[str, Any]]:
    rows = [f for f in _rows(document, "findings") if f.get("status") == "open"]
    return sorted(rows, key=lambda f: -SEVERITY_RANK.get(str(f.get("severity")), 0))
