"""JSON that parses in Python but cannot be stored (an unpaired surrogate, a number beyond a
double) is a 400 that says so, and nothing changes."""

import pytest

from releasegate.releases.models import Evidence
from tests.builders import make_release

pytestmark = pytest.mark.django_db

SBOM_HEAD = '{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1'


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (SBOM_HEAD + ', "metadata": {"component": {"name": "\\ud800"}}}', "surrogate"),
        (SBOM_HEAD + ', "serialNumber": "x", "\\udfff": 1}', "surrogate"),
        ('{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1e400}', "out of range"),
    ],
)
def test_unstorable_evidence_json_is_a_400_naming_the_problem(personas, person, body, words):
    release = make_release(personas.project, personas.requester)

    response = person("requester").request(
        "PUT", f"/api/v1/releases/{release.pk}/evidence/sbom", raw=body.encode()
    )

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert words in response.json()["message"]
    assert not Evidence.objects.exists()
