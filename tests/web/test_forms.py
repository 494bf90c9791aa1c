"""Creating releases and attaching evidence through the forms: errors name the field and keep
what was typed; nothing is stored when the input is bad."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from releasegate.releases.models import Evidence, Release
from tests.builders import digest_of, document, make_release
from tests.web.helpers import signed_in, text

pytestmark = pytest.mark.django_db


def _create(client, **overrides):
    data = {
        "project": "support-assistant",
        "version": "1.4.2",
        "artifact_digest": digest_of("x"),
        "environment": "production",
        "summary": "Adds summarisation",
    }
    data.update(overrides)
    return client.post("/releases/new/", data)


def test_requester_creates_a_release(client, personas):
    response = _create(signed_in(client, personas.requester))
    release = Release.objects.get(version="1.4.2")
    assert response.status_code == 302 and response["Location"] == f"/releases/{release.pk}/"
    assert release.requester == personas.requester


def test_a_bad_digest_names_the_field_and_keeps_what_was_typed(client, personas):
    response = _create(signed_in(client, personas.requester), artifact_digest="sha256:nothex")
    assert response.status_code == 400
    body = text(response)
    assert "Artifact digest: must be sha256: followed by 64 lowercase hex digits" in body
    assert 'value="sha256:nothex"' in body
    assert 'value="1.4.2"' in body and "Adds summarisation" in body
    assert not Release.objects.exists()


def test_a_duplicate_version_is_reported_on_the_version_field(client, personas):
    make_release(personas.project, personas.requester, version="1.4.2")
    response = _create(signed_in(client, personas.requester))
    assert response.status_code == 400
    assert "Version: Version 1.4.2 exists already in support-assistant." in text(response)


@pytest.mark.parametrize("name", ("security", "sme", "admin", "auditor", "outsider"))
def test_only_requesters_create_releases(client, personas, name):
    signed_in(client, getattr(personas, name))
    assert client.get("/releases/new/").status_code == 403
    assert _create(client).status_code == 403
    assert not Release.objects.exists()


def _formset(prefix: str, rows: list[dict], initial: int = 0) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"{prefix}-{i}-{key}"] = value
    return data


def _monitoring(runbook: str) -> dict:
    return {
        "owner": "ml on-call",
        "escalation": "page the security lead",
        **_formset(
            "signals",
            [
                {
                    "name": "toxic output",
                    "kind": "output_anomaly",
                    "threshold": "> 1%",
                    "runbook": "https://r/1",
                },
                {
                    "name": "PII leak",
                    "kind": "data_exposure",
                    "threshold": "any",
                    "runbook": runbook,
                },
                {"name": "", "kind": "", "threshold": "", "runbook": ""},  # a blank row: ignored
            ],
        ),
        "link": "",
    }


def test_monitoring_plan_form_builds_the_document(client, personas):
    release = make_release(personas.project, personas.requester)
    signed_in(client, personas.requester)
    response = client.post(
        f"/releases/{release.pk}/evidence/monitoring_plan/", _monitoring("https://r/2")
    )
    assert response.status_code == 302
    evidence = Evidence.objects.get(release=release, kind="monitoring_plan", is_current=True)
    assert evidence.document["owner"] == "ml on-call"
    assert [s["name"] for s in evidence.document["signals"]] == ["toxic output", "PII leak"]


def test_a_service_error_lands_on_the_row_field_and_keeps_the_input(client, personas):
    release = make_release(personas.project, personas.requester)
    signed_in(client, personas.requester)
    response = client.post(
        f"/releases/{release.pk}/evidence/monitoring_plan/", _monitoring("ftp://not-a-runbook")
    )
    assert response.status_code == 400
    body = text(response)
    # signals[1].runbook from the schema, shown on the second row's runbook field
    assert 'id="id_signals-1-runbook-error"' in body
    assert "Runbook URL: &#x27;ftp://not-a-runbook&#x27; does not match" in body
    assert 'value="ftp://not-a-runbook"' in body and 'value="toxic output"' in body
    assert not Evidence.objects.filter(release=release).exists()


def test_a_missing_required_field_is_named(client, personas):
    release = make_release(personas.project, personas.requester)
    signed_in(client, personas.requester)
    data = _monitoring("https://r/2")
    data["owner"] = ""
    response = client.post(f"/releases/{release.pk}/evidence/monitoring_plan/", data)
    assert response.status_code == 400
    assert "Owner: This field is required." in text(response)


def test_data_flow_form_with_a_link(client, personas):
    release = make_release(personas.project, personas.requester)
    signed_in(client, personas.requester)
    data = _formset(
        "flows",
        [
            {
                "source": "prompt",
                "destination": "LLM vendor",
                "data_classes": "pii, free text",
                "third_party": "on",
                "customer_data": "real",
                "agreement_ref": "DPA-12",
            }
        ],
    )
    data["link"] = "https://wiki.example.com/dfd"
    assert client.post(f"/releases/{release.pk}/evidence/data_flow_map/", data).status_code == 302
    evidence = Evidence.objects.get(release=release, kind="data_flow_map")
    assert evidence.link == "https://wiki.example.com/dfd"
    assert evidence.document["flows"][0] == {
        "source": "prompt",
        "destination": "LLM vendor",
        "data_classes": ["pii", "free text"],
        "third_party": True,
        "customer_data": "real",
        "cached": False,
        "agreement_ref": "DPA-12",
    }


def test_a_bad_link_is_named_and_nothing_stored(client, personas):
    release = make_release(personas.project, personas.requester)
    signed_in(client, personas.requester)
    data = _formset("flows", [{"source": "a", "destination": "b", "customer_data": "none"}])
    data["link"] = "javascript:alert(1)"
    response = client.post(f"/releases/{release.pk}/evidence/data_flow_map/", data)
    assert response.status_code == 400
    assert "Link (optional): an http(s) URL" in text(response)
    assert not Evidence.objects.exists()


def test_agent_access_review_and_pipeline_review_forms(client, personas):
    release = make_release(personas.project, personas.requester)
    signed_in(client, personas.requester)
    identities = _formset(
        "identities",
        [
            {
                "name": "crm-mcp",
                "kind": "mcp_server",
                "permissions": ["read", "write"],
                "resources": "crm.contacts",
                "auth": "mtls",
                "justification": "updates preferences",
            }
        ],
    )
    assert (
        client.post(f"/releases/{release.pk}/evidence/agent_access_review/", identities).status_code
        == 302
    )
    review = {
        "reviewer": "Sam",
        "reviewed_at": "2026-11-20",
        "scope": "training, serving",
        **_formset(
            "findings",
            [{"id": "PR-1", "severity": "high", "title": "Unpinned image", "status": "open"}],
        ),
    }
    assert (
        client.post(f"/releases/{release.pk}/evidence/pipeline_review/", review).status_code == 302
    )
    docs = {e.kind: e.document for e in Evidence.objects.filter(release=release)}
    assert docs["agent_access_review"]["identities"][0]["permissions"] == ["read", "write"]
    assert docs["pipeline_review"]["scope"] == ["training", "serving"]
    assert docs["pipeline_review"]["findings"][0]["status"] == "open"


def test_an_existing_document_prefills_the_form(client, personas):
    from tests.builders import attach_all

    release = make_release(personas.project, personas.requester)
    attach_all(release, personas.requester)
    body = text(
        signed_in(client, personas.requester).get(
            f"/releases/{release.pk}/evidence/agent_access_review/"
        )
    )
    assert 'value="crm-mcp"' in body and 'value="ticket-triage-agent"' in body
    assert 'name="identities-INITIAL_FORMS" value="2"' in body


def test_sbom_upload_and_attachment(client, personas):
    release = make_release(personas.project, personas.requester)
    signed_in(client, personas.requester)
    sbom = io.BytesIO(json.dumps(document("sbom")).encode())
    sbom.name = "bom.json"
    attachment = io.BytesIO(b"%PDF-1.4 report")
    attachment.name = "report.pdf"
    response = client.post(
        f"/releases/{release.pk}/evidence/sbom/",
        {"sbom": sbom, "attachment": attachment, "link": ""},
    )
    assert response.status_code == 302
    evidence = Evidence.objects.get(release=release, kind="sbom")
    assert evidence.document["bomFormat"] == "CycloneDX"
    assert evidence.attachment_digest.startswith("sha256:")


def test_an_sbom_that_is_not_json_or_not_an_sbom_is_refused(client, personas):
    release = make_release(personas.project, personas.requester)
    signed_in(client, personas.requester)
    broken = io.BytesIO(b"{not json")
    broken.name = "bom.json"
    response = client.post(f"/releases/{release.pk}/evidence/sbom/", {"sbom": broken})
    assert response.status_code == 400
    assert "SBOM file (CycloneDX or SPDX JSON): not JSON" in text(response)
    other = io.BytesIO(b'{"hello": "world"}')
    other.name = "x.json"
    response = client.post(f"/releases/{release.pk}/evidence/sbom/", {"sbom": other})
    assert response.status_code == 400
    assert "not an SBOM" in text(response)
    assert not Evidence.objects.exists()


SBOM_HEAD = b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "serialNumber": '


@pytest.mark.parametrize(
    "content",
    [
        SBOM_HEAD + b'"\\u0000"}',
        SBOM_HEAD + b'"\\ud800"}',
        SBOM_HEAD + b"NaN}",
        SBOM_HEAD + b"1e400}",
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
    big = SBOM_HEAD + b'"' + b"x" * (1024 * 1024) + b'"}'

    page = signed_in(client, personas.requester)
    sbom = page.post(
        f"/releases/{release.pk}/evidence/sbom/",
        {"sbom": SimpleUploadedFile("sbom.json", big, "application/json")},
    )
    attachment = page.post(
        f"/releases/{release.pk}/evidence/sbom/",
        {
            "sbom": SimpleUploadedFile("sbom.json", SBOM_HEAD + b'"x"}', "application/json"),
            "attachment": SimpleUploadedFile("notes.txt", b"x" * (1024 * 1024 + 1)),
        },
    )

    assert (sbom.status_code, attachment.status_code) == (400, 400)
    assert "larger than 1 MB" in sbom.content.decode()
    assert "larger than 1 MB" in attachment.content.decode()
    assert not Evidence.objects.exists()


def test_unknown_kind_is_404(client, personas):
    release = make_release(personas.project, personas.requester)
    assert (
        signed_in(client, personas.requester)
        .get(f"/releases/{release.pk}/evidence/nope/")
        .status_code
        == 404
    )
