"""The SBOM upload on the evidence page: a file that is not storable JSON is a 400 naming the
field, never a server error, and nothing is attached."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from releasegate.releases.models import Evidence
from tests.builders import make_release
from tests.web.helpers import signed_in

pytestmark = pytest.mark.django_db

HEAD = b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "serialNumber": '


@pytest.mark.parametrize(
    "content",
    [
        HEAD + b'"\\u0000"}',
        HEAD + b'"\\ud800"}',
        HEAD + b"NaN}",
        HEAD + b"1e400}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["nul", "surrogate", "nan", "infinity", "deep"],
)
def test_an_unstorable_sbom_upload_is_a_400_on_the_sbom_field(client, personas, content):
    release = make_release(personas.project, personas.requester)

    response = signed_in(client, personas.requester).post(
        f"/releases/{release.pk}/evidence/sbom/",
        {"sbom": SimpleUploadedFile("sbom.json", content, "application/json")},
    )

    assert response.status_code == 400
    assert "not JSON" in response.content.decode()
    assert not Evidence.objects.exists()

