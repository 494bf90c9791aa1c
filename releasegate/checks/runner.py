"""Run one check of one release on the evidence named by a manifest digest.

The runner loads the current evidence and recomputes its manifest digest: if it is not the one the
task was enqueued for, the evidence changed meanwhile and this run is stale (the newer manifest has
its own run), so a result is only ever recorded for the evidence it was computed on.
"""

from typing import Any

from django.db.models import Case, F, JSONField, When
from django.utils import timezone

from releasegate.checks.external_ci import check_external_ci
from releasegate.checks.models import Advisory
from releasegate.checks.outcome import Outcome
from releasegate.checks.rules import (
    check_data_flow,
    check_least_privilege,
    check_licenses,
    check_monitoring_coverage,
    check_pipeline_findings,
    check_sbom_valid,
)
from releasegate.checks.sbom import components
from releasegate.checks.selectors import inputs_digest_of, release_for_checks
from releasegate.checks.vulnerabilities import (
    evaluate_vulnerabilities,
    load_affected,
    load_waivers,
)
from releasegate.releases.evidence import manifest_digest
from releasegate.releases.models import Evidence, GatePolicy, Release
from releasegate.releases.selectors import GenerationsRelease

# The evidence item each check reads (external_ci reads none).
CHECK_EVIDENCE = {
    "sbom_valid": "sbom",
    "vulnerabilities": "sbom",
    "licenses": "sbom",
    "pipeline_findings": "pipeline_review",
    "data_flow": "data_flow_map",
    "monitoring_coverage": "monitoring_plan",
    "least_privilege": "agent_access_review",
}


class StaleManifest(Exception):
    """The release's evidence is no longer the one this run was asked to check."""


def _vulnerabilities(release: Release, policy: GatePolicy, sbom: dict[str, Any] | None) -> Outcome:
    if sbom is None:
        return Outcome("failed", "no sbom evidence is attached", {"missing_evidence": "sbom"})
    if not Advisory.objects.exists():
        # An empty advisory database would pass every SBOM: fail closed instead.
        return Outcome(
            "error",
            "no advisories are imported: run `manage.py import_osv PATH` on the workers' database",
            {"advisories": 0},
        )
    parts = components(sbom)
    return evaluate_vulnerabilities(
        components=parts,
        affected=load_affected(parts),
        waivers=load_waivers(release.project_id, timezone.now()),
        threshold=policy.vulnerability_threshold,
    )


def compute_check(
    *, release_id: int, check: str, manifest: str, release: GenerationsRelease | None = None
) -> tuple[Outcome, str]:
    """The check's outcome on `manifest`, and the digest of the inputs it was computed from.

    `release`, when given, is the release as `release_for_checks` loaded it (a task loads it once
    for its claim and its computation): the outcome and the digest both come from that one read.
    """
    # The generations are read before the advisories and waivers: a change committed in between
    # leaves the result under the older generation, which the gate then does not count.
    if release is None:
        release = release_for_checks(release_id)
    # Every current item's digest (for the manifest), and the document of the one item this check
    # reads only: the others' JSON is neither sent nor decoded.
    needed = CHECK_EVIDENCE.get(check)
    rows = (
        Evidence.objects.filter(release_id=release_id, is_current=True)
        .annotate(
            needed_document=Case(
                When(kind=needed, then=F("document")), default=None, output_field=JSONField()
            )
        )
        .values_list("kind", "digest", "needed_document")
    )
    digests = {}
    docs: dict[str, Any] = {}
    for kind, digest, document in rows:
        digests[kind] = digest
        if kind == needed:
            docs[kind] = document
    computed = manifest_digest(artifact_digest=release.artifact_digest, evidence=digests)
    if computed != manifest:
        raise StaleManifest(f"release {release_id} is now at {computed}, not {manifest}")
    policy = release.project.current_policy
    if policy is None:
        return Outcome("error", "the project has no gate policy"), ""
    return _outcome(release, policy, docs, check), inputs_digest_of(release, check, manifest)


def _outcome(release: Release, policy: GatePolicy, docs: dict[str, Any], check: str) -> Outcome:
    match check:
        case "sbom_valid":
            return check_sbom_valid(docs.get("sbom"))
        case "vulnerabilities":
            return _vulnerabilities(release, policy, docs.get("sbom"))
        case "licenses":
            return check_licenses(docs.get("sbom"), list(policy.license_denylist))
        case "pipeline_findings":
            return check_pipeline_findings(docs.get("pipeline_review"))
        case "data_flow":
            return check_data_flow(docs.get("data_flow_map"))
        case "monitoring_coverage":
            return check_monitoring_coverage(docs.get("monitoring_plan"))
        case "least_privilege":
            return check_least_privilege(docs.get("agent_access_review"))
        case "external_ci":
            return check_external_ci(
                dict(policy.external_ci),
                version=release.version,
                artifact_digest=release.artifact_digest,
            )
    return Outcome("error", f"unknown check {check!r}")
