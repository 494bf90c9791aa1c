"""GET /api/v1/releases/<id>/attestation, /attestations/keys and /attestations/revocations."""

import base64
import copy
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from releasegate.attestations.models import IssuedAttestation, Revocation
from releasegate.attestations.services import attestations_revoke, policy_digest
from releasegate.audit.models import AuditEvent
from releasegate.releases.models import Evidence
from releasegate.signing import keys
from tests.api.conftest import Caller, service_token
from tests.attestations.conftest import promoted, statement_of, veto
from tests.builders import submitted_release
from tests.releases.gatehelpers import cleared_release, snapshot

pytestmark = pytest.mark.django_db


def attestation(caller: Caller, release) -> tuple[int, dict]:
    response = caller.request("GET", f"/api/v1/releases/{release.pk}/attestation")
    return response.status_code, response.json()


def test_attestation_of_a_cleared_release_is_a_signed_vsa(personas, person, settings):
    release = promoted(personas)
    status, envelope = attestation(person("requester"), release)
    assert status == 200
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = statement_of(envelope)
    issued = IssuedAttestation.objects.get(release=release)
    base = settings.RELEASEGATE_BASE_URL
    policy = release.project.current_policy
    evidence = Evidence.objects.filter(release=release, is_current=True).order_by("kind")
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [
        {
            "name": "support-assistant/1.0.0",
            "digest": {"sha256": release.artifact_digest.removeprefix("sha256:")},
        }
    ]
    assert statement["predicateType"] == "https://slsa.dev/verification_summary/v1"
    predicate = statement["predicate"]
    assert predicate["verifier"]["id"] == base
    assert predicate["resourceUri"] == f"{base}/releases/{release.pk}/"
    assert predicate["policy"] == {
        "uri": f"{base}/projects/support-assistant/policy/#version-{policy.version}",
        "digest": {"sha256": policy_digest(policy, "support-assistant")},
    }
    assert [(a["name"], a["digest"]) for a in predicate["inputAttestations"]] == [
        (f"support-assistant/1.0.0/evidence/{e.kind}", {"sha256": e.digest[7:]}) for e in evidence
    ]
    assert len(predicate["inputAttestations"]) == 5
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["RELEASEGATE_CLEARED_PRODUCTION"]
    assert predicate["releasegate"]["attestation_id"] == issued.pk
    assert predicate["timeVerified"].endswith("Z")
    assert envelope["signatures"][0]["keyid"] == keys.active_key().keyid == issued.keyid
    payload = base64.b64decode(envelope["payload"])
    assert issued.payload_digest == "sha256:" + hashlib.sha256(payload).hexdigest()
    event = AuditEvent.objects.get(action="attestation_issued")
    assert (event.release_id, event.data["attestation_id"]) == (release.pk, issued.pk)


def test_an_independent_dsse_implementation_verifies_it(personas, person):
    _, envelope = attestation(person("requester"), promoted(personas))
    keyid = envelope["signatures"][0]["keyid"]
    public = serialization.load_pem_public_key(keys.active_key().public_pem.encode())
    key = SSlibKey.from_crypto(public, keyid=keyid)
    # securesystemslib's from_dict consumes the dicts it is given: hand it copies.
    verified = Envelope.from_dict(copy.deepcopy(envelope)).verify([key], 1)
    assert list(verified) == [keyid]
    tampered = dict(
        copy.deepcopy(envelope), payload=base64.b64encode(b'{"_type": "forged"}').decode()
    )
    with pytest.raises(VerificationError):
        Envelope.from_dict(tampered).verify([key], 1)


def test_a_cleared_release_in_review_gets_one_naming_its_environment(personas, person):
    release = cleared_release(personas, environment="staging")
    status, envelope = attestation(person("requester"), release)
    assert status == 200
    assert statement_of(envelope)["predicate"]["verifiedLevels"] == ["RELEASEGATE_CLEARED_STAGING"]


def test_a_blocked_release_gets_409_with_blockers_and_nothing_is_recorded(personas, person):
    release = submitted_release(personas.project, personas.requester)
    requester = person("requester")
    before = snapshot()
    status, body = attestation(requester, release)
    assert status == 409
    assert body["code"] == "blocked"
    assert {b["code"] for b in body["blockers"]} >= {"check_pending", "approval_missing"}
    assert snapshot() == before
    assert not IssuedAttestation.objects.exists()


def test_a_vetoed_promoted_release_gets_409(personas, person):
    release = promoted(personas)
    veto(personas, release)
    status, body = attestation(person("requester"), release)
    assert status == 409
    assert [b["code"] for b in body["blockers"]] == ["veto"]


@pytest.mark.parametrize("scope", ["gate:read", "attestations:read"])
def test_gate_read_and_attestations_read_tokens_may_fetch(personas, scope):
    caller = Caller(scope, token=service_token(personas, scope)[1])
    assert attestation(caller, promoted(personas))[0] == 200


@pytest.mark.parametrize("scope", ["releases:write", "checks:write", "releases:promote"])
def test_scopes_that_read_the_release_but_not_attestations_are_403(personas, scope):
    caller = Caller(scope, token=service_token(personas, scope)[1])
    status, body = attestation(caller, promoted(personas))
    assert (status, body["code"]) == (403, "missing_scope")


@pytest.mark.parametrize("scope", ["alerts:write", "admission:review"])
def test_narrow_scopes_that_read_nothing_are_404(personas, scope):
    caller = Caller(scope, token=service_token(personas, scope)[1])
    status, body = attestation(caller, promoted(personas))
    assert (status, body["code"]) == (404, "not_found")


def test_every_role_may_fetch(personas, person):
    release = promoted(personas)
    for name in ("requester", "security", "sme", "admin", "auditor"):
        assert attestation(person(name), release)[0] == 200
        assert attestation(Caller(name, user=getattr(personas, name)), release)[0] == 200


def test_outsiders_and_other_projects_get_404(personas, person, other):
    release = promoted(personas)
    theirs = Caller("other", token=service_token(personas, "gate:read", project=other.project)[1])
    for caller in (person("outsider"), Caller("s", user=personas.outsider), theirs):
        status, body = attestation(caller, release)
        assert (status, body["code"]) == (404, "not_found")
    missing = person("requester").request("GET", "/api/v1/releases/999999/attestation")
    assert missing.status_code == 404
    assert attestation(Caller("none"), release)[0] == 401
    assert not IssuedAttestation.objects.exists()


def test_keys_are_public_and_listed_after_rotation(personas, tmp_path, settings, capsys):
    path = tmp_path / "signing-key.pem"
    keys.write_private_key(path, keys.generate_key())
    settings.RELEASEGATE_SIGNING_KEY = str(path)
    keys.forget_loaded_key()
    try:
        old = keys.active_key().keyid
        call_command("rotate_signing_key")
        new = capsys.readouterr().out.strip().splitlines()[-1]
        response = Caller("none").request("GET", "/api/v1/attestations/keys")
    finally:
        keys.forget_loaded_key()
    assert response.status_code == 200
    listed = response.json()["keys"]
    by_id = {k["keyid"]: k for k in listed}
    assert by_id[new]["status"] == "active" and by_id[old]["status"] == "retired"
    assert listed[0]["keyid"] == new
    for key in listed:
        assert key["pem"].startswith("-----BEGIN PUBLIC KEY-----")
        assert "PRIVATE" not in json.dumps(key)
        assert key["jwk"]["kid"] == key["keyid"]
        assert (key["jwk"]["kty"], key["jwk"]["crv"], key["jwk"]["alg"]) == ("EC", "P-256", "ES256")
        assert set(key["jwk"]) == {"kty", "crv", "x", "y", "alg", "use", "kid"}


def test_keys_endpoint_query_count_is_pinned(db, django_assert_num_queries):
    keys.active_key()
    with django_assert_num_queries(1):
        assert Caller("none").request("GET", "/api/v1/attestations/keys").status_code == 200


def _revocations(caller: Caller) -> dict:
    response = caller.request("GET", "/api/v1/attestations/revocations")
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["payloadType"] == "application/vnd.releasegate.revocations+json"
    public = serialization.load_pem_public_key(keys.active_key().public_pem.encode())
    key = SSlibKey.from_crypto(public, keyid=envelope["signatures"][0]["keyid"])
    Envelope.from_dict(copy.deepcopy(envelope)).verify([key], 1)
    return json.loads(base64.b64decode(envelope["payload"]))


def test_revocation_list_names_the_attestation_a_veto_revoked(personas, person, other):
    release = promoted(personas)
    _, envelope = attestation(person("requester"), release)
    attestation_id = statement_of(envelope)["predicate"]["releasegate"]["attestation_id"]
    assert _revocations(person("auditor"))["revoked"] == []
    veto(personas, release)
    listed = _revocations(person("auditor"))
    assert listed["issued_at"].endswith("Z")
    assert listed["revoked"] == [
        {
            "attestation_id": attestation_id,
            "release_id": release.pk,
            "subject_digest": release.artifact_digest,
            "environment": "production",
            "revoked_at": listed["revoked"][0]["revoked_at"],
            "reason": "prompt injection reaches the CRM tool",
        }
    ]
    token = Caller("gate", token=service_token(personas, "gate:read")[1])
    assert [r["attestation_id"] for r in _revocations(token)["revoked"]] == [attestation_id]
    theirs = Caller("other", token=service_token(personas, "gate:read", project=other.project)[1])
    assert _revocations(theirs)["revoked"] == []
    assert _revocations(person("outsider"))["revoked"] == []
    assert Caller("none").request("GET", "/api/v1/attestations/revocations").status_code == 401


def test_revocation_list_query_count_is_pinned(personas, person, django_assert_num_queries):
    releases = [promoted(personas, version=f"1.0.{i}") for i in range(3)]
    caller = person("auditor")
    for release in releases:
        attestation(person("requester"), release)
        veto(personas, release, scope="release")
    _revocations(caller)
    # The token, the auditor's projects, the revocations with their attestations.
    with django_assert_num_queries(3):
        caller.request("GET", "/api/v1/attestations/revocations")


def test_veto_revokes_in_its_transaction_and_is_audited(personas, person):
    release = promoted(personas)
    attestation(person("requester"), release)
    attestation(person("requester"), release)
    cast = veto(personas, release)
    revoked = Revocation.objects.filter(attestation__release=release)
    assert revoked.count() == 2
    assert {r.cause for r in revoked} == {f"veto:{cast.pk}"}
    event = AuditEvent.objects.get(action="attestation_revoked")
    assert event.release_id == release.pk
    assert event.data["cause"] == f"veto:{cast.pk}"
    assert sorted(event.data["attestation_ids"]) == sorted(r.attestation_id for r in revoked)


def test_revoking_again_is_a_no_op(personas, person):
    release = promoted(personas)
    attestation(person("requester"), release)
    veto(personas, release)
    again = attestations_revoke(
        release_ids=[release.pk], reason="again", cause="hold:1", actor=personas.actor("security")
    )
    assert again == []
    assert Revocation.objects.get().reason == "prompt injection reaches the CRM tool"


def test_a_carried_veto_on_the_same_artifact_elsewhere_revokes(personas, person, other):
    release = promoted(personas)
    attestation(person("requester"), release)
    theirs = cleared_release(other, artifact=release.artifact_digest)
    veto(other, theirs)
    assert Revocation.objects.filter(attestation__release=release).exists()


def test_a_release_scoped_veto_on_a_later_release_revokes_nothing_else(personas, person):
    first = promoted(personas, version="1.0.0")
    attestation(person("requester"), first)
    later = cleared_release(personas, version="1.1.0")
    veto(personas, later, scope="release")
    assert not Revocation.objects.exists()
    assert attestation(person("requester"), first)[0] == 200


def test_after_the_veto_is_lifted_a_new_attestation_has_a_new_id(personas, person):
    from releasegate.releases.services import veto_lift

    release = promoted(personas)
    _, before = attestation(person("requester"), release)
    cast = veto(personas, release)
    veto_lift(veto=cast, actor=personas.actor("security"), reason="fixed in the tool")
    status, after = attestation(person("requester"), release)
    assert status == 200
    ids = [statement_of(e)["predicate"]["releasegate"]["attestation_id"] for e in (before, after)]
    assert ids[0] != ids[1]
    assert list(Revocation.objects.values_list("attestation_id", flat=True)) == [ids[0]]
