"""The vulnerabilities check against advisories imported offline, synthetic and real."""

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command

from releasegate.checks.advisories import advisories_import
from releasegate.checks.models import Advisory, AffectedPackage
from releasegate.checks.runner import compute_check
from releasegate.checks.sbom import Component, components
from releasegate.checks.vulnerabilities import evaluate_vulnerabilities, load_affected
from releasegate.releases.services import evidence_attach, policy_change
from tests.builders import make_release
from tests.checks.test_sbom import real
from tests.conftest import missing

PYPA_ZIP = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "osv"
    / "pypa-advisory-database.osv.zip"
)


def advisory(osv_id, ecosystem, name, ranges=(), versions=(), **extra):
    return {
        "schema_version": "1.6.0",
        "id": osv_id,
        "modified": "2026-01-01T00:00:00Z",
        "summary": f"{osv_id} in {name}",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": list(ranges),
                "versions": list(versions),
            }
        ],
        **extra,
    }


def semver(*events):
    return {"type": "SEMVER", "events": list(events)}


def ecosystem(*events):
    return {"type": "ECOSYSTEM", "events": list(events)}


CRITICAL = {"database_specific": {"severity": "CRITICAL"}}
MODERATE = {"database_specific": {"severity": "MODERATE"}}

ADVISORIES = [
    advisory(
        "GHSA-npm-1",
        "npm",
        "lodash",
        [semver({"introduced": "0"}, {"fixed": "4.17.21"})],
        **CRITICAL,
    ),
    advisory(
        "GHSA-mvn-1",
        "Maven",
        "com.fasterxml.jackson.core:jackson-databind",
        [ecosystem({"introduced": "2.9.0"}, {"fixed": "2.9.10.8"})],
        **MODERATE,
    ),
    advisory(
        "GO-2026-1",
        "Go",
        "github.com/gin-gonic/gin",
        [semver({"introduced": "0"}, {"last_affected": "1.6.0"})],
    ),
    advisory(
        "RUSTSEC-2026-1",
        "crates.io",
        "smallvec",
        [semver({"introduced": "1.0.0"}, {"fixed": "1.6.1"})],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    ),
    advisory("PYSEC-2026-1", "PyPI", "Pillow", versions=["9.0.0"], **CRITICAL),
    advisory(
        "PYSEC-2026-2",
        "PyPI",
        "pillow",
        [ecosystem({"introduced": "0"}, {"fixed": "8.0"})],
        withdrawn="2026-02-01T00:00:00Z",
    ),
]


def write_folder(root: Path, docs) -> Path:
    for doc in docs:
        folder = root / doc["affected"][0]["package"]["ecosystem"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{doc['id']}.json").write_text(json.dumps(doc))
    return root


def comp(purl):
    name = purl.split("/")[-1].split("@")[0]
    return Component(name=name, version=purl.split("@")[-1], purl=purl, licenses=())


SBOM_PURLS = [
    "pkg:npm/lodash@4.17.20",
    "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.10.1",
    "pkg:golang/github.com/gin-gonic/gin@v1.6.0",
    "pkg:cargo/smallvec@1.6.0",
    "pkg:pypi/PILLOW@9.0.0",
    "pkg:pypi/pillow@7.0",  # only affected by a withdrawn advisory
    "pkg:npm/left-pad@1.3.0",
]


def run(purls, threshold="high", waivers=()):
    parts = [comp(p) for p in purls]
    return evaluate_vulnerabilities(
        components=parts, affected=load_affected(parts), waivers=list(waivers), threshold=threshold
    )


@pytest.fixture
def imported(db, tmp_path):
    return advisories_import(path=write_folder(tmp_path, ADVISORIES))


def test_import_is_idempotent_and_updates_changed_advisories(imported, tmp_path):
    assert (imported.created, imported.updated, imported.unchanged) == (6, 0, 0)
    again = advisories_import(path=tmp_path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 6)
    assert Advisory.objects.count() == 6 and AffectedPackage.objects.count() == 6
    changed = dict(
        ADVISORIES[0],
        affected=[
            {
                "package": {"ecosystem": "npm", "name": "lodash"},
                "ranges": [semver({"introduced": "0"}, {"fixed": "4.17.19"})],
            }
        ],
    )
    write_folder(tmp_path, [changed])
    third = advisories_import(path=tmp_path)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 5)
    assert AffectedPackage.objects.count() == 6
    assert run(["pkg:npm/lodash@4.17.20"]).status == "passed"


def test_import_from_zip_and_skips_what_is_not_osv(db, tmp_path):
    archive = tmp_path / "osv.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("npm/GHSA-npm-1.json", json.dumps(ADVISORIES[0]))
        z.writestr("broken.json", "{not json")
        z.writestr("other.json", json.dumps({"hello": "world"}))
    report = advisories_import(path=archive)
    assert report.created == 1
    assert len(report.skipped) == 2


def test_components_across_ecosystems_fail_with_advisory_component_and_severity(imported):
    outcome = run(SBOM_PURLS)
    assert outcome.status == "failed"
    failing = {(f["advisory"], f["purl"], f["severity"]) for f in outcome.details["failing"]}
    assert failing == {
        ("GHSA-npm-1", "pkg:npm/lodash@4.17.20", "critical"),
        ("GO-2026-1", "pkg:golang/github.com/gin-gonic/gin@v1.6.0", "high"),  # none given: high
        ("RUSTSEC-2026-1", "pkg:cargo/smallvec@1.6.0", "critical"),  # CVSS 9.8
        ("PYSEC-2026-1", "pkg:pypi/PILLOW@9.0.0", "critical"),
    }
    assert [f["advisory"] for f in outcome.details["below_threshold"]] == ["GHSA-mvn-1"]
    assert "GHSA-npm-1" in outcome.summary


def test_threshold_comes_from_the_policy(imported):
    assert "GHSA-mvn-1" in {f["advisory"] for f in run(SBOM_PURLS, "medium").details["failing"]}
    critical_only = {f["advisory"] for f in run(SBOM_PURLS, "critical").details["failing"]}
    assert "GO-2026-1" not in critical_only


def test_fixed_versions_pass(imported):
    outcome = run(
        [
            "pkg:npm/lodash@4.17.21",
            "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.10.0",
            "pkg:golang/github.com/gin-gonic/gin@v1.6.1",
            "pkg:cargo/smallvec@1.6.1",
            "pkg:pypi/pillow@9.0.1",
        ],
        "low",
    )
    assert outcome.status == "passed", outcome.details["failing"]


def test_matching_is_a_query_per_ecosystem_batch(imported, django_assert_max_num_queries):
    parts = [comp(f"pkg:npm/pkg-{i}@1.0.0") for i in range(2500)] + [
        comp(f"pkg:pypi/pkg-{i}@1.0.0") for i in range(2500)
    ]
    with django_assert_max_num_queries(6):
        load_affected(parts)


def test_the_check_reads_the_release_sbom_and_policy_threshold(personas, imported):
    release = make_release(personas.project, personas.requester)
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [
            {
                "type": "library",
                "name": "jackson-databind",
                "version": "2.9.10.1",
                "purl": "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.10.1",
            }
        ],
    }
    evidence_attach(release=release, actor=personas.actor("requester"), kind="sbom", document=sbom)
    release.refresh_from_db()
    outcome = compute_check(
        release_id=release.pk, check="vulnerabilities", manifest=release.manifest_digest
    )[0]
    assert outcome.status == "passed"
    policy_change(
        project=personas.project,
        actor=personas.actor("admin"),
        changes={"vulnerability_threshold": "medium"},
        note="stricter",
    )
    outcome = compute_check(
        release_id=release.pk, check="vulnerabilities", manifest=release.manifest_digest
    )[0]
    assert outcome.status == "failed"
    assert outcome.details["failing"][0]["advisory"] == "GHSA-mvn-1"


@pytest.fixture
def pypa(db):
    if not PYPA_ZIP.exists():
        missing(f"{PYPA_ZIP} is not there (the shared data beside the project)")
    return advisories_import(path=PYPA_ZIP)


def test_real_pypa_advisories_import_and_reimport(pypa):
    assert pypa.created == 2661 and not pypa.skipped
    out = io.StringIO()
    call_command("import_osv", str(PYPA_ZIP), stdout=out)
    assert "0 new, 0 updated, 2661 unchanged" in out.getvalue()
    assert Advisory.objects.count() == 2661
    assert Advisory.objects.filter(withdrawn__isnull=False).count() == 10


def test_sbom_naming_a_known_vulnerable_pypi_version_fails_with_its_advisory(pypa):
    outcome = run(["pkg:pypi/requests@2.19.0", "pkg:pypi/django@3.2.0", "pkg:pypi/requests@2.32.3"])
    assert outcome.status == "failed"
    by_purl = {}
    for f in outcome.details["failing"]:
        by_purl.setdefault(f["purl"], set()).add(f["advisory"])
    # CVE-2023-32681: Proxy-Authorization leaked on redirect, 2.3.0 <= v < 2.31.0.
    assert "PYSEC-2023-74" in by_purl["pkg:pypi/requests@2.19.0"]
    assert "pkg:pypi/requests@2.32.3" not in by_purl
    assert len(by_purl["pkg:pypi/django@3.2.0"]) > 10
    assert run(["pkg:pypi/requests@2.32.3"]).status == "passed"


REAL_SBOM_ADVISORIES = [
    # Modelled on GHSA-c7hr-j4mj-j2w6 (jsonwebtoken verification bypass, fixed in 4.2.2).
    advisory(
        "GHSA-TEST-jwt",
        "npm",
        "jsonwebtoken",
        [semver({"introduced": "0"}, {"fixed": "4.2.2"})],
        **CRITICAL,
    ),
    # Modelled on the jackson-databind gadget advisories fixed in 2.9.10.8.
    advisory(
        "GHSA-TEST-jackson",
        "Maven",
        "com.fasterxml.jackson.core:jackson-databind",
        [ecosystem({"introduced": "2.9.0"}, {"fixed": "2.9.10.8"})],
        database_specific={"severity": "HIGH"},
    ),
    # A Go pseudo-version before the fix, and a v3 module path.
    advisory(
        "GO-TEST-bbloom",
        "Go",
        "github.com/AndreasBriese/bbloom",
        [semver({"introduced": "0"}, {"fixed": "0.0.0-20200101000000-000000000000"})],
    ),
    advisory(
        "GO-TEST-jet",
        "Go",
        "github.com/CloudyKit/jet/v3",
        [semver({"introduced": "3.0.0"}, {"fixed": "3.0.1"})],
    ),
    advisory(
        "PKS-TEST-cron",
        "Packagist",
        "dragonmantank/cron-expression",
        [ecosystem({"introduced": "2.0.0"}, {"fixed": "2.3.2"})],
    ),
]


@pytest.mark.parametrize(
    "sbom, expected",
    [
        (
            "juice-shop-11.1.2.cdx-1.2.json",
            {
                ("GHSA-TEST-jwt", "pkg:npm/jsonwebtoken@0.1.0"),
                ("GHSA-TEST-jwt", "pkg:npm/jsonwebtoken@0.4.0"),
            },
        ),
        (
            "dropwizard-1.3.15.cdx-1.2.json",
            {
                (
                    "GHSA-TEST-jackson",
                    "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.10?type=jar",
                )
            },
        ),
        (
            "proton-bridge-1.8.0.cdx-1.2.json",
            {
                (
                    "GO-TEST-bbloom",
                    "pkg:golang/github.com/AndreasBriese/bbloom@v0.0.0-20190306092124-e2d15f34fcf9",
                ),
                ("GO-TEST-jet", "pkg:golang/github.com/CloudyKit/jet/v3@v3.0.0"),
            },
        ),
        (
            "laravel-7.12.0.cdx-1.4.json",
            {("PKS-TEST-cron", "pkg:composer/dragonmantank/cron-expression@v2.3.1")},
        ),
    ],
)
def test_real_sboms_match_advisories_by_purl_and_version(db, tmp_path, sbom, expected):
    advisories_import(path=write_folder(tmp_path, REAL_SBOM_ADVISORIES))
    parts = components(real(sbom))
    outcome = evaluate_vulnerabilities(
        components=parts, affected=load_affected(parts), waivers=[], threshold="high"
    )
    assert outcome.status == "failed"
    found = {(f["advisory"], f["purl"]) for f in outcome.details["failing"]}
    assert found >= expected
    # Only the versions the advisories name: nothing else in the SBOM is reported.
    assert {a for a, _ in found} == {a for a, _ in expected}
