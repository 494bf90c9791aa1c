"""A release that fails every default check on real inputs: the Laravel SBOM of the shared data
with six Python packages at versions that 34 advisories of the real PyPA database affect (33 at or
above the default threshold, high), and evidence documents that break each rule once. For the
API, page and command-line tests."""

from typing import Any

from releasegate.accounts.actors import Actor
from releasegate.checks.advisories import advisories_import
from releasegate.checks.tasks import run_check
from releasegate.releases.models import Release
from releasegate.releases.services import evidence_attach, release_submit
from tests.builders import DEFAULT_CHECKS, attach_all, document, make_release
from tests.checks.test_sbom import real
from tests.checks.test_vulnerabilities import PYPA_ZIP
from tests.conftest import missing

# PyPA advisories (not withdrawn) that affect each: 25 + 2 + 2 + 2 + 2 + 1, one of urllib3's
# medium (its CVSS vector), every other one high (no severity given counts as high).
PYTHON_PACKAGES = (
    ("django", "3.2.0"),
    ("urllib3", "1.26.5"),
    ("requests", "2.19.0"),
    ("jinja2", "2.10"),
    ("pyyaml", "5.3"),
    ("flask", "2.2.4"),
)
FAILING_ADVISORIES = 33
BELOW_THRESHOLD = 1


def import_pypa() -> None:
    if not PYPA_ZIP.exists():
        missing(f"{PYPA_ZIP} is not there (the shared data beside the project)")
    advisories_import(path=PYPA_ZIP)


def failing_sbom() -> dict[str, Any]:
    sbom = real("laravel-7.12.0.cdx-1.4.json")
    sbom["components"] += [
        {"type": "library", "name": name, "version": version, "purl": f"pkg:pypi/{name}@{version}"}
        for name, version in PYTHON_PACKAGES
    ]
    sbom["components"] += [
        {
            "type": "library",
            "name": "ghostscript-wrapper",
            "version": "9.5",
            "licenses": [{"license": {"id": "AGPL-3.0-only"}}],
        },
        # Not a CycloneDX component type: the schema says so, nothing else cares.
        {"type": "gadget", "name": "label-printer", "version": "1"},
    ]
    return sbom


def failing_documents() -> dict[str, dict[str, Any]]:
    review = document("pipeline_review")
    review["findings"].append(
        {"id": "PR-7", "severity": "critical", "title": "Model registry writable", "status": "open"}
    )
    flows = document("data_flow_map")
    flows["flows"].append(
        {
            "source": "agent",
            "destination": "analytics vendor",
            "data_classes": ["credentials"],
            "third_party": True,
            "customer_data": "synthetic",
            "cached": False,
            "agreement_ref": "DPA-9",
        }
    )
    plan = document("monitoring_plan")
    plan["signals"] = [s for s in plan["signals"] if s["kind"] != "data_exposure"]
    access = document("agent_access_review")
    access["identities"][0]["permissions"] = ["read", "admin"]
    return {
        "sbom": failing_sbom(),
        "pipeline_review": review,
        "data_flow_map": flows,
        "monitoring_plan": plan,
        "agent_access_review": access,
    }


def run_checks(release: Release, checks: tuple[str, ...] = DEFAULT_CHECKS) -> None:
    """The workers' task, in this process, on the release's current evidence."""
    release.refresh_from_db()
    for check in checks:
        run_check.apply(args=(release.pk, check, release.manifest_digest)).get()


def failing_release(project: Any, requester: Any, version: str = "2.0.0") -> Release:
    """In review, every default check run and failed, with the findings above."""
    import_pypa()
    release = make_release(project, requester, version=version)
    attach_all(release, requester)
    actor = Actor.for_user(requester)
    for kind, body in failing_documents().items():
        evidence_attach(release=release, actor=actor, kind=kind, document=body)
    release_submit(release=release, actor=actor)
    run_checks(release)
    release.refresh_from_db()
    return release
