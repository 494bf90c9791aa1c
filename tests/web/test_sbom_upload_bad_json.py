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


def test_an_upload_over_the_body_limit_is_a_400_and_attaches_nothing(client, personas, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    release = make_release(personas.project, personas.requester)
    big = HEAD + b'"' + b"x" * (1024 * 1024) + b'"}'

    page = signed_in(client, personas.requester)
    sbom = page.post(
        f"/releases/{release.pk}/evidence/sbom/",
        {"sbom": SimpleUploadedFile("sbom.json", big, "application/json")},
    )
    attachment = page.post(
        f"/releases/{release.pk}/evidence/sbom/",
        {
            "sbom": SimpleUploadedFile("sbom.json", HEAD + b'"x"}', "application/json"),
            "attachment": SimpleUploadedFile("notes.txt", b"x" * (1024 * 1024 + 1)),
        },
    )

    assert (sbom.status_code, attachment.status_code) == (400, 400)
    assert "larger than 1 MB" in sbom.content.decode()
    assert "larger than 1 MB" in attachment.content.decode()
    assert not Evidence.objects.exists()
