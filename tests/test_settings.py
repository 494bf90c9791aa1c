"""Settings come from the environment; a bad value stops start-up with a message naming it.

Each case starts a fresh Python process with a clean environment, as a deployment would.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "k" * 50


def _start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "RELEASEGATE_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "releasegate.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "postgres://localhost"),
        ("SECURE_HSTS_SECONDS", "a year"),
        ("RELEASEGATE_MAX_BODY_BYTES", "-5"),
        ("RELEASEGATE_EXTERNAL_CI_TOKENS", "GITHUB_CI_TOKEN=https://api.github.com/repos/o/r"),
        ("RELEASEGATE_EXTERNAL_CI_TOKENS", "GITHUB_CI_TOKEN"),
        ("RELEASEGATE_EXTERNAL_CI_TOKENS", "github_token=https://api.github.com"),
        ("RELEASEGATE_EXTERNAL_CI_TOKENS", "DATABASE_URL=https://collector.example.net"),
        ("RELEASEGATE_EXTERNAL_CI_TOKENS", "A=https://ci.example.com A=https://other.example.com"),
        ("RELEASEGATE_EXTERNAL_CI_TOKENS", "A=https://user@ci.example.com"),
        ("RELEASEGATE_EXTERNAL_CI_TOKENS", "A=ftp://ci.example.com"),
    ],
)
def test_malformed_value_fails_start_up_naming_the_variable(tmp_path, variable, value):
    started = _start(tmp_path, **{"DEBUG": "true", variable: value})
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr
    assert variable in started.stderr.strip().splitlines()[-1]


def test_debug_off_without_secret_key_refuses_to_start(tmp_path):
    started = _start(tmp_path, DEBUG="false")
    assert started.returncode != 0
    assert "SECRET_KEY" in started.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("key", ["secret", "insecure-releasegate-dev-key-change-me"])
def test_debug_off_with_a_short_or_default_secret_key_refuses_to_start(tmp_path, key):
    started = _start(tmp_path, DEBUG="false", SECRET_KEY=key)
    assert started.returncode != 0
    assert "SECRET_KEY" in started.stderr.strip().splitlines()[-1]


def test_debug_on_starts_without_a_secret_key(tmp_path):
    started = _start(tmp_path, DEBUG="true")
    assert started.returncode == 0, started.stderr
    assert "no issues" in started.stdout


def test_debug_off_with_a_real_secret_key_starts(tmp_path):
    started = _start(
        tmp_path,
        DEBUG="false",
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="example.com",
        RELEASEGATE_SIGNING_KEY=os.environ["RELEASEGATE_SIGNING_KEY"],
    )
    assert started.returncode == 0, started.stderr


def test_ci_token_bindings_are_read_as_origins(monkeypatch):
    from releasegate.env import env_token_origins

    monkeypatch.setenv(
        "RELEASEGATE_EXTERNAL_CI_TOKENS",
        "GITHUB_CI_TOKEN=https://API.github.com:443/\n  GITLAB_TOKEN=https://gitlab.example.com:8443",
    )
    assert env_token_origins("RELEASEGATE_EXTERNAL_CI_TOKENS") == {
        "GITHUB_CI_TOKEN": "https://api.github.com",
        "GITLAB_TOKEN": "https://gitlab.example.com:8443",
    }
    monkeypatch.delenv("RELEASEGATE_EXTERNAL_CI_TOKENS")
    assert env_token_origins("RELEASEGATE_EXTERNAL_CI_TOKENS") == {}
