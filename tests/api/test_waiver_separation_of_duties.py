"""A requester who also holds `security` may not waive an advisory that affects their own
release (through the API, as the attack did); another security holder may."""

from datetime import timedelta

import pytest
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.checks.advisories import advisories_import
from releasegate.checks.models import Waiver
from releasegate.releases.services import evidence_attach
from tests.api.conftest import Caller
from tests.builders import submitted_release
from tests.checks.test_vulnerabilities import CRITICAL, advisory, ecosystem, write_folder
from tests.releases.gatehelpers import person_with

pytestmark = pytest.mark.django_db
WAIVERS = "/api/v1/projects/support-assistant/waivers"
VULNERABLE_SBOM = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "components": [
        {"type": "library", "name": "flask", "version": "0.12", "purl": "pkg:pypi/flask@0.12"}
    ],
}


@pytest.fixture
def requester_with_security(personas, tmp_path):
    advisories_import(
        path=write_folder(
            tmp_path,
            [
                advisory(
                    "PYSEC-2026-9",
                    "PyPI",
                    "flask",
                    [ecosystem({"introduced": "0"}, {"fixed": "1.0"})],
                    aliases=["CVE-2026-0009"],
                    **CRITICAL,
                ),
                advisory(
                    "PYSEC-2026-10",
                    "PyPI",
                    "django",
                    [ecosystem({"introduced": "0"}, {"fixed": "9.0"})],
                    **CRITICAL,
                ),
            ],
        )
    )
    bob = person_with(personas, "bob", "requester", "security")
    release = submitted_release(personas.project, bob)
    evidence_attach(
        release=release, actor=Actor.for_user(bob), kind="sbom", document=VULNERABLE_SBOM
    )
    return bob


def body(advisory_id: str) -> dict[str, str]:
    return {
        "advisory_id": advisory_id,
        "reason": "not reachable",
        "expires_at": (timezone.now() + timedelta(days=30)).isoformat(),
    }


@pytest.mark.parametrize("named_as", ["PYSEC-2026-9", "CVE-2026-0009"])
def test_a_requester_holding_security_cannot_waive_an_advisory_of_their_own_release(
    personas, requester_with_security, named_as
):
    response = Caller("bob", user=requester_with_security).request("POST", WAIVERS, body(named_as))
    assert response.status_code == 403
    assert response.json()["code"] == "requester_cannot_waive"
    assert not Waiver.objects.exists()


def test_they_may_waive_an_advisory_that_affects_none_of_their_releases(
    personas, requester_with_security
):
    response = Caller("bob", user=requester_with_security).request(
        "POST", WAIVERS, body("PYSEC-2026-10")
    )
    assert response.status_code == 201


def test_another_security_holder_may_waive_it(personas, requester_with_security):
    response = Caller("security", user=personas.security).request(
        "POST", WAIVERS, body("PYSEC-2026-9")
    )
    assert response.status_code == 201
