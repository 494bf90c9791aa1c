"""The default checks that read only the evidence documents and the policy: pure functions, each
returning an Outcome whose details record every reason it found."""

from typing import Any

from license_expression import (
    AND,
    OR,
    ExpressionError,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
    get_spdx_licensing,
)

from releasegate.checks.outcome import Outcome
from releasegate.checks.sbom import components, inspect_sbom

MAX_LISTED = 200
_LICENSING = get_spdx_licensing()


def _missing(kind: str) -> Outcome:
    return Outcome("failed", f"no {kind} evidence is attached", {"missing_evidence": kind})


def check_sbom_valid(sbom: dict[str, Any] | None) -> Outcome:
    if sbom is None:
        return _missing("sbom")
    report = inspect_sbom(sbom)
    details = {
        "format": report.format,
        "components": report.component_count,
        "problems": report.problems[:MAX_LISTED],
        "problem_count": len(report.problems),
        "ml_components": report.ml_components[:MAX_LISTED],
        "notes": report.notes[:MAX_LISTED],
    }
    if report.problems:
        first = report.problems[0]
        return Outcome(
            "failed",
            f"{report.format} does not validate against its schema: {len(report.problems)} "
            f"problems, first at {first['where']}: {first['problem']}"[:1000],
            details,
        )
    return Outcome(
        "passed", f"valid {report.format} with {report.component_count} components", details
    )


def _denied_in(expression: Any, denied: set[str]) -> tuple[bool, set[str]]:
    """(whether the expression can only be honoured by using a denied license, which ones)."""
    if isinstance(expression, LicenseWithExceptionSymbol):
        return _denied_in(expression.license_symbol, denied)
    if isinstance(expression, LicenseSymbol):
        names = {expression.key.lower(), *(a.lower() for a in expression.aliases)}
        hit = names & denied
        return bool(hit), {expression.key} if hit else set()
    parts = [_denied_in(arg, denied) for arg in expression.args]
    found = set().union(*(names for _, names in parts))
    if isinstance(expression, AND):
        return any(bad for bad, _ in parts), found
    if isinstance(expression, OR):
        return all(bad for bad, _ in parts), found
    return False, set()


def check_licenses(sbom: dict[str, Any] | None, denylist: list[str]) -> Outcome:
    """Fail when a component's license (an SPDX id or expression) cannot be honoured without a
    license on the deny-list: `A OR B` fails only if both are denied, `A AND B` if either is."""
    if sbom is None:
        return _missing("sbom")
    denied = {d.lower() for d in denylist}
    violations: list[dict[str, Any]] = []
    unparsed: list[dict[str, str]] = []
    unlicensed = 0
    parts = components(sbom)
    for component in parts:
        if not component.licenses:
            unlicensed += 1
        for text in component.licenses:
            try:
                expression = _LICENSING.parse(text)
            except ExpressionError as exc:
                # A free-text license name: deny it only when it is literally a denied id.
                if text.strip().lower() in denied:
                    violations.append(
                        {
                            "component": component.name,
                            "version": component.version,
                            "license": text,
                            "denied": [text.strip()],
                        }
                    )
                else:
                    unparsed.append(
                        {"component": component.name, "license": text, "why": str(exc)[:200]}
                    )
                continue
            if expression is None:
                continue
            bad, names = _denied_in(expression, denied)
            if bad:
                violations.append(
                    {
                        "component": component.name,
                        "version": component.version,
                        "license": text,
                        "denied": sorted(names),
                    }
                )
    details = {
        "denylist": denylist,
        "components": len(parts),
        "violations": violations[:MAX_LISTED],
        "violation_count": len(violations),
        "components_without_license": unlicensed,
        "unparsed": unparsed[:MAX_LISTED],
    }
    if violations:
        listed = ", ".join(f"{v['component']} ({v['license']})" for v in violations[:10])
        return Outcome(
            "failed", f"{len(violations)} components use denied licenses: {listed}"[:1000], details
        )
    return Outcome("passed", f"no denied license in {len(parts)} components", details)


def check_pipeline_findings(review: dict[str, Any] | None) -> Outcome:
    if review is None:
        return _missing("pipeline_review")
    blocking = [
        {"id": f.get("id"), "severity": f.get("severity"), "title": f.get("title")}
        for f in review.get("findings") or []
        if f.get("status") == "open" and f.get("severity") in {"high", "critical"}
    ]
    details = {"open_high_or_critical": blocking, "findings": len(review.get("findings") or [])}
    if blocking:
        ids = ", ".join(str(f["id"]) for f in blocking)
        return Outcome(
            "failed", f"{len(blocking)} open high/critical findings: {ids}"[:1000], details
        )
    return Outcome("passed", "no open high or critical finding", details)


CREDENTIALS = "credentials"


def _data_classes(flow: dict[str, Any]) -> set[str]:
    """A flow's data classes as people mean them: "Credentials" and " credentials " are the
    credentials class too, or one capital letter would let a secret leave."""
    classes = flow.get("data_classes") or []
    if not isinstance(classes, list):
        return set()
    return {c.strip().casefold() for c in classes if isinstance(c, str)}


def check_data_flow(flow_map: dict[str, Any] | None) -> Outcome:
    """Third-party flows of real customer data need an agreement; credentials never leave."""
    if flow_map is None:
        return _missing("data_flow_map")
    problems = []
    for index, flow in enumerate(flow_map.get("flows") or []):
        where = f"flows[{index}] {flow.get('source')} -> {flow.get('destination')}"
        if not flow.get("third_party"):
            continue
        if CREDENTIALS in _data_classes(flow):
            problems.append(
                {
                    "flow": where,
                    "rule": "credentials_to_third_party",
                    "reason": "credentials must never flow to a third party",
                }
            )
        agreement = flow.get("agreement_ref")
        if flow.get("customer_data") == "real" and not (
            isinstance(agreement, str) and agreement.strip()
        ):
            problems.append(
                {
                    "flow": where,
                    "rule": "agreement_missing",
                    "reason": "real customer data goes to a third party without an agreement_ref",
                }
            )
    details = {"problems": problems, "flows": len(flow_map.get("flows") or [])}
    if problems:
        listed = "; ".join(f"{p['flow']}: {p['reason']}" for p in problems[:5])
        return Outcome("failed", f"{len(problems)} data-flow problems: {listed}"[:1000], details)
    return Outcome("passed", "third-party flows are covered by agreements", details)


def check_monitoring_coverage(plan: dict[str, Any] | None) -> Outcome:
    if plan is None:
        return _missing("monitoring_plan")
    kinds = {s.get("kind") for s in plan.get("signals") or []}
    problems = [
        f"no {kind} signal" for kind in ("output_anomaly", "data_exposure") if kind not in kinds
    ]
    for key in ("owner", "escalation"):
        value = plan.get(key)
        if not (isinstance(value, str) and value.strip()):
            problems.append(f"no {key}")
    details = {"problems": problems, "signal_kinds": sorted(k for k in kinds if k)}
    if problems:
        return Outcome("failed", "monitoring plan lacks: " + ", ".join(problems), details)
    return Outcome(
        "passed",
        "output anomaly and data exposure are monitored, with owner and escalation",
        details,
    )


def check_least_privilege(review: dict[str, Any] | None) -> Outcome:
    """Write/admin permissions need a justification; an MCP server or tool without auth fails."""
    if review is None:
        return _missing("agent_access_review")
    problems = []
    for identity in review.get("identities") or []:
        name = identity.get("name")
        broad = sorted({"write", "admin"} & set(identity.get("permissions") or []))
        justification = identity.get("justification")
        if broad and not (isinstance(justification, str) and justification.strip()):
            problems.append(
                {
                    "identity": name,
                    "rule": "unjustified_permission",
                    "reason": f"{'/'.join(broad)} without a justification",
                }
            )
        if identity.get("kind") in {"mcp_server", "tool"} and identity.get("auth") == "none":
            problems.append(
                {
                    "identity": name,
                    "rule": "no_authentication",
                    "reason": f"{identity.get('kind')} with auth none",
                }
            )
    details = {"problems": problems, "identities": len(review.get("identities") or [])}
    if problems:
        listed = "; ".join(f"{p['identity']}: {p['reason']}" for p in problems[:5])
        return Outcome("failed", f"{len(problems)} access problems: {listed}"[:1000], details)
    return Outcome("passed", "every identity holds least privilege", details)
