"""Each default check's rules, case by case: what passes, what fails, and the reason recorded."""

import copy

import pytest

from releasegate.checks.rules import (
    check_data_flow,
    check_least_privilege,
    check_licenses,
    check_monitoring_coverage,
    check_pipeline_findings,
)
from tests.builders import document


def test_pipeline_review_without_open_high_findings_passes():
    outcome = check_pipeline_findings(document("pipeline_review"))
    assert outcome.status == "passed"


@pytest.mark.parametrize("severity", ["high", "critical"])
def test_open_high_or_critical_finding_fails_naming_it(severity):
    review = document("pipeline_review")
    review["findings"].append(
        {"id": "PR-9", "severity": severity, "title": "Model registry is public", "status": "open"}
    )
    outcome = check_pipeline_findings(review)
    assert outcome.status == "failed"
    assert "PR-9" in outcome.summary
    assert outcome.details["open_high_or_critical"][0]["id"] == "PR-9"


@pytest.mark.parametrize("status", ["mitigated", "accepted"])
def test_closed_high_finding_does_not_fail(status):
    review = document("pipeline_review")
    review["findings"].append(
        {"id": "PR-9", "severity": "critical", "title": "x", "status": status}
    )
    assert check_pipeline_findings(review).status == "passed"


def test_missing_evidence_fails_every_document_check():
    for outcome in (
        check_pipeline_findings(None),
        check_data_flow(None),
        check_monitoring_coverage(None),
        check_least_privilege(None),
        check_licenses(None, []),
    ):
        assert outcome.status == "failed"
        assert outcome.details["missing_evidence"]


def test_data_flow_with_agreements_passes():
    assert check_data_flow(document("data_flow_map")).status == "passed"


@pytest.mark.parametrize("agreement", [None, "", "   "])
def test_real_customer_data_to_third_party_without_agreement_fails(agreement):
    flows = document("data_flow_map")
    flows["flows"][1]["agreement_ref"] = agreement
    outcome = check_data_flow(flows)
    assert outcome.status == "failed"
    assert outcome.details["problems"][0]["rule"] == "agreement_missing"
    assert "LLM provider" in outcome.summary


def test_synthetic_data_to_third_party_needs_no_agreement():
    flows = document("data_flow_map")
    flows["flows"][1].update(customer_data="synthetic", agreement_ref=None)
    assert check_data_flow(flows).status == "passed"


def test_credentials_never_leave_even_with_an_agreement():
    flows = document("data_flow_map")
    flows["flows"][1]["data_classes"] = ["pii", "credentials"]
    outcome = check_data_flow(flows)
    assert outcome.status == "failed"
    assert [p["rule"] for p in outcome.details["problems"]] == ["credentials_to_third_party"]


def test_credentials_inside_our_own_systems_are_fine():
    flows = document("data_flow_map")
    flows["flows"][0]["data_classes"] = ["credentials"]
    assert check_data_flow(flows).status == "passed"


def _third_party_flow(*classes: str) -> dict:
    return {
        "flows": [
            {
                "source": "agent",
                "destination": "vendor",
                "data_classes": list(classes),
                "third_party": True,
                "customer_data": "synthetic",
            }
        ]
    }


@pytest.mark.parametrize("name", ["credentials", "Credentials", "CREDENTIALS", " credentials "])
def test_credentials_to_a_third_party_fail_whatever_their_case(name):
    outcome = check_data_flow(_third_party_flow("pii", name))
    assert outcome.status == "failed"
    assert outcome.details["problems"][0]["rule"] == "credentials_to_third_party"


def test_other_data_classes_to_a_third_party_pass():
    assert check_data_flow(_third_party_flow("pii", "telemetry")).status == "passed"


def test_monitoring_plan_with_both_signals_owner_and_escalation_passes():
    assert check_monitoring_coverage(document("monitoring_plan")).status == "passed"


@pytest.mark.parametrize("kind", ["output_anomaly", "data_exposure"])
def test_monitoring_plan_missing_a_required_signal_fails(kind):
    plan = document("monitoring_plan")
    plan["signals"] = [s for s in plan["signals"] if s["kind"] != kind]
    outcome = check_monitoring_coverage(plan)
    assert outcome.status == "failed"
    assert outcome.details["problems"] == [f"no {kind} signal"]


@pytest.mark.parametrize("key", ["owner", "escalation"])
def test_monitoring_plan_without_owner_or_escalation_fails(key):
    plan = document("monitoring_plan")
    plan[key] = "  "
    outcome = check_monitoring_coverage(plan)
    assert outcome.status == "failed"
    assert f"no {key}" in outcome.summary


def test_justified_write_access_passes():
    assert check_least_privilege(document("agent_access_review")).status == "passed"


@pytest.mark.parametrize("permission", ["write", "admin"])
@pytest.mark.parametrize("justification", [None, "", " "])
def test_write_or_admin_without_justification_fails(permission, justification):
    review = document("agent_access_review")
    review["identities"][1]["permissions"] = ["read", permission]
    review["identities"][1]["justification"] = justification
    outcome = check_least_privilege(review)
    assert outcome.status == "failed"
    assert outcome.details["problems"] == [
        {
            "identity": "crm-mcp",
            "rule": "unjustified_permission",
            "reason": f"{permission} without a justification",
        }
    ]


@pytest.mark.parametrize("kind", ["mcp_server", "tool"])
def test_mcp_server_or_tool_without_authentication_fails(kind):
    review = document("agent_access_review")
    review["identities"][1].update(kind=kind, auth="none")
    outcome = check_least_privilege(review)
    assert outcome.status == "failed"
    assert outcome.details["problems"][0]["rule"] == "no_authentication"


def test_agent_without_authentication_is_not_this_rule():
    review = document("agent_access_review")
    review["identities"][0]["auth"] = "none"
    assert check_least_privilege(review).status == "passed"


def _sbom_with(*licenses):
    sbom = copy.deepcopy(document("sbom"))
    sbom["components"][0]["licenses"] = list(licenses)
    return sbom


DENY = ["AGPL-3.0-only", "SSPL-1.0"]


def test_allowed_license_passes():
    outcome = check_licenses(_sbom_with({"license": {"id": "Apache-2.0"}}), DENY)
    assert outcome.status == "passed"
    assert outcome.details["components_without_license"] == 1  # the model names none


@pytest.mark.parametrize(
    "entry",
    [
        {"license": {"id": "AGPL-3.0-only"}},
        {"license": {"id": "agpl-3.0-only"}},
        {"expression": "MIT AND SSPL-1.0"},
        {"expression": "AGPL-3.0-only WITH Classpath-exception-2.0"},
        {"expression": "AGPL-3.0-only OR SSPL-1.0"},
        {"license": {"name": "SSPL-1.0"}},
    ],
)
def test_denied_license_fails_naming_component_and_license(entry):
    outcome = check_licenses(_sbom_with(entry), DENY)
    assert outcome.status == "failed"
    violation = outcome.details["violations"][0]
    assert violation["component"] == "requests"
    assert violation["denied"]


def test_an_or_expression_with_an_allowed_choice_passes():
    assert (
        check_licenses(_sbom_with({"expression": "MIT OR AGPL-3.0-only"}), DENY).status == "passed"
    )


def test_spdx_package_licenses_are_checked():
    spdx = {
        "spdxVersion": "SPDX-2.3",
        "SPDXID": "SPDXRef-DOCUMENT",
        "packages": [
            {
                "SPDXID": "SPDXRef-a",
                "name": "a",
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "SSPL-1.0",
            },
            {"SPDXID": "SPDXRef-b", "name": "b", "licenseConcluded": "MIT"},
        ],
    }
    outcome = check_licenses(spdx, DENY)
    assert outcome.status == "failed"
    assert [v["component"] for v in outcome.details["violations"]] == ["a"]
