"""A check result's findings, read from its `details` (written by releasegate.checks.rules,
.vulnerabilities and .external_ci): the one reading the release page, the API and, through the
API, the command line all show, so they cannot tell different stories.

Pure functions over a result already loaded; no queries.
"""

from dataclasses import dataclass, field
from typing import Any

from releasegate.checks.osv import UNKNOWN_SEVERITY

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "moderate": 2, "low": 1}


@dataclass(frozen=True)
class Finding:
    """One thing a check found. `kind` says which fields `data` holds (docs/api.md lists them);
    `counts` whether it counts against the gate (it makes the check fail); `text` is the one
    line a person reads."""

    kind: str
    counts: bool
    text: str
    severity: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "counts": self.counts,
            "text": self.text,
            "severity": self.severity,
            **self.data,
        }


@dataclass(frozen=True)
class Findings:
    """Every finding a result lists, worst first, and how many that count against the gate it
    found but did not list (a check lists at most 200 of each kind)."""

    listed: list[Finding]
    unlisted_counting: int = 0

    @property
    def counting(self) -> list[Finding]:
        return [f for f in self.listed if f.counts]


def _rows(details: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows = details.get(key)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _count(details: dict[str, Any], key: str, listed: int) -> int:
    total = details.get(key)
    return max(0, total - listed) if isinstance(total, int) else 0


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _severity(value: Any) -> str:
    return _text(value).lower()


def severity_rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity or UNKNOWN_SEVERITY, 3)


# vulnerabilities: each advisory matched to a component, failing, waived or below the threshold.
_ADVISORY_STATUSES = ("failing", "waived", "below_threshold")


def _advisory(row: dict[str, Any], status: str) -> Finding:
    severity = _severity(row.get("severity")) or UNKNOWN_SEVERITY
    fixed = [str(v) for v in row.get("fixed") or [] if isinstance(v, str | int)]
    waiver = (
        {"id": row.get("waiver"), "expires_at": row.get("expires_at")}
        if status == "waived"
        else None
    )
    words = [
        _text(row.get("advisory")),
        _text(row.get("component")),
        _text(row.get("version")),
        severity.upper(),
    ]
    words.append(f"fixed in {', '.join(fixed)}" if fixed else "no fixed version known")
    if waiver is not None:
        words.append(f"(waived until {_text(waiver['expires_at'])[:10]})")
    elif status == "below_threshold":
        words.append("(below the threshold)")
    return Finding(
        kind="advisory",
        counts=status == "failing",
        text=" ".join(w for w in words if w),
        severity=severity,
        data={
            "advisory": _text(row.get("advisory")),
            "aliases": [str(a) for a in row.get("aliases") or []],
            "component": _text(row.get("component")),
            "version": _text(row.get("version")),
            "purl": _text(row.get("purl")),
            "severity_given": bool(row.get("severity_given", True)),
            "fixed_versions": fixed,
            "status": status,
            "waiver": waiver,
        },
    )


def _vulnerabilities(details: dict[str, Any]) -> Findings:
    listed = [
        _advisory(row, status) for status in _ADVISORY_STATUSES for row in _rows(details, status)
    ]
    listed.sort(key=lambda f: (not f.counts, -severity_rank(f.severity)))
    failing = len(_rows(details, "failing"))
    return Findings(listed, _count(details, "failing_count", failing))


def _licenses(details: dict[str, Any]) -> Findings:
    rows = _rows(details, "violations")
    listed = [
        Finding(
            kind="license",
            counts=True,
            text=f"{_text(r.get('component'))} {_text(r.get('version'))} uses "
            f"{_text(r.get('license'))} (denied: {', '.join(map(str, r.get('denied') or []))})",
            data={
                "component": _text(r.get("component")),
                "version": _text(r.get("version")),
                "license": _text(r.get("license")),
                "denied": [str(d) for d in r.get("denied") or []],
            },
        )
        for r in rows
    ]
    return Findings(listed, _count(details, "violation_count", len(rows)))


def _pipeline_findings(details: dict[str, Any]) -> Findings:
    listed = [
        Finding(
            kind="pipeline_finding",
            counts=True,
            text=f"{_text(r.get('id'))} {_severity(r.get('severity')).upper()} open: "
            f"{_text(r.get('title'))}",
            severity=_severity(r.get("severity")),
            data={"id": _text(r.get("id")), "title": _text(r.get("title"))},
        )
        for r in _rows(details, "open_high_or_critical")
    ]
    listed.sort(key=lambda f: -severity_rank(f.severity))
    return Findings(listed)


def _problems(details: dict[str, Any], kind: str, subject: str) -> Findings:
    """data_flow (`flow`) and least_privilege (`identity`): a rule broken, with its reason."""
    return Findings(
        [
            Finding(
                kind=kind,
                counts=True,
                text=f"{_text(r.get(subject))}: {_text(r.get('reason'))}",
                data={
                    subject: _text(r.get(subject)),
                    "rule": _text(r.get("rule")),
                    "reason": _text(r.get("reason")),
                },
            )
            for r in _rows(details, "problems")
        ]
    )


def _monitoring(details: dict[str, Any]) -> Findings:
    problems = details.get("problems")
    return Findings(
        [
            Finding(kind="monitoring_gap", counts=True, text=f"the plan has {p}", data={"gap": p})
            for p in (problems if isinstance(problems, list) else [])
            if isinstance(p, str)
        ]
    )


def _schema(details: dict[str, Any]) -> Findings:
    rows = _rows(details, "problems")
    listed = [
        Finding(
            kind="schema_problem",
            counts=True,
            text=f"{_text(r.get('where'))}: {_text(r.get('problem'))}",
            data={"where": _text(r.get("where")), "problem": _text(r.get("problem"))},
        )
        for r in rows
    ]
    return Findings(listed, _count(details, "problem_count", len(rows)))


GITHUB_PASSING = {"success", "neutral", "skipped"}


def _external_ci(details: dict[str, Any]) -> Findings:
    if details.get("format") == "gitlab" and isinstance(details.get("status"), str):
        status = details["status"]
        return Findings(
            [
                Finding(
                    kind="ci_pipeline",
                    counts=status != "success",
                    text=f"the pipeline is {status}",
                    data={"status": status, "web_url": _text(details.get("web_url"))},
                )
            ]
        )
    listed = [
        Finding(
            kind="ci_run",
            counts=r.get("status") != "completed" or r.get("conclusion") not in GITHUB_PASSING,
            text=f"{_text(r.get('name'))}: {_text(r.get('conclusion') or r.get('status'))}",
            data={
                "name": _text(r.get("name")),
                "status": _text(r.get("status")),
                "conclusion": _text(r.get("conclusion")),
            },
        )
        for r in _rows(details, "check_runs")
    ]
    listed.sort(key=lambda f: not f.counts)
    return Findings(listed)


_READERS = {
    "vulnerabilities": _vulnerabilities,
    "licenses": _licenses,
    "pipeline_findings": _pipeline_findings,
    "data_flow": lambda d: _problems(d, "data_flow", "flow"),
    "least_privilege": lambda d: _problems(d, "access", "identity"),
    "monitoring_coverage": _monitoring,
    "sbom_valid": _schema,
    "external_ci": _external_ci,
}


def check_findings(check: str, details: Any) -> Findings:
    """The findings of one result of `check`, from its details (empty for a result without any,
    such as one pushed by CI or one that could not run)."""
    if not isinstance(details, dict):
        return Findings([])
    missing = details.get("missing_evidence")
    if isinstance(missing, str):
        return Findings(
            [
                Finding(
                    kind="missing_evidence",
                    counts=True,
                    text=f"no {missing} evidence is attached",
                    data={"evidence": missing},
                )
            ]
        )
    reader = _READERS.get(check)
    return reader(details) if reader is not None else Findings([])
