"""Production settings: the deploy checks pass with the documented variables, unsafe ones refuse."""

import pytest

from tests.ops.conftest import base_env, env_example, run_manage, run_python


def production_env(**overrides: str) -> dict[str, str]:
    env = base_env(**env_example())
    env["DATABASE_URL"] = "sqlite:///:memory:"
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
