"""What a caller of API v1 sees: bodies, codes, errors, and that refused requests change nothing."""

import io
import json
from typing import Any

import pytest
from django.test import Client, override_settings

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.api.base import ScopedAPIView
from releasegate.api.errors import RequestTooLarge
from releasegate.api.parsers import BoundedJSONParser
from releasegate.audit.models import AuditEvent
from releasegate.checks.models import CheckResult
from releasegate.releases.models import Approval, Evidence, Release, Veto
from releasegate.releases.services import approval_give, role_grant, veto_cast
from tests.builders import digest_of, document, make_release, pass_checks, submitted_release
from tests.conftest import make_personas


def _cleared(personas: Any, **kwargs: Any) -> Release:
    release = submitted_release(personas.project, personas.requester, **kwargs)
    pass_checks(release)
    approval_give(release=release, actor=personas.actor("security"), role="security")
    approval_give(release=release, actor=personas.actor("sme"), role="sme")
    return release


def test_gate_answers_the_contract_body_with_blockers(personas, service):
    release = make_release(personas.project, personas.requester, version="1.4.2")
    response = service("gate:read").request(
        "GET", "/api/v1/gate?project=support-assistant&version=1.4.2"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["release"] == {
        "id": release.pk,
        "project": "support-assistant",
        "version": "1.4.2",
        "artifact_digest": release.artifact_digest,
        "environment": "production",
        "state": "draft",
    }
    assert body["cleared"] is False
    codes = {b["code"] for b in body["blockers"]}
    assert {"not_submitted", "evidence_missing", "check_pending", "approval_missing"} <= codes
    missing = [b for b in body["blockers"] if b["code"] == "approval_missing"]
    assert {(b["role"], b["have"], b["need"]) for b in missing} == {
        ("security", 0, 1),
        ("sme", 0, 1),
    }
    assert body["policy_version"] == 1
    assert body["evaluated_at"].endswith("Z")


def test_a_cleared_release_has_no_blockers_and_a_veto_shows_at_once(personas, service, person):
    release = _cleared(personas)
    gate = service("gate:read")
    assert gate.request("GET", f"/api/v1/releases/{release.pk}/gate").json()["cleared"] is True
    vetoed = person("security").request(
        "POST",
        f"/api/v1/releases/{release.pk}/signoffs",
        {"role": "security", "decision": "veto", "reason": "prompt injection path open"},
    )
    assert vetoed.status_code == 201
    assert vetoed.json()["decision"] == "veto" and vetoed.json()["scope"] == "carry_forward"
    body = gate.request("GET", f"/api/v1/releases/{release.pk}/gate").json()
    assert body["cleared"] is False
    [veto] = body["blockers"]
    assert (veto["code"], veto["role"], veto["by"]) == ("veto", "security", "security")
    assert veto["reason"] == "prompt injection path open"
    lifted = person("security").request(
        "POST",
        f"/api/v1/releases/{release.pk}/vetoes/{vetoed.json()['id']}/lift",
        {"reason": "fixed in 1.0.1"},
    )
    assert lifted.status_code == 200 and lifted.json()["active"] is False
    assert gate.request("GET", f"/api/v1/releases/{release.pk}/gate").json()["cleared"] is True


def test_a_carried_forward_veto_is_lifted_through_the_later_release(personas, person):
    first = submitted_release(personas.project, personas.requester, version="1.0.0")
    veto = veto_cast(release=first, actor=personas.actor("sme"), role="sme", reason="bias")
    later = submitted_release(personas.project, personas.requester, version="1.0.1")
    response = person("sme").request(
        "POST", f"/api/v1/releases/{later.pk}/vetoes/{veto.pk}/lift", {"reason": "retrained"}
    )
    assert response.status_code == 200
    unrelated = person("sme").request(
        "POST", f"/api/v1/releases/{later.pk}/vetoes/999999/lift", {"reason": "x"}
    )
    assert unrelated.status_code == 404


def _lift(user, release_id: int, veto_id: int):
    client = Client()
    client.force_login(user)
    return client.post(
        f"/api/v1/releases/{release_id}/vetoes/{veto_id}/lift",
        data=json.dumps({"reason": "looks fine to me"}),
        content_type="application/json",
    )


def test_lifting_a_veto_of_an_invisible_project_is_a_404_like_an_unknown_id(personas):
    mine = submitted_release(personas.project, personas.requester)
    other = make_personas("other-project", prefix="o-")
    theirs = submitted_release(other.project, other.requester, artifact=mine.artifact_digest)
    veto = veto_cast(
        release=theirs, actor=other.actor("security"), role="security", reason="leaks PII"
    )

    answer = _lift(personas.security, mine.pk, veto.pk)
    unknown = _lift(personas.security, mine.pk, veto.pk + 1000)

    assert answer.status_code == 404
    assert answer.json() == unknown.json()
    assert Veto.objects.get(pk=veto.pk).lifted_at is None


def test_a_holder_in_both_projects_may_lift_the_artifact_veto_through_either_release(personas):
    mine = submitted_release(personas.project, personas.requester)
    other = make_personas("other-project", prefix="o-")
    theirs = submitted_release(other.project, other.requester, artifact=mine.artifact_digest)
    veto = veto_cast(
        release=theirs, actor=other.actor("security"), role="security", reason="leaks PII"
    )
    role_grant(
        project=other.project, user=personas.security, role="security", actor=Actor.system_actor()
    )

    answer = _lift(personas.security, mine.pk, veto.pk)

    assert answer.status_code == 200
    assert Veto.objects.get(pk=veto.pk).lifted_at is not None


def test_gate_by_digest_answers_the_newest_visible_release(personas, service):
    digest = digest_of("shared-artifact")
    make_release(personas.project, personas.requester, version="1.0.0", artifact=digest)
    newer = make_release(personas.project, personas.requester, version="1.0.1", artifact=digest)
    caller = service("gate:read")
    body = caller.request("GET", f"/api/v1/gate?digest={digest}").json()
    assert body["release"]["id"] == newer.pk
    narrowed = caller.request("GET", f"/api/v1/gate?digest={digest}&project=other")
    assert narrowed.status_code == 404
    assert caller.request("GET", f"/api/v1/gate?digest={digest_of('unknown')}").status_code == 404


@pytest.mark.parametrize(
    "query, field",
    [("project=support-assistant", "version"), ("version=1.0.0", "project"), ("", "project")],
)
def test_gate_query_needs_project_and_version_or_digest(personas, service, query, field):
    response = service("gate:read").request("GET", f"/api/v1/gate?{query}")
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}


@pytest.mark.postgres
def test_gate_with_a_service_token_takes_a_small_fixed_number_of_queries(
    personas, service, django_assert_num_queries
):
    release = _cleared(personas)
    for n in range(5):
        veto = veto_cast(
            release=release,
            actor=personas.actor("sme"),
            role="sme",
            reason=f"r{n}",
            scope="release",
        )
        Veto.objects.filter(pk=veto.pk).update(lifted_at=veto.created_at)
    caller = service("gate:read")
    url = "/api/v1/gate?project=support-assistant&version=1.0.0"
    assert caller.request("GET", url).status_code == 200  # records the token's last use
    # the token and the release with every fact the gate reads, in one statement
    with django_assert_num_queries(1):
        assert caller.request("GET", url).json()["cleared"] is True
    with django_assert_num_queries(1):
        assert caller.request("GET", f"/api/v1/releases/{release.pk}/gate").status_code == 200


def test_release_detail_lists_evidence_checks_signoffs_and_vetoes_in_fixed_queries(
    personas, person, django_assert_num_queries
):
    release = _cleared(personas)
    veto_cast(
        release=release, actor=personas.actor("sme"), role="sme", reason="wait", scope="release"
    )
    caller = person("auditor")
    caller.request("GET", f"/api/v1/releases/{release.pk}")
    # token, release, the auditor's roles, evidence, checks, approvals, vetoes
    with django_assert_num_queries(7):
        body = caller.request("GET", f"/api/v1/releases/{release.pk}").json()
    assert sorted(e["kind"] for e in body["evidence"]) == sorted(
        ["pipeline_review", "data_flow_map", "sbom", "monitoring_plan", "agent_access_review"]
    )
    assert {c["check"] for c in body["checks"]} >= {"sbom_valid", "licenses"}
    assert {(s["role"], s["by"], s["current"]) for s in body["signoffs"]} == {
        ("security", "security", True),
        ("sme", "sme", True),
    }
    assert [(v["by"], v["active"]) for v in body["vetoes"]] == [("sme", True)]


def test_release_list_filters_by_state_and_version(personas, person):
    make_release(personas.project, personas.requester, version="1.0.0")
    submitted_release(personas.project, personas.requester, version="2.0.0")
    caller = person("auditor")
    body = caller.request("GET", "/api/v1/releases?state=in_review").json()
    assert [r["version"] for r in body["results"]] == ["2.0.0"]
    assert caller.request("GET", "/api/v1/releases?version=1.0.0").json()["count"] == 1
    assert caller.request("GET", "/api/v1/releases?state=bogus").status_code == 400


def test_pipeline_creates_attaches_submits_and_is_the_requester_by_its_owner(personas, service):
    ci = service("releases:write")
    created = ci.request(
        "POST",
        "/api/v1/releases",
        {
            "project": "support-assistant",
            "version": "3.0.0",
            "artifact_digest": digest_of("3"),
            "environment": "production",
            "summary": "nightly",
        },
    )
    assert created.status_code == 201
    rid = created.json()["id"]
    assert created.json()["requester"] == "admin"  # who issued the token
    for kind in (
        "pipeline_review",
        "data_flow_map",
        "sbom",
        "monitoring_plan",
        "agent_access_review",
    ):
        put = ci.request("PUT", f"/api/v1/releases/{rid}/evidence/{kind}", document(kind))
        assert put.status_code == 200, put.json()
    assert put.json()["manifest_digest"] == Release.objects.get(pk=rid).manifest_digest
    assert ci.request("POST", f"/api/v1/releases/{rid}/submit").json()["state"] == "in_review"
    again = ci.request("POST", f"/api/v1/releases/{rid}/submit")
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"


def test_duplicate_version_is_a_conflict_and_bad_fields_are_named(personas, person):
    make_release(personas.project, personas.requester, version="1.0.0")
    caller = person("requester")
    body = {"project": "support-assistant", "version": "1.0.0", "artifact_digest": digest_of("x")}
    duplicate = caller.request("POST", "/api/v1/releases", body)
    assert duplicate.status_code == 409 and duplicate.json()["code"] == "duplicate_version"
    bad = caller.request(
        "POST", "/api/v1/releases", {**body, "version": "2", "artifact_digest": "md5:1"}
    )
    assert bad.status_code == 400
    assert [e["field"] for e in bad.json()["errors"]] == ["artifact_digest"]
    assert Release.objects.count() == 1


def test_invalid_evidence_is_a_400_that_says_where_and_changes_nothing(personas, person):
    release = make_release(personas.project, personas.requester)
    caller = person("requester")
    events = AuditEvent.objects.count()
    response = caller.request(
        "PUT", f"/api/v1/releases/{release.pk}/evidence/monitoring_plan", {"owner": 3}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_evidence" and response.json()["errors"]
    assert not Evidence.objects.exists() and AuditEvent.objects.count() == events


def test_veto_needs_a_reason_and_requester_cannot_sign_off(personas, person):
    release = submitted_release(personas.project, personas.requester)
    no_reason = person("security").request(
        "POST",
        f"/api/v1/releases/{release.pk}/signoffs",
        {"role": "security", "decision": "veto", "reason": " "},
    )
    assert no_reason.status_code == 400 and no_reason.json()["code"] == "reason_required"
    assert no_reason.json()["errors"][0]["field"] == "reason"
    own = person("requester").request(
        "POST",
        f"/api/v1/releases/{release.pk}/signoffs",
        {"role": "security", "decision": "approve"},
    )
    assert own.status_code == 403
    unknown = person("security").request(
        "POST", f"/api/v1/releases/{release.pk}/signoffs", {"role": "security", "decision": "maybe"}
    )
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "decision"
    assert not Veto.objects.exists() and not Approval.objects.exists()


def test_check_report_is_idempotent_on_external_id(personas, service):
    release = submitted_release(personas.project, personas.requester)
    ci = service("checks:write")
    body = {"check": "external_ci", "status": "running", "external_id": "gh-run-7", "summary": ""}
    first = ci.request("POST", f"/api/v1/releases/{release.pk}/checks", body)
    second = ci.request(
        "POST", f"/api/v1/releases/{release.pk}/checks", {**body, "status": "passed"}
    )
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"] and second.json()["status"] == "passed"
    assert CheckResult.objects.filter(source="ci").count() == 1
    bad = ci.request("POST", f"/api/v1/releases/{release.pk}/checks", {**body, "status": "green"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"


def test_promote_refuses_with_the_blockers_and_changes_nothing(personas, service):
    release = submitted_release(personas.project, personas.requester)
    response = service("releases:promote").request("POST", f"/api/v1/releases/{release.pk}/promote")
    assert response.status_code == 409
    assert response.json()["code"] == "blocked"
    assert {b["code"] for b in response.json()["blockers"]} >= {"check_pending", "approval_missing"}
    release.refresh_from_db()
    assert release.state == "in_review"


def test_promote_when_cleared(personas, service):
    release = _cleared(personas)
    response = service("releases:promote").request("POST", f"/api/v1/releases/{release.pk}/promote")
    assert response.status_code == 200
    assert response.json()["release"]["state"] == "promoted"
    assert response.json()["decision"]["cleared"] is True
    again = service("releases:promote").request("POST", f"/api/v1/releases/{release.pk}/promote")
    assert again.status_code == 409 and again.json()["code"] == "already_promoted"


def test_audit_trail_is_one_document_in_chain_order(personas, person):
    release = _cleared(personas)
    body = person("auditor").request("GET", f"/api/v1/releases/{release.pk}/audit").json()
    actions = [e["action"] for e in body["events"]]
    assert actions[0] == "release_created" and actions[-1] == "approved"
    assert actions.count("evidence_attached") == 5
    seqs = [e["seq"] for e in body["events"]]
    assert seqs == sorted(seqs)


@pytest.mark.parametrize(
    "token_state, code",
    [
        ("expired", "token_expired"),
        ("revoked", "token_revoked"),
        ("forged", "token_invalid"),
        ("garbage", "token_invalid"),
        ("none", "not_authenticated"),
    ],
)
def test_unauthenticated_callers_get_401_with_a_reason(personas, service, token_state, code):
    from datetime import timedelta

    from django.utils import timezone

    from releasegate.accounts.tokens import token_revoke

    caller = service("gate:read")
    token = ApiToken.objects.get()
    if token_state == "expired":
        ApiToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    elif token_state == "revoked":
        token_revoke(token=token, actor=Actor.system_actor())
    elif token_state == "forged":
        caller.token = caller.token[:-6] + "AAAAAA"
    elif token_state == "garbage":
        caller.token = "hunter2"
    else:
        caller.token = None
    response = caller.request("GET", "/api/v1/releases")
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_tokens_never_sign_in_to_pages(personas, person):
    caller = person("requester")
    response = caller.request("GET", "/")
    assert not response.wsgi_request.user.is_authenticated


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4096)
def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read(personas, person):
    release = make_release(personas.project, personas.requester)
    big = document("sbom")
    big["components"] = big["components"] * 200
    response = person("requester").request(
        "PUT", f"/api/v1/releases/{release.pk}/evidence/sbom", big
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert not Evidence.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_the_parser_refuses_a_body_longer_than_the_limit_whatever_it_claimed():
    with pytest.raises(RequestTooLarge):
        BoundedJSONParser().parse(io.BytesIO(b'{"a": "' + b"x" * 2000 + b'"}'))


@pytest.mark.parametrize(
    "raw, status, code",
    [
        (b"{not json", 400, "malformed_json"),
        (b'{"a": NaN}', 400, "malformed_json"),
        (b'{"summary": "a\\u0000b"}', 400, "malformed_json"),
        (b"[" * 100 + b"]" * 100, 400, "malformed_json"),
        (b"[1, 2]", 400, "invalid"),
    ],
)
def test_malformed_bodies_are_400s(personas, person, raw, status, code):
    response = person("requester").request("POST", "/api/v1/releases", raw=raw)
    assert response.status_code == status
    assert response.json()["code"] == code
    assert not Release.objects.exists()


def test_non_json_body_is_415(personas, person):
    response = person("requester").request(
        "POST",
        "/api/v1/releases",
        raw=b"version=1",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"


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


def test_huge_ids_are_404_not_errors(personas, person):
    caller = person("requester")
    assert caller.request("GET", f"/api/v1/releases/{2**70}").status_code == 404
    release = submitted_release(personas.project, personas.requester)
    lift = caller.request(
        "POST", f"/api/v1/releases/{release.pk}/vetoes/{2**70}/lift", {"reason": "x"}
    )
    assert lift.status_code == 404


def test_a_view_that_overrides_the_scoping_hook_cannot_be_defined():
    with pytest.raises(TypeError, match="visible_project_ids"):

        class Leaky(ScopedAPIView):
            def visible_project_ids(self) -> list[int]:
                return []


def test_schema_and_docs_are_served_without_a_cdn(client, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    schema = client.get("/api/v1/schema?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert (
        "/api/v1/gate" in paths and "/api/v1/releases/{release_id}/vetoes/{veto_id}/lift" in paths
    )
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in html
    assert "cdn" not in html.lower()


def test_security_waives_an_advisory_for_the_project_until_a_date(personas, person):
    from datetime import timedelta

    from django.utils import timezone

    from releasegate.checks.models import Advisory, Waiver

    Advisory.objects.create(
        osv_id="PYSEC-2024-1", aliases=["CVE-2024-0001"], content_digest="0" * 64
    )
    caller = person("security")
    url = "/api/v1/projects/support-assistant/waivers"
    until = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    body = {
        "advisory_id": "CVE-2024-0001",
        "reason": "not reachable",
        "expires_at": until.isoformat(),
    }
    created = caller.request("POST", url, body)
    assert created.status_code == 201
    assert created.json()["advisory_id"] == "PYSEC-2024-1"
    assert created.json()["created_by"] == "security"
    naive = caller.request("POST", url, {**body, "expires_at": "2027-01-01T00:00:00"})
    assert naive.status_code == 400 and naive.json()["errors"][0]["field"] == "expires_at"
    garbage = caller.request("POST", url, {**body, "expires_at": "2027-13-45T99:00:00Z"})
    assert garbage.status_code == 400
    assert caller.request("POST", "/api/v1/projects/nope/waivers", body).status_code == 404
    assert Waiver.objects.count() == 1


@pytest.mark.parametrize("path", ["/api/v1/releases/0.5", "/api/v1/nothing", "/api/v1/gate/"])
def test_unknown_api_paths_are_json_404s(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
@pytest.mark.parametrize("signed_in", [True, False])
def test_unknown_api_paths_are_a_json_404_for_every_method(personas, method, signed_in):
    client = Client(enforce_csrf_checks=True)
    if signed_in:
        client.force_login(personas.admin)
    call = getattr(client, method)
    path = "/api/v1/no/such/endpoint"
    response = call(path) if method == "get" else call(path, "{}", "application/json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_an_api_path_with_a_newline_is_a_json_404_not_an_html_page(client, personas):
    client.force_login(personas.security)
    for path in ("/api/v1/releases/%0A/gate", "/api/v1/nothing%0Ahere"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found", path


def test_release_list_takes_the_same_queries_for_one_or_many(
    personas, service, person, django_assert_num_queries
):
    ci, auditor = service("gate:read"), person("auditor")
    make_release(personas.project, personas.requester, version="1.0.0")
    for caller in (ci, auditor):
        caller.request("GET", "/api/v1/releases")
    for n in range(2, 12):
        make_release(personas.project, personas.requester, version=f"1.0.{n}")
    # service token: token, releases; person: token, visible projects, releases
    for caller, queries in ((ci, 2), (auditor, 3)):
        with django_assert_num_queries(queries):
            assert caller.request("GET", "/api/v1/releases").json()["count"] == 11
