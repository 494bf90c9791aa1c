"""`releasegate --oidc`: the CLI gets the job's ID token (GitHub Actions' token service, or
GitLab's RELEASEGATE_ID_TOKEN), exchanges it, asks the gate, and prints neither token."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import make_release

pytestmark = pytest.mark.django_db(transaction=True)

CLI = str(Path(sys.executable).with_name("releasegate"))
CI_VARIABLES = (
    "RELEASEGATE_TOKEN",
    "RELEASEGATE_ID_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)


def run(live_server: Any, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    args = [
        "--oidc",
        "gate",
        "--url",
        live_server.url,
        "--project",
        "support-assistant",
        "--environment",
        "production",
    ]
    return subprocess.run(
        [CLI, *args, "--version", "1.0.0"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def release(personas: Any, add_policy: Any) -> Any:
    add_policy(scopes=["gate:read"])
    return make_release(personas.project, personas.requester)


def test_in_github_actions_the_cli_asks_for_the_id_token_and_exchanges_it(
    live_server, issuer, release
):
    result = run(
        live_server,
        ACTIONS_ID_TOKEN_REQUEST_URL=f"{issuer.url}/actions-token?api-version=2.0",
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=issuer.runner_token,
    )
    assert result.returncode == 1, result.stderr  # asked the gate: a draft is blocked
    assert "blocked: support-assistant 1.0.0" in result.stdout
    assert "exchanged the CI's ID token" in result.stderr
    printed = result.stdout + result.stderr
    assert "rgs_" not in printed and "eyJ" not in printed and issuer.runner_token not in printed


def test_in_gitlab_the_cli_exchanges_releasegate_id_token(live_server, issuer, release):
    id_token = issuer.token()
    result = run(live_server, RELEASEGATE_ID_TOKEN=id_token)
    assert result.returncode == 1, result.stderr
    assert id_token not in result.stdout + result.stderr


def test_without_an_id_token_the_cli_says_how_to_get_one(live_server, issuer, release):
    result = run(live_server)
    assert result.returncode == 2
    assert "id-token: write" in result.stderr


def test_a_refused_exchange_is_exit_2_with_its_code(live_server, issuer, release):
    result = run(live_server, RELEASEGATE_ID_TOKEN=issuer.token(repository_id="5"))
    assert result.returncode == 2
    assert "oidc_no_policy" in result.stderr
