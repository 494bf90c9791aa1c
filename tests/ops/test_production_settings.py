"""Production settings: the deploy checks pass with the documented variables, unsafe ones refuse."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.ops.conftest import base_env, env_example, run_manage, run_python


def production_env(**overrides: str) -> dict[str, str]:
    env = base_env(**env_example())
    env["DATABASE_URL"] = "sqlite:///:memory:"
    # The example names compose's mounted secret; here the test run's own key stands in for it.
    env["RELEASEGATE_SIGNING_KEY"] = os.environ["RELEASEGATE_SIGNING_KEY"]
    env.update(overrides)
    return env


def test_check_deploy_passes_with_the_example_production_variables() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_when_cookies_are_not_https_only() -> None:
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=production_env(SESSION_COOKIE_SECURE="false"),
    )
    assert result.returncode != 0
    assert "security.W012" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "secret_key", [None, "", "short", "insecure-releasegate-dev-key-change-me"]
)
def test_start_up_refuses_without_a_real_secret_key(secret_key: str | None) -> None:
    env = production_env()
    if secret_key is None:
        del env["SECRET_KEY"]
    else:
        env["SECRET_KEY"] = secret_key
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set to a random value of at least 32 characters" in result.stderr


def test_check_fails_without_a_usable_signing_key_when_debug_is_off(tmp_path: Path) -> None:
    unset = run_manage("check", env=production_env(RELEASEGATE_SIGNING_KEY=""))
    assert unset.returncode != 0
    assert (
        "releasegate.E001" in unset.stderr and "RELEASEGATE_SIGNING_KEY is not set" in unset.stderr
    )
    missing = tmp_path / "nowhere.pem"
    absent = run_manage("check", env=production_env(RELEASEGATE_SIGNING_KEY=str(missing)))
    assert absent.returncode != 0
    assert "releasegate.E002" in absent.stderr and str(missing) in absent.stderr
    rsa = tmp_path / "rsa.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-out", str(rsa)],
        check=True,
        capture_output=True,
    )
    wrong = run_manage("check", env=production_env(RELEASEGATE_SIGNING_KEY=str(rsa)))
    assert wrong.returncode != 0
    assert "is not an ECDSA P-256 key" in wrong.stderr
    assert "PRIVATE KEY" not in wrong.stderr + wrong.stdout  # the file is named, never shown


def test_the_example_names_the_signing_key_compose_mounts() -> None:
    compose = (Path(__file__).resolve().parents[2] / "docker" / "compose.yaml").read_text()
    assert env_example()["RELEASEGATE_SIGNING_KEY"] == "/run/secrets/signing-key.pem"
    assert "target: /run/secrets/signing-key.pem" in compose


def test_start_up_refuses_a_wildcard_allowed_host_in_production() -> None:
    result = run_manage("check", env=production_env(ALLOWED_HOSTS="releasegate.example.com,*"))
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must name the service's host names" in result.stderr


def test_a_wildcard_host_is_allowed_for_development() -> None:
    env = production_env(
        DEBUG="true", ALLOWED_HOSTS="*", DJANGO_SETTINGS_MODULE="releasegate.settings"
    )
    result = run_python("import django; django.setup()", env)
    assert result.returncode == 0, result.stderr


def test_static_files_get_hashed_names_in_production(tmp_path) -> None:  # type: ignore[no-untyped-def]
    static_root = tmp_path / "static"
    result = run_manage(
        "collectstatic", "--noinput", "-v0", env=production_env(STATIC_ROOT=str(static_root))
    )
    assert result.returncode == 0, result.stderr
    manifest = (static_root / "staticfiles.json").read_text()
    assert '"paths"' in manifest
    # whitenoise's compressed manifest storage writes hashed, pre-compressed copies
    assert list(static_root.rglob("*.gz"))
