import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command

from releasegate.signing import dsse, keys
from releasegate.signing.models import SigningKey

pytestmark = pytest.mark.django_db

PAYLOAD_TYPE = "application/vnd.in-toto+json"


@pytest.fixture
def key_file(tmp_path, settings):
    path = tmp_path / "signing-key.pem"
    keys.write_private_key(path, keys.generate_key())
    settings.RELEASEGATE_SIGNING_KEY = str(path)
    keys.forget_loaded_key()
    yield path
    keys.forget_loaded_key()


def _key_for(keyid):
    return keys.public_key_by_id(keyid)


def test_envelope_signed_with_the_configured_key_verifies(key_file):
    envelope = dsse.sign_envelope(PAYLOAD_TYPE, b'{"hello": "world"}')
    payload, keyid = dsse.open_envelope(envelope, payload_type=PAYLOAD_TYPE, key_for=_key_for)
    assert payload == b'{"hello": "world"}'
    private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert keyid == keys.keyid_of(private.public_key())


def test_tampered_payload_does_not_verify(key_file):
    envelope = dsse.sign_envelope(PAYLOAD_TYPE, b'{"cleared": true}')
    envelope["payload"] = base64.b64encode(b'{"cleared": false}').decode()
    with pytest.raises(dsse.EnvelopeError):
        dsse.open_envelope(envelope, payload_type=PAYLOAD_TYPE, key_for=_key_for)


def test_signature_over_another_payload_type_does_not_verify(key_file):
    envelope = dsse.sign_envelope(PAYLOAD_TYPE, b"{}")
    envelope["payloadType"] = "application/json"
    with pytest.raises(dsse.EnvelopeError):
        dsse.open_envelope(envelope, payload_type="application/json", key_for=_key_for)


def test_rotation_keeps_the_old_key_listed_and_verifying(key_file, capsys):
    before = dsse.sign_envelope(PAYLOAD_TYPE, b"before")
    old = keys.active_key().keyid
    call_command("rotate_signing_key")
    new = capsys.readouterr().out.strip().splitlines()[-1]
    assert new != old
    listed = {k.keyid: k.status for k in keys.public_keys()}
    assert listed == {new: "active", old: "retired"}
    after = dsse.sign_envelope(PAYLOAD_TYPE, b"after")
    assert after["signatures"][0]["keyid"] == new
    for envelope in (before, after):
        dsse.open_envelope(envelope, payload_type=PAYLOAD_TYPE, key_for=_key_for)


def test_a_running_process_signs_with_the_key_another_process_rotated_in(key_file):
    old = dsse.sign_envelope(PAYLOAD_TYPE, b"before")["signatures"][0]["keyid"]
    # rotate_signing_key run elsewhere (a shell, another web process) replaces the file only.
    replacement = keys.generate_key()
    keys.write_private_key(key_file, replacement)
    after = dsse.sign_envelope(PAYLOAD_TYPE, b"after")
    assert after["signatures"][0]["keyid"] == keys.keyid_of(replacement.public_key()) != old
    assert {k.keyid: k.status for k in keys.public_keys()}[old] == "retired"
    dsse.open_envelope(after, payload_type=PAYLOAD_TYPE, key_for=_key_for)


def test_private_key_is_never_stored_in_the_database(key_file):
    keys.active_key()
    stored = json.dumps(list(SigningKey.objects.values()), default=str)
    assert "PRIVATE" not in stored
    assert key_file.read_text().splitlines()[1] not in stored


def test_jwk_names_the_key_and_matches_the_pem(key_file):
    (listed,) = keys.public_keys()
    jwk = listed.as_jwk()
    assert jwk["kid"] == listed.keyid and jwk["crv"] == "P-256" and jwk["kty"] == "EC"
    numbers = keys.load_public_pem(listed.pem).public_numbers()
    x = int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="), "big")
    assert x == numbers.x


def test_production_without_a_configured_key_refuses_to_sign(settings, tmp_path):
    settings.RELEASEGATE_SIGNING_KEY = ""
    settings.DEBUG = False
    settings.DATA_DIR = tmp_path
    keys.forget_loaded_key()
    with pytest.raises(keys.SigningKeyError, match="RELEASEGATE_SIGNING_KEY"):
        keys.sign(b"x")
    assert not (tmp_path / "signing-key.pem").exists()


def test_embedded_default_generates_a_key_in_the_data_folder(settings, tmp_path):
    settings.RELEASEGATE_SIGNING_KEY = ""
    settings.DEBUG = True
    settings.DATA_DIR = tmp_path
    keys.forget_loaded_key()
    try:
        keyid, _ = keys.sign(b"x")
    finally:
        keys.forget_loaded_key()
    path = tmp_path / "signing-key.pem"
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    assert SigningKey.objects.get(keyid=keyid).status == "active"


def test_unreadable_key_file_is_named_without_its_content(settings, tmp_path):
    path = tmp_path / "bad.pem"
    path.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    settings.RELEASEGATE_SIGNING_KEY = str(path)
    keys.forget_loaded_key()
    with pytest.raises(keys.SigningKeyError) as info:
        keys.sign(b"x")
    assert str(path) in str(info.value) and "not a key" not in str(info.value)
    keys.forget_loaded_key()


def test_an_unusable_key_is_a_json_503_that_names_nothing_secret(tmp_path, settings, client):
    missing = tmp_path / "secret-place" / "signing-key.pem"
    settings.RELEASEGATE_SIGNING_KEY = str(missing)
    keys.forget_loaded_key()
    try:
        response = client.get("/api/v1/attestations/keys")
    finally:
        keys.forget_loaded_key()
    assert response.status_code == 503
    assert response.json()["code"] == "signing_unavailable"
    assert "secret-place" not in response.content.decode()
