"""What a policy change loosens: the pure comparison behind "who guards the guards".

A policy change that loosens the gate in any way waits for a second person (a `security` holder
other than its author); one that only tightens takes effect at once. A change that does both
waits as a whole: applying its tightening half alone would give the author a policy nobody asked
for, and splitting it silently would make the confirmer judge something other than what was
proposed.
"""

from releasegate.releases.policy import SEVERITIES, PolicySpec


def _removed(old: list[str], new: list[str]) -> list[str]:
    return sorted(set(old) - set(new))


def policy_weakenings(old: PolicySpec, new: PolicySpec) -> list[str]:
    """Every way `new` lets through what `old` would have blocked, in words; empty if none."""
    found: list[str] = []
    for item in _removed(old.required_items, new.required_items):
        found.append(f"checklist item {item} is no longer required")
    for check in _removed(old.required_checks, new.required_checks):
        found.append(f"check {check} is no longer required")
    for role in sorted(set(old.required_approvals) | set(new.required_approvals)):
        before, after = old.required_approvals.get(role, 0), new.required_approvals.get(role, 0)
        if after < before:
            found.append(f"{role} approvals required go from {before} to {after}")
    for role in _removed(old.veto_roles, new.veto_roles):
        found.append(f"{role} may no longer veto")
    if new.max_approval_age_days > old.max_approval_age_days:
        found.append(
            f"approvals expire after {new.max_approval_age_days} days "
            f"instead of {old.max_approval_age_days}"
        )
    if new.max_review_age_days > old.max_review_age_days:
        found.append(
            f"a pipeline review counts for {new.max_review_age_days} days "
            f"instead of {old.max_review_age_days}"
        )
    if SEVERITIES.index(new.vulnerability_threshold) > SEVERITIES.index(
        old.vulnerability_threshold
    ):
        found.append(
            f"the vulnerability threshold rises from {old.vulnerability_threshold} "
            f"to {new.vulnerability_threshold}"
        )
    for licence in _removed(old.license_denylist, new.license_denylist):
        found.append(f"licence {licence} is no longer denied")
    for environment in sorted(set(new.environments) - set(old.environments)):
        # A carried-forward veto follows project and environment: a new name starts clean.
        found.append(f"new environment {environment}")
    for severity in _removed(old.hold_severities, new.hold_severities):
        found.append(f"a {severity} production alert no longer holds a release")
    if new.break_glass_hours > old.break_glass_hours:
        found.append(
            f"a break-glass lasts {new.break_glass_hours} hours instead of {old.break_glass_hours}"
        )
    if new.break_glass_review_days > old.break_glass_review_days:
        found.append(
            f"the post-incident review of a break-glass is due after "
            f"{new.break_glass_review_days} days instead of {old.break_glass_review_days}"
        )
    if "external_ci" in old.required_checks and old.external_ci != new.external_ci:
        # Whoever chooses the CI system the check asks chooses its answer.
        found.append("the external CI system the external_ci check asks changes")
    return found
