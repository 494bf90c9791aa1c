"""Regression tests for the holes found when the gate was attacked (issue 10, holes 1 to 6),
each through the surface the attack used: the API, the page upload, the worker, the CLI."""

import copy
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from releasegate.checks.models import CheckResult
from releasegate.checks.selectors import checks_due
from releasegate.checks.tasks import run_check
from releasegate.releases.models import Evidence, Release
from releasegate.releases.services import approval_give, policy_change, veto_cast
from tests.api.conftest import Caller
from tests.builders import digest_of, document, make_release, submitted_release
from tests.checks.test_vulnerabilities import CRITICAL, MODERATE, advisory, ecosystem, write_folder
from tests.conftest import Personas
from tests.releases.gatehelpers import snapshot


def run_due_checks(release: Release) -> None:
    """What the workers do next: every check the sweep finds due, run once."""
    for release_id, check, manifest in checks_due(release_ids=[release.pk]):
        run_check.apply(args=(release_id, check, manifest)).get()


def cleared(p: Personas, **kwargs: Any) -> Release:
    """A release in review, every check computed by the workers, both approvals given."""
    release = submitted_release(p.project, p.requester, **kwargs)
    run_due_checks(release)
    approval_give(release=release, actor=p.actor("security"), role="security")
    approval_give(release=release, actor=p.actor("sme"), role="sme")
    release.refresh_from_db()
    return release


def gate(p: Personas, release: Release, **query: str) -> dict[str, Any]:
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    response = Caller("requester", user=p.requester).request(
        "GET", f"/api/v1/releases/{release.pk}/gate{suffix}"
    )
    assert response.status_code == 200, response.content
    return response.json()


def promote(p: Personas, release: Release) -> int:
    caller = Caller("requester", user=p.requester)
    return caller.request("POST", f"/api/v1/releases/{release.pk}/promote").status_code


def codes(decision: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(b["code"], b.get("check")) for b in decision["blockers"]]


@pytest.fixture
def advisories(tmp_path, db):
    """One advisory for a package the default SBOM does not carry, so the check can run."""
    call_command(
        "import_osv",
        str(
            write_folder(
                tmp_path / "first",
                [advisory("PYSEC-0-1", "PyPI", "flask", [ecosystem({"introduced": "0"})])],
            )
        ),
    )
    return tmp_path


# Hole 1 -------------------------------------------------------------------------------------------


def test_hole_1_a_licence_added_to_the_deny_list_reaches_a_check_that_already_passed(
    personas, advisories
):
    p = personas
    release = cleared(p)
    assert gate(p, release)["cleared"] is True
    policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={"license_denylist": ["AGPL-3.0-only", "SSPL-1.0", "Apache-2.0"]},
        note="no Apache in this product",
    )
    decision = gate(p, release)
    assert decision["cleared"] is False
    assert codes(decision) == [("check_pending", "licenses")]
    assert decision["blockers"][0]["status"] == "outdated"
    assert promote(p, release) == 409
    run_due_checks(release)  # the worker recomputes it under the new deny-list
    assert codes(gate(p, release)) == [("check_failed", "licenses")]
    assert promote(p, release) == 409


def test_hole_1_a_lowered_vulnerability_threshold_reaches_a_check_that_already_passed(
    personas, advisories
):
    p = personas
    call_command(
        "import_osv",
        str(
            write_folder(
                advisories / "moderate",
                [
                    advisory(
                        "PYSEC-0-2",
                        "PyPI",
                        "requests",
                        [ecosystem({"introduced": "0"}, {"fixed": "9.0"})],
                        **MODERATE,
                    )
                ],
            )
        ),
    )
    release = cleared(p)  # a medium advisory passes under the default threshold, high
    assert gate(p, release)["cleared"] is True
    policy_change(
        project=p.project,
        actor=p.actor("admin"),
        changes={"vulnerability_threshold": "medium"},
        note="stricter",
    )
    assert codes(gate(p, release)) == [("check_pending", "vulnerabilities")]
    assert promote(p, release) == 409
    run_due_checks(release)
    assert codes(gate(p, release)) == [("check_failed", "vulnerabilities")]


# Hole 2 -------------------------------------------------------------------------------------------


def test_hole_2_reverting_evidence_does_not_resurrect_a_pass_from_before_an_advisory(
    personas, advisories
):
    p = personas
    release = cleared(p)
    requester = Caller("requester", user=p.requester)
    original = document("monitoring_plan")
    changed = copy.deepcopy(original) | {"owner": "someone else"}
    put = f"/api/v1/releases/{release.pk}/evidence/monitoring_plan"
    assert requester.request("PUT", put, changed).status_code == 200  # manifest M2
    call_command(
        "import_osv",
        str(
            write_folder(
                advisories / "critical",
                [
                    advisory(
                        "PYSEC-0-3",
                        "PyPI",
                        "requests",
                        [ecosystem({"introduced": "0"}, {"fixed": "9.0"})],
                        **CRITICAL,
                    )
                ],
            )
        ),
    )
    run_due_checks(release)
    assert ("check_failed", "vulnerabilities") in codes(gate(p, release))
    assert requester.request("PUT", put, original).status_code == 200  # back to M1
    decision = gate(p, release)
    assert decision["cleared"] is False
    assert ("check_pending", "vulnerabilities") in codes(decision)
    assert promote(p, release) == 409
    run_due_checks(release)  # M1 recomputed under the new advisory set
    assert ("check_failed", "vulnerabilities") in codes(gate(p, release))
    assert promote(p, release) == 409


# Hole 3 -------------------------------------------------------------------------------------------

HEX = "ab" * 32


@pytest.mark.parametrize(
    "field, value",
    [
        ("artifact_digest", f"sha256:{HEX}\n"),
        ("artifact_digest", f"sha256:{HEX.upper()}"),
        ("artifact_digest", f"SHA256:{HEX}"),
        ("version", "7.0.1\n"),
        ("environment", "production\n"),
    ],
)
def test_hole_3_a_trailing_newline_or_another_spelling_is_a_400_and_escapes_no_veto(
    personas, field, value
):
    p = personas
    vetoed = submitted_release(p.project, p.requester, version="7.0.0", artifact=f"sha256:{HEX}")
    veto_cast(release=vetoed, actor=p.actor("security"), role="security", reason="backdoor")
    before = snapshot()
    body = {"project": p.project.slug, "version": "7.0.1", "artifact_digest": f"sha256:{HEX}"}
    body[field] = value
    response = Caller("requester", user=p.requester).request("POST", "/api/v1/releases", body)
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert snapshot() == before


@pytest.mark.parametrize(
    "query, field",
    [
        (f"digest=sha256:{HEX}%0A", "digest"),
        (f"digest=sha256:{HEX.upper()}", "digest"),
        ("project=support-assistant&version=7.0.0%0A", "version"),
        ("project=support-assistant%0A&version=7.0.0", "project"),
        (f"digest=sha256:{HEX}&environment=Production", "environment"),
    ],
)
def test_hole_3_the_gate_query_is_matched_whole(personas, query, field):
    response = Caller("requester", user=personas.requester).request("GET", f"/api/v1/gate?{query}")
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}


# Hole 4 -------------------------------------------------------------------------------------------

SHAPES = [
    ({"bomFormat": "CycloneDX", "specVersion": ["1.5"]}, "specVersion"),
    ({"bomFormat": "CycloneDX", "specVersion": {"major": 1}}, "specVersion"),
    ({"spdxVersion": ["SPDX-2.3"], "SPDXID": "SPDXRef-DOCUMENT"}, "spdxVersion"),
    ({"spdxVersion": {"v": 2}, "SPDXID": "SPDXRef-DOCUMENT"}, "spdxVersion"),
]


@pytest.mark.parametrize("sbom, field", SHAPES)
def test_hole_4_an_sbom_version_of_the_wrong_shape_is_a_400_by_api(personas, sbom, field):
    p = personas
    release = make_release(p.project, p.requester)
    before = snapshot()
    response = Caller("requester", user=p.requester).request(
        "PUT", f"/api/v1/releases/{release.pk}/evidence/sbom", sbom
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["field"] == field and "must be a string" in error["message"]
    assert snapshot() == before


@pytest.mark.parametrize("sbom, field", SHAPES)
def test_hole_4_an_sbom_version_of_the_wrong_shape_is_a_400_by_page_upload(
    personas, sbom, field, settings
):
    p = personas
    settings.STORAGES = {  # pages link their CSS through {% static %}; no collectstatic here
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    release = make_release(p.project, p.requester)
    client = Client()
    client.force_login(p.requester)
    before = snapshot()
    response = client.post(
        f"/releases/{release.pk}/evidence/sbom/",
        {"sbom": SimpleUploadedFile("sbom.json", json.dumps(sbom).encode(), "application/json")},
    )
    assert response.status_code == 400
    assert field in response.content.decode()
    assert snapshot() == before


def test_hole_4_a_malformed_sbom_that_reached_a_worker_fails_sbom_valid_saying_where(personas):
    p = personas
    release = submitted_release(p.project, p.requester)
    # Stored before the shape was checked on the way in: the worker must not raise on it.
    Evidence.objects.filter(release=release, kind="sbom").update(
        document={"bomFormat": "CycloneDX", "specVersion": ["1.5"], "components": 5}
    )
    run_check.apply(args=(release.pk, "sbom_valid", release.manifest_digest)).get()
    result = CheckResult.objects.get(release=release, check_name="sbom_valid")
    assert result.status == "failed"
    assert "specVersion" in result.summary and "raised" not in result.summary


# Hole 5 -------------------------------------------------------------------------------------------


def test_hole_5_a_spare_draft_created_before_the_veto_does_not_escape_it(personas, advisories):
    p = personas
    spare = make_release(p.project, p.requester, version="0.0.1-spare")
    vetoed = cleared(p, version="1.0.0")
    veto_cast(release=vetoed, actor=p.actor("security"), role="security", reason="exfiltration")
    requester = Caller("requester", user=p.requester)
    for kind in ("pipeline_review", "data_flow_map", "sbom", "monitoring_plan"):
        put = f"/api/v1/releases/{spare.pk}/evidence/{kind}"
        assert requester.request("PUT", put, document(kind)).status_code == 200
    put = f"/api/v1/releases/{spare.pk}/evidence/agent_access_review"
    assert requester.request("PUT", put, document("agent_access_review")).status_code == 200
    assert requester.request("POST", f"/api/v1/releases/{spare.pk}/submit").status_code == 200
    run_due_checks(spare)
    approval_give(release=spare, actor=p.actor("security"), role="security")
    approval_give(release=spare, actor=p.actor("sme"), role="sme")
    decision = gate(p, spare)
    assert codes(decision) == [("veto", None)]
    assert decision["blockers"][0]["reason"] == "exfiltration"
    assert promote(p, spare) == 409


# Hole 6 -------------------------------------------------------------------------------------------


def test_hole_6_a_release_cleared_for_staging_does_not_clear_a_production_deploy(
    personas, advisories
):
    p = personas
    staging = cleared(p, version="2.0.0", environment="staging")
    by_id = gate(p, staging, environment="production")
    assert by_id["cleared"] is False
    assert by_id["blockers"][0]["code"] == "wrong_environment"
    assert by_id["blockers"][0]["environment"] == "staging"
    assert gate(p, staging, environment="staging")["cleared"] is True
    caller = Caller("requester", user=p.requester)
    for query in (
        "project=support-assistant&version=2.0.0&environment=production",
        f"digest={staging.artifact_digest}&environment=production",
    ):
        answer = caller.request("GET", f"/api/v1/gate?{query}").json()
        assert (answer["cleared"], answer["blockers"][0]["code"]) == (False, "wrong_environment")


def test_hole_6_a_digest_in_two_environments_answers_for_the_one_asked_about(personas, advisories):
    p = personas
    artifact = digest_of("one build")
    production = cleared(p, version="3.0.0", environment="production", artifact=artifact)
    cleared(p, version="3.0.0-staging", environment="staging", artifact=artifact)  # newer
    caller = Caller("requester", user=p.requester)
    answer = caller.request("GET", f"/api/v1/gate?digest={artifact}&environment=production").json()
    assert answer["release"]["id"] == production.pk and answer["cleared"] is True
