"""GET /api/v1/releases/<id> lists what each current check found, on real data: every failing
advisory of the real PyPA database matched in a real SBOM, not the ten its summary names, and
the findings of every other check; the same list the release page shows, in the same queries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from releasegate.checks.waivers import advisory_waive
from releasegate.releases.services import policy_change
from tests.api.conftest import Caller, personal_token, service_token
from tests.builders import DEFAULT_CHECKS, submitted_release
from tests.checks.ci_server import FakeCI
from tests.checks.real_findings import (
    BELOW_THRESHOLD,
    FAILING_ADVISORIES,
    PYTHON_PACKAGES,
    failing_release,
    run_checks,
)
from tests.conftest import make_personas

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing(personas):
    return failing_release(personas.project, personas.requester)


def _checks(caller: Caller, release) -> dict:
    response = caller.request("GET", f"/api/v1/releases/{release.pk}")
    assert response.status_code == 200, response.content
    return {c["check"]: c for c in response.json()["checks"] if c["current"]}


def test_every_failing_advisory_is_listed_with_component_version_severity_aliases_and_fix(
    personas, person, failing
):
    vulnerabilities = _checks(person("auditor"), failing)["vulnerabilities"]

    assert vulnerabilities["status"] == "failed"
    # The summary names ten; the findings name them all.
    assert vulnerabilities["summary"].count("PYSEC-") == 10
    counting = [f for f in vulnerabilities["findings"] if f["counts"]]
    assert len(counting) == FAILING_ADVISORIES == 33
    assert vulnerabilities["unlisted_counting"] == 0
    assert len({(f["advisory"], f["purl"]) for f in counting}) == 33
    assert {f["component"] for f in counting} == {name for name, _ in PYTHON_PACKAGES}
    for finding in counting:
        assert finding["kind"] == "advisory"
        assert (finding["status"], finding["waiver"]) == ("failing", None)
        assert finding["severity"] == "high"
        assert finding["aliases"], finding
        assert finding["text"].startswith(
            f"{finding['advisory']} {finding['component']} {finding['version']} HIGH"
        )
    by_id = {(f["advisory"], f["component"]): f for f in counting}
    # CVE-2023-32681: Proxy-Authorization leaked on redirect, 2.3.0 <= v < 2.31.0.
    leak = by_id[("PYSEC-2023-74", "requests")]
    assert leak["version"] == "2.19.0" and leak["purl"] == "pkg:pypi/requests@2.19.0"
    assert "CVE-2023-32681" in leak["aliases"]
    assert leak["fixed_versions"] == ["2.31.0"]
    assert leak["text"] == "PYSEC-2023-74 requests 2.19.0 HIGH fixed in 2.31.0"
    # The one below the threshold is listed too, and does not count.
    below = [f for f in vulnerabilities["findings"] if not f["counts"]]
    assert [(f["status"], f["severity"]) for f in below] == [("below_threshold", "medium")]
    assert len(below) == BELOW_THRESHOLD


def test_a_waived_advisory_shows_its_waiver_and_stops_counting(personas, person, failing):
    expires = timezone.now() + timedelta(days=30)
    waiver = advisory_waive(
        project=personas.project,
        actor=personas.actor("security"),
        advisory_id="CVE-2023-32681",  # an alias of PYSEC-2023-74
        reason="requests only talks to our own proxy",
        expires_at=expires,
    )
    run_checks(failing, ("vulnerabilities",))

    vulnerabilities = _checks(person("auditor"), failing)["vulnerabilities"]
    [waived] = [f for f in vulnerabilities["findings"] if f["status"] == "waived"]
    assert waived["advisory"] == "PYSEC-2023-74" and waived["counts"] is False
    assert waived["waiver"]["id"] == waiver.pk
    assert waived["waiver"]["expires_at"][:19] == expires.isoformat()[:19]
    assert waived["text"].endswith(f"(waived until {expires.date().isoformat()})")
    assert sum(f["counts"] for f in vulnerabilities["findings"]) == FAILING_ADVISORIES - 1


def test_every_other_check_lists_its_structured_findings(personas, person, failing):
    checks = _checks(person("auditor"), failing)

    def only(check: str) -> dict:
        assert checks[check]["status"] == "failed"
        [finding] = checks[check]["findings"]
        assert finding["counts"] is True
        return finding

    licenses = only("licenses")
    assert (licenses["kind"], licenses["component"], licenses["version"]) == (
        "license",
        "ghostscript-wrapper",
        "9.5",
    )
    assert licenses["denied"] == ["AGPL-3.0-only"]
    pipeline = only("pipeline_findings")
    assert (pipeline["kind"], pipeline["id"], pipeline["severity"]) == (
        "pipeline_finding",
        "PR-7",
        "critical",
    )
    assert pipeline["title"] == "Model registry writable"
    flow = only("data_flow")
    assert (flow["kind"], flow["rule"]) == ("data_flow", "credentials_to_third_party")
    assert flow["flow"] == "flows[2] agent -> analytics vendor"
    access = only("least_privilege")
    assert (access["kind"], access["identity"], access["rule"]) == (
        "access",
        "ticket-triage-agent",
        "unjustified_permission",
    )
    gap = only("monitoring_coverage")
    assert (gap["kind"], gap["gap"]) == ("monitoring_gap", "no data_exposure signal")
    schema = only("sbom_valid")
    assert schema["kind"] == "schema_problem"
    assert schema["where"].endswith(".type") and '"gadget"' in schema["problem"]


def test_external_ci_findings_name_the_runs_that_did_not_pass(personas, person):
    ci = FakeCI().start()
    try:
        ci.body = {
            "check_runs": [
                {"name": "unit", "status": "completed", "conclusion": "success"},
                {"name": "e2e", "status": "completed", "conclusion": "failure"},
            ]
        }
        policy_change(
            project=personas.project,
            actor=personas.actor("admin"),
            changes={
                "required_checks": [*DEFAULT_CHECKS, "external_ci"],
                "external_ci": {"url": ci.url, "format": "github"},
            },
        )
        release = submitted_release(personas.project, personas.requester)
        run_checks(release, ("external_ci",))
    finally:
        ci.stop()

    external = _checks(person("auditor"), release)["external_ci"]
    assert external["status"] == "failed"
    assert [(f["kind"], f["name"], f["conclusion"], f["counts"]) for f in external["findings"]] == [
        ("ci_run", "e2e", "failure", True),
        ("ci_run", "unit", "success", False),
    ]


@pytest.mark.postgres
def test_release_detail_takes_the_same_queries_whatever_the_number_of_findings(
    personas, person, failing, django_assert_num_queries
):
    plain = submitted_release(personas.project, personas.requester, version="1.0.0")
    caller = person("auditor")
    caller.request("GET", f"/api/v1/releases/{plain.pk}")
    # token, release, the auditor's roles, evidence, checks, approvals, vetoes
    with django_assert_num_queries(7):
        assert caller.request("GET", f"/api/v1/releases/{plain.pk}").json()["checks"] == []
    with django_assert_num_queries(7):
        body = caller.request("GET", f"/api/v1/releases/{failing.pk}").json()
    assert sum(len(c["findings"]) for c in body["checks"]) == 33 + 1 + 6


def test_findings_are_seen_only_by_who_may_see_the_release(personas, failing):
    other = make_personas("other-project", prefix="o-")
    every = ("gate:read", "releases:write", "checks:write", "releases:promote")
    outsider = Caller("outsider", token=personal_token(personas.outsider))
    elsewhere = Caller("other", token=service_token(personas, *every, project=other.project)[1])
    unknown = Caller("auditor", token=personal_token(personas.auditor)).request(
        "GET", f"/api/v1/releases/{failing.pk + 1000}"
    )
    for caller in (outsider, elsewhere):
        answer = caller.request("GET", f"/api/v1/releases/{failing.pk}")
        assert answer.status_code == 404
        assert answer.json() == unknown.json()
    ci = Caller("ci", token=service_token(personas, "gate:read")[1])
    assert len(_checks(ci, failing)["vulnerabilities"]["findings"]) == 34


def test_the_schema_describes_each_kind_of_finding(client):
    schema = client.get("/api/v1/schema?format=json").json()["components"]["schemas"]
    finding = schema["Finding"]
    assert finding["discriminator"]["propertyName"] == "kind"
    assert set(finding["discriminator"]["mapping"]) == {
        "advisory",
        "license",
        "pipeline_finding",
        "data_flow",
        "access",
        "monitoring_gap",
        "schema_problem",
        "ci_run",
        "ci_pipeline",
        "missing_evidence",
    }
    advisory = schema["AdvisoryFinding"]["properties"]
    assert {"advisory", "aliases", "component", "version", "fixed_versions", "waiver"} <= set(
        advisory
    )
    assert schema["CheckResult"]["properties"]["findings"]["items"] == {
        "$ref": "#/components/schemas/Finding"
    }
