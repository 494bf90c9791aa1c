"""`releasegate verify` offline (exit 0 valid, 1 refused, 2 usage) and `releasegate attest`."""

import base64
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from releasegate.attestations.statement import STATEMENT_PAYLOAD_TYPE, iso
from releasegate.cli import main
from releasegate.signing import dsse, keys
from tests.api.conftest import Caller, service_token
from tests.attestations.conftest import promoted, public_pem, statement_of, veto
from tests.builders import digest_of
from tests.releases.gatehelpers import cleared_release

CLI = str(Path(sys.executable).with_name("releasegate"))


@pytest.fixture
def key_file(tmp_path, db) -> Path:
    path = tmp_path / "releasegate.pub.pem"
    path.write_text(public_pem())
    return path


def fetch(personas, tmp_path, release, name="attestation.json") -> Path:
    caller = Caller("ci", token=service_token(personas, "attestations:read")[1])
    response = caller.request("GET", f"/api/v1/releases/{release.pk}/attestation")
    assert response.status_code == 200, response.json()
    path = tmp_path / name
    path.write_text(json.dumps(response.json()))
    return path


def revocations(personas, tmp_path) -> Path:
    caller = Caller("ci", token=service_token(personas, "attestations:read")[1])
    path = tmp_path / "revocations.json"
    path.write_text(json.dumps(caller.request("GET", "/api/v1/attestations/revocations").json()))
    return path


def verify(capsys, key, digest, file, *extra: str, environment="production") -> tuple[int, str]:
    code = main(
        ["verify", "--key", str(key), "--digest", digest, "--environment", environment, *extra]
        + [str(file)]
    )
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.django_db
def test_a_fresh_attestation_verifies_offline(personas, tmp_path, key_file, capsys):
    release = promoted(personas)
    file = fetch(personas, tmp_path, release)
    code, said = verify(capsys, key_file, release.artifact_digest, file)
    assert code == 0, said
    assert said.startswith("valid: support-assistant/1.0.0")
    assert "cleared for production" in said


@pytest.mark.django_db
def test_verify_runs_as_a_subprocess_without_django(personas, tmp_path, key_file):
    release = promoted(personas)
    file = fetch(personas, tmp_path, release)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "RELEASEGATE_TOKEN"}
    }
    args = ["--key", str(key_file), "--digest", release.artifact_digest, str(file)]
    done = subprocess.run(
        [CLI, "verify", "--environment", "production", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    staging = subprocess.run(
        [CLI, "verify", "--environment", "staging", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert staging.returncode == 1
    assert "not cleared for staging" in staging.stdout


@pytest.mark.django_db
def test_a_tampered_payload_is_refused(personas, tmp_path, key_file, capsys):
    release = promoted(personas, environment="staging")
    file = fetch(personas, tmp_path, release)
    envelope = json.loads(file.read_text())
    statement = statement_of(envelope)
    statement["predicate"]["verifiedLevels"] = ["RELEASEGATE_CLEARED_PRODUCTION"]
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    file.write_text(json.dumps(envelope))
    code, said = verify(capsys, key_file, release.artifact_digest, file)
    assert code == 1
    assert "invalid: no signature verifies" in said


@pytest.mark.django_db
def test_another_key_is_refused(personas, tmp_path, key_file, capsys):
    release = promoted(personas)
    file = fetch(personas, tmp_path, release)
    stranger = tmp_path / "stranger.pem"
    stranger.write_text(keys.public_pem_of(keys.generate_key().public_key()))
    code, said = verify(capsys, stranger, release.artifact_digest, file)
    assert code == 1
    assert "no signature verifies" in said


@pytest.mark.django_db
def test_another_digest_is_refused(personas, tmp_path, key_file, capsys):
    release = promoted(personas)
    file = fetch(personas, tmp_path, release)
    other = digest_of("another image")
    code, said = verify(capsys, key_file, other, file)
    assert code == 1
    assert f"not about {other}" in said


@pytest.mark.django_db
def test_another_environment_is_refused(personas, tmp_path, key_file, capsys):
    release = promoted(personas, environment="staging")
    file = fetch(personas, tmp_path, release)
    assert verify(capsys, key_file, release.artifact_digest, file, environment="staging")[0] == 0
    code, said = verify(capsys, key_file, release.artifact_digest, file)
    assert code == 1
    assert "not cleared for production (RELEASEGATE_CLEARED_PRODUCTION not verified)" in said


def _signed_at(file: Path, moment) -> None:
    """Re-sign the statement with the service's own key as if it had been issued at `moment`."""
    statement = statement_of(json.loads(file.read_text()))
    statement["predicate"]["timeVerified"] = iso(moment)
    envelope = dsse.sign_envelope(STATEMENT_PAYLOAD_TYPE, json.dumps(statement).encode())
    file.write_text(json.dumps(envelope))


@pytest.mark.django_db
def test_an_expired_attestation_is_refused(personas, tmp_path, key_file, capsys):
    release = promoted(personas)
    file = fetch(personas, tmp_path, release)
    _signed_at(file, timezone.now() - timedelta(hours=25))
    code, said = verify(capsys, key_file, release.artifact_digest, file)
    assert code == 1
    assert "older than 1 day" in said
    assert verify(capsys, key_file, release.artifact_digest, file, "--max-age", "2d")[0] == 0
    code, said = verify(capsys, key_file, release.artifact_digest, file, "--max-age", "1h")
    assert code == 1


@pytest.mark.django_db
def test_an_attestation_dated_in_the_future_is_refused(personas, tmp_path, key_file, capsys):
    release = promoted(personas)
    file = fetch(personas, tmp_path, release)
    _signed_at(file, timezone.now() + timedelta(hours=1))
    code, said = verify(capsys, key_file, release.artifact_digest, file)
    assert code == 1
    assert "dated in the future" in said


@pytest.mark.django_db
def test_a_revoked_attestation_is_refused_with_the_revocation_list(
    personas, tmp_path, key_file, capsys
):
    release = promoted(personas)
    file = fetch(personas, tmp_path, release)
    clean = revocations(personas, tmp_path)
    digest = release.artifact_digest
    assert verify(capsys, key_file, digest, file, "--revocations", str(clean))[0] == 0
    veto(personas, release)
    listed = revocations(personas, tmp_path)
    code, said = verify(capsys, key_file, digest, file, "--revocations", str(listed))
    assert code == 1
    assert "was revoked at" in said and "prompt injection reaches the CRM tool" in said
    # Without the list, the signature alone still verifies: revocation needs the list.
    assert verify(capsys, key_file, digest, file)[0] == 0


@pytest.mark.django_db
def test_a_forged_or_stale_revocation_list_is_refused(personas, tmp_path, key_file, capsys):
    release = promoted(personas)
    file = fetch(personas, tmp_path, release)
    listed = revocations(personas, tmp_path)
    forged = json.loads(listed.read_text())
    forged["payload"] = base64.b64encode(b'{"issued_at": "2026-12-01T00:00:00Z", "revoked": []}')
    forged["payload"] = forged["payload"].decode()
    listed.write_text(json.dumps(forged))
    args = ("--revocations", str(listed))
    code, said = verify(capsys, key_file, release.artifact_digest, file, *args)
    assert code == 1 and "no signature verifies" in said
    stale = dsse.sign_envelope(
        "application/vnd.releasegate.revocations+json",
        json.dumps({"issued_at": iso(timezone.now() - timedelta(days=3)), "revoked": []}).encode(),
    )
    listed.write_text(json.dumps(stale))
    code, said = verify(capsys, key_file, release.artifact_digest, file, *args)
    assert code == 1 and "the revocation list is older than" in said


@pytest.mark.django_db
def test_a_file_that_is_no_envelope_is_refused(personas, tmp_path, key_file, capsys):
    junk = tmp_path / "junk.json"
    for content in ("not json", "[]", '{"payloadType": "application/vnd.in-toto+json"}'):
        junk.write_text(content)
        assert verify(capsys, key_file, digest_of("x"), junk)[0] == 1


@pytest.mark.django_db
def test_usage_errors_exit_2(personas, tmp_path, key_file, capsys):
    file = tmp_path / "a.json"
    file.write_text("{}")
    assert verify(capsys, key_file, "sha256:ABC", file)[0] == 2
    assert verify(capsys, key_file, digest_of("x") + "\n", file)[0] == 2
    assert verify(capsys, tmp_path / "missing.pem", digest_of("x"), file)[0] == 2
    assert verify(capsys, file, digest_of("x"), file)[0] == 2  # not a PEM key
    assert verify(capsys, key_file, digest_of("x"), tmp_path / "missing.json")[0] == 2
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--key", str(key_file), str(file)])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        verify(capsys, key_file, digest_of("x"), file, "--max-age", "soon")
    assert exited.value.code == 2


def _run(*args: str, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RELEASEGATE_TOKEN": token}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.django_db(transaction=True)
def test_attest_fetches_a_verifiable_attestation_and_refuses_a_blocked_one(
    live_server, personas, tmp_path
):
    release = promoted(personas)
    blocked = cleared_release(personas, version="1.1.0")
    veto(personas, blocked, scope="release")
    token = service_token(personas, "gate:read")[1]
    out = tmp_path / "att.json"
    by_version = _run(
        "attest", "--url", live_server.url, "--project", "support-assistant",
        "--version", "1.0.0", "-o", str(out), token=token,
    )  # fmt: skip
    assert by_version.returncode == 0, by_version.stderr
    key = tmp_path / "key.pem"
    key.write_text(public_pem())
    assert main(["verify", "--key", str(key), "--digest", release.artifact_digest,
                 "--environment", "production", str(out)]) == 0  # fmt: skip
    refused = _run(
        "attest", "--url", live_server.url, "--release", str(blocked.pk), "-o", str(out),
        token=token,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "veto:" in refused.stdout
    unknown = _run(
        "attest", "--url", live_server.url, "--release", "999999", "-o", str(out), token=token
    )
    assert unknown.returncode == 2
    usage = _run("attest", "--url", live_server.url, "-o", str(out), token=token)
    assert usage.returncode == 2
