"""sbom_valid: the official CycloneDX 1.2-1.6 schemas (ML-BOM included) and SPDX 2.2/2.3."""

import json
from pathlib import Path

import pytest

from releasegate.checks.rules import check_sbom_valid
from releasegate.checks.sbom import components
from tests.builders import document
from tests.conftest import missing

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REAL_SBOMS = {
    "dropwizard-1.3.15.cdx-1.2.json": ("CycloneDX 1.2", 167),
    "juice-shop-11.1.2.cdx-1.2.json": ("CycloneDX 1.2", 840),
    "laravel-7.12.0.cdx-1.4.json": ("CycloneDX 1.4", 62),
    "proton-bridge-1.8.0.cdx-1.2.json": ("CycloneDX 1.2", 201),
}


def real(name):
    path = DATA / "sbom" / name
    if not path.exists():
        missing(f"{path} is not there (the shared data beside the project)")
    return json.loads(path.read_text())


@pytest.mark.parametrize("name", sorted(REAL_SBOMS))
def test_real_sboms_validate(name):
    outcome = check_sbom_valid(real(name))
    assert outcome.status == "passed", outcome.details["problems"][:3]
    assert (outcome.details["format"], outcome.details["components"]) == REAL_SBOMS[name]


def ml_bom(spec):
    return {
        "bomFormat": "CycloneDX",
        "specVersion": spec,
        "version": 1,
        "components": [
            {
                "type": "machine-learning-model",
                "bom-ref": "model-1",
                "name": "support-intent-classifier",
                "version": "3.1.0",
                "modelCard": {
                    "modelParameters": {
                        "task": "text-classification",
                        "architectureFamily": "transformer",
                        "datasets": [{"ref": "data-1"}],
                    },
                    "quantitativeAnalysis": {
                        "performanceMetrics": [{"type": "accuracy", "value": "0.93"}]
                    },
                    "considerations": {"useCases": ["route support tickets"]},
                },
            },
            {
                "type": "data",
                "bom-ref": "data-1",
                "name": "tickets-2025",
                "data": [{"type": "dataset", "name": "tickets-2025", "classification": "PII"}],
            },
            {
                "type": "library",
                "name": "torch",
                "version": "2.4.0",
                "purl": "pkg:pypi/torch@2.4.0",
            },
        ],
    }


@pytest.mark.parametrize("spec", ["1.5", "1.6"])
def test_ml_bom_with_model_card_and_dataset_validates(spec):
    outcome = check_sbom_valid(ml_bom(spec))
    assert outcome.status == "passed", outcome.details["problems"]
    assert outcome.details["ml_components"] == [
        {"name": "support-intent-classifier", "type": "machine-learning-model", "model_card": True},
        {"name": "tickets-2025", "type": "data"},
    ]


def test_ml_component_types_do_not_exist_before_1_5():
    outcome = check_sbom_valid(ml_bom("1.4"))
    assert outcome.status == "failed"
    assert any(p["where"].startswith("components[0]") for p in outcome.details["problems"])


def test_model_card_that_breaks_the_schema_fails_with_where():
    bom = ml_bom("1.5")
    bom["components"][0]["modelCard"]["modelParameters"]["approach"] = {"type": "guesswork"}
    outcome = check_sbom_valid(bom)
    assert outcome.status == "failed"
    assert outcome.details["problems"][0]["where"] == (
        "components[0].modelCard.modelParameters.approach.type"
    )


def test_model_without_model_card_passes_with_a_note():
    bom = ml_bom("1.6")
    del bom["components"][0]["modelCard"]
    outcome = check_sbom_valid(bom)
    assert outcome.status == "passed"
    assert outcome.details["notes"] == ["model 'support-intent-classifier' has no modelCard"]


def test_the_builders_sbom_passes():
    assert check_sbom_valid(document("sbom")).status == "passed"


def test_schema_violation_fails_and_records_where_and_what():
    bom = document("sbom")
    bom["components"][0]["type"] = "gadget"
    outcome = check_sbom_valid(bom)
    assert outcome.status == "failed"
    assert outcome.details["problems"][0]["where"] == "components[0].type"
    assert "gadget" in outcome.details["problems"][0]["problem"]
    assert "components[0].type" in outcome.summary


@pytest.mark.parametrize(
    "doc, why",
    [
        ({"bomFormat": "CycloneDX", "specVersion": "1.1"}, "not CycloneDX 1.2 to 1.6"),
        ({"spdxVersion": "SPDX-2.1", "SPDXID": "SPDXRef-DOCUMENT"}, "not SPDX-2.2 or SPDX-2.3"),
        ({"hello": "world"}, "neither CycloneDX JSON nor SPDX JSON"),
    ],
)
def test_unsupported_formats_fail(doc, why):
    outcome = check_sbom_valid(doc)
    assert outcome.status == "failed"
    assert why in outcome.details["problems"][0]["problem"]


def test_missing_sbom_fails():
    assert check_sbom_valid(None).details == {"missing_evidence": "sbom"}


def spdx(version="SPDX-2.3"):
    return {
        "spdxVersion": version,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "support-assistant",
        "documentNamespace": "https://example.com/spdx/support-assistant-1.4.2",
        "creationInfo": {"created": "2026-11-20T10:00:00Z", "creators": ["Tool: syft-1.0"]},
        "packages": [
            {
                "SPDXID": "SPDXRef-Package-requests",
                "name": "requests",
                "versionInfo": "2.19.0",
                "downloadLocation": "NOASSERTION",
                "licenseConcluded": "Apache-2.0",
                "licenseDeclared": "Apache-2.0",
                "copyrightText": "NOASSERTION",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": "pkg:pypi/requests@2.19.0",
                    }
                ],
            }
        ],
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": "SPDXRef-Package-requests",
            }
        ],
    }


@pytest.mark.parametrize("version", ["SPDX-2.2", "SPDX-2.3"])
def test_spdx_document_validates(version):
    outcome = check_sbom_valid(spdx(version))
    assert outcome.status == "passed", outcome.details["problems"]
    assert outcome.details["format"] == version
    assert components(spdx(version))[0].purl == "pkg:pypi/requests@2.19.0"


def test_spdx_2_2_requires_declared_license_and_copyright():
    doc = spdx("SPDX-2.2")
    del doc["packages"][0]["licenseDeclared"]
    outcome = check_sbom_valid(doc)
    assert outcome.status == "failed"
    assert outcome.details["problems"] == [
        {
            "where": "SPDXRef-Package-requests",
            "problem": "license_declared is mandatory in SPDX-2.2",
        }
    ]
    doc["spdxVersion"] = "SPDX-2.3"
    assert check_sbom_valid(doc).status == "passed"


def test_spdx_document_with_a_bad_id_fails_saying_which():
    doc = spdx()
    doc["packages"][0]["SPDXID"] = "requests package"
    outcome = check_sbom_valid(doc)
    assert outcome.status == "failed"
    assert any(p["where"] == "requests package" for p in outcome.details["problems"])


def test_spdx_document_without_creation_info_fails():
    doc = spdx()
    del doc["creationInfo"]
    outcome = check_sbom_valid(doc)
    assert outcome.status == "failed"
    assert "CreationInfo" in outcome.details["problems"][0]["problem"]


def test_nested_cyclonedx_components_are_read():
    bom = document("sbom")
    bom["components"][0]["components"] = [
        {
            "type": "library",
            "name": "urllib3",
            "version": "1.26.0",
            "purl": "pkg:pypi/urllib3@1.26.0",
        }
    ]
    assert [c.name for c in components(bom)] == ["requests", "urllib3", "support-intent-classifier"]
