"""What a gate policy may say, and the default every new project starts with."""

import re
from dataclasses import dataclass, field
from typing import Any

from releasegate.accounts.roles import REVIEWER_ROLES
from releasegate.errors import FieldError, InvalidInput
from releasegate.releases.models import EvidenceKind

ENVIRONMENT_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")

CHECK_NAMES: tuple[str, ...] = (
    "sbom_valid",
    "vulnerabilities",
    "licenses",
    "pipeline_findings",
    "data_flow",
    "monitoring_coverage",
    "least_privilege",
    "external_ci",
)
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
# An alert's severity label as alerting rules write it ("critical", "page", "P1"...).
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class PolicySpec:
    required_items: list[str] = field(default_factory=lambda: [k.value for k in EvidenceKind])
    required_checks: list[str] = field(
        default_factory=lambda: [c for c in CHECK_NAMES if c != "external_ci"]
    )
    required_approvals: dict[str, int] = field(default_factory=lambda: {"security": 1, "sme": 1})
    veto_roles: list[str] = field(default_factory=lambda: ["security", "sme"])
    max_approval_age_days: int = 14
    max_review_age_days: int = 180
    vulnerability_threshold: str = "high"
    license_denylist: list[str] = field(default_factory=lambda: ["AGPL-3.0-only", "SSPL-1.0"])
    external_ci: dict[str, Any] = field(default_factory=dict)
    environments: list[str] = field(default_factory=lambda: ["production", "staging"])
    hold_severities: list[str] = field(default_factory=lambda: ["critical"])
    break_glass_hours: int = 4
    break_glass_review_days: int = 7

    def as_fields(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _string_list(value: Any, name: str, allowed: set[str], errors: list[FieldError]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(FieldError(name, "must be a list of strings"))
        return []
    unknown = sorted(set(value) - allowed)
    if unknown:
        errors.append(
            FieldError(
                name, f"unknown: {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
            )
        )
    return list(dict.fromkeys(value))


def _age(value: Any, name: str, errors: list[FieldError]) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3650:
        errors.append(FieldError(name, "must be a whole number of days from 1 to 3650"))
        return 1
    return value


def policy_spec_from(data: dict[str, Any], base: PolicySpec | None = None) -> PolicySpec:
    """Build a validated spec from a (partial) mapping; anything not given keeps `base`'s value."""
    base = base or PolicySpec()
    merged = {**base.as_fields(), **data}
    errors: list[FieldError] = []
    unknown_keys = sorted(set(data) - set(base.as_fields()))
    for key in unknown_keys:
        errors.append(FieldError(key, "not a policy setting"))
    items = _string_list(
        merged["required_items"], "required_items", {k.value for k in EvidenceKind}, errors
    )
    checks = _string_list(merged["required_checks"], "required_checks", set(CHECK_NAMES), errors)
    veto_roles = _string_list(merged["veto_roles"], "veto_roles", set(REVIEWER_ROLES), errors)
    approvals = merged["required_approvals"]
    if not isinstance(approvals, dict) or not all(
        role in REVIEWER_ROLES and isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 10
        for role, n in approvals.items()
    ):
        errors.append(
            FieldError(
                "required_approvals",
                "must map security and/or sme to a number of approvals from 0 to 10",
            )
        )
        approvals = {}
    threshold = merged["vulnerability_threshold"]
    if threshold not in SEVERITIES:
        errors.append(
            FieldError("vulnerability_threshold", f"must be one of {', '.join(SEVERITIES)}")
        )
    denylist = merged["license_denylist"]
    if not isinstance(denylist, list) or not all(isinstance(v, str) and v for v in denylist):
        errors.append(FieldError("license_denylist", "must be a list of SPDX license ids"))
    external_ci = merged["external_ci"]
    if not isinstance(external_ci, dict):
        errors.append(FieldError("external_ci", "must be an object"))
    elif "external_ci" in checks and not external_ci.get("url"):
        errors.append(FieldError("external_ci", "the external_ci check needs a url to pull from"))
    environments = merged["environments"]
    if (
        not isinstance(environments, list)
        or not 1 <= len(environments) <= 20
        or not all(isinstance(e, str) and ENVIRONMENT_RE.match(e) for e in environments)
    ):
        errors.append(
            FieldError(
                "environments",
                "1 to 20 names of lowercase letters, digits, '_' or '-' (up to 64 each)",
            )
        )
        environments = []
    hold_severities = merged["hold_severities"]
    if (
        not isinstance(hold_severities, list)
        or len(hold_severities) > 10
        or not all(isinstance(v, str) and LABEL_VALUE_RE.match(v) for v in hold_severities)
    ):
        errors.append(
            FieldError(
                "hold_severities",
                "up to 10 severity label values (letters, digits, '.', '_' or '-', up to 64 each)",
            )
        )
        hold_severities = []
    break_glass_hours = merged["break_glass_hours"]
    if (
        not isinstance(break_glass_hours, int)
        or isinstance(break_glass_hours, bool)
        or not 1 <= break_glass_hours <= 72
    ):
        errors.append(FieldError("break_glass_hours", "must be a whole number of hours, 1 to 72"))
    review_days = _age(merged["break_glass_review_days"], "break_glass_review_days", errors)
    approval_age = _age(merged["max_approval_age_days"], "max_approval_age_days", errors)
    review_age = _age(merged["max_review_age_days"], "max_review_age_days", errors)
    if errors:
        raise InvalidInput("The policy is not valid.", code="invalid_policy", errors=errors)
    return PolicySpec(
        required_items=items,
        required_checks=checks,
        required_approvals={role: n for role, n in sorted(approvals.items()) if n > 0},
        veto_roles=veto_roles,
        max_approval_age_days=approval_age,
        max_review_age_days=review_age,
        vulnerability_threshold=threshold,
        license_denylist=list(denylist),
        external_ci=dict(external_ci),
        environments=list(dict.fromkeys(environments)),
        hold_severities=list(dict.fromkeys(hold_severities)),
        break_glass_hours=break_glass_hours,
        break_glass_review_days=review_days,
    )
