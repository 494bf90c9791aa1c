"""`releasegate --oidc`: the CLI gets the job's ID token (GitHub Actions' token service, or
GitLab's RELEASEGATE_ID_TOKEN), exchanges it, asks the gate, and prints neither token. A wait
longer than the minted token's life exchanges a fresh ID token (GitHub Actions) or fails saying
which token the wait outlived (RELEASEGATE_ID_TOKEN)."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from releasegate.accounts.actors import Actor
from releasegate.accounts.models import ApiToken
from releasegate.audit.models import AuditEvent
from releasegate.releases.services import approval_give
from tests.builders import make_release
from tests.cli.test_cli import _waiting_release

pytestmark = pytest.mark.django_db(transaction=True)

CLI = str(Path(sys.executable).with_name("releasegate"))
CI_VARIABLES = (
    "RELEASEGATE_TOKEN",
    "RELEASEGATE_ID_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)


def ci_env(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    return {**clean, "RELEASEGATE_POLL_FIRST_SECONDS": "0.3", **env}


def gate_args(live_server: Any) -> list[str]:
    return [
        "--oidc",
        "gate",
        "--url",
        live_server.url,
        "--project",
        "support-assistant",
        "--environment",
        "production",
        "--version",
        "1.0.0",
    ]


def run(live_server: Any, *extra: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *gate_args(live_server), *extra],
        env=ci_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def never_printed(output: str, *secrets: str) -> None:
    assert "rgs_" not in output and "eyJ" not in output
    for secret in secrets:
        assert secret not in output


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
    never_printed(result.stdout + result.stderr, issuer.runner_token)


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


# Waits longer than a minted token -----------------------------------------------------------


@pytest.fixture
def short_lived(settings: Any, personas: Any, add_policy: Any) -> Any:
    """A trust policy whose tokens live 6 seconds, and a release waiting only for the sme."""
    settings.RELEASEGATE_OIDC_MIN_LIFETIME_SECONDS = 5
    policy = add_policy(scopes=["gate:read"], lifetime=timedelta(seconds=6))
    _waiting_release(personas)
    return policy


def test_a_long_wait_in_github_actions_exchanges_a_fresh_id_token_before_the_minted_one_expires(
    live_server, issuer, personas, short_lived
):
    release = personas.project.releases.get()
    process = subprocess.Popen(
        [CLI, *gate_args(live_server), "--wait", "30m"],
        env=ci_env(
            ACTIONS_ID_TOKEN_REQUEST_URL=f"{issuer.url}/actions-token?api-version=2.0",
            ACTIONS_ID_TOKEN_REQUEST_TOKEN=issuer.runner_token,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Until the first minted token has expired while the CLI goes on waiting.
        deadline = time.monotonic() + 60
        while True:
            minted = list(ApiToken.objects.filter(oidc_policy=short_lived).order_by("id"))
            if len(minted) >= 2 and minted[0].expires_at < timezone.now() - timedelta(seconds=1):
                break
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the CLI did not renew its token"
            time.sleep(0.2)
        approval_give(release=release, actor=Actor.for_user(personas.sme), role="sme")
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert stdout.startswith("cleared: support-assistant 1.0.0")
    assert "renewed: exchanged a new CI ID token" in stderr
    # Each exchange presented a new ID token (one jti each: none was replayed).
    jtis = [e.data["claims"]["jti"] for e in AuditEvent.objects.filter(action="token_minted_oidc")]
    assert len(jtis) >= 2 and len(set(jtis)) == len(jtis)
    never_printed(stdout + stderr, issuer.runner_token)


def test_a_wait_that_outlives_releasegate_id_token_fails_saying_so(
    live_server, issuer, short_lived
):
    id_token = issuer.token(exp=int(time.time()) + 3)
    started = time.monotonic()
    result = run(live_server, "--wait", "30m", RELEASEGATE_ID_TOKEN=id_token)
    assert result.returncode == 2, result.stderr
    assert "the wait outlived the ID token: RELEASEGATE_ID_TOKEN expired at" in result.stderr
    assert time.monotonic() - started < 40
    assert ApiToken.objects.filter(oidc_policy=short_lived).count() == 1  # never re-exchanged
    never_printed(result.stdout + result.stderr, id_token)


def test_a_wait_that_outlives_the_minted_token_of_a_gitlab_id_token_says_it_is_spent(
    live_server, issuer, short_lived
):
    id_token = issuer.token()  # valid for minutes, but exchanged once only (its jti)
    result = run(live_server, "--wait", "30m", RELEASEGATE_ID_TOKEN=id_token)
    assert result.returncode == 2, result.stderr
    assert "the wait outlived the minted token" in result.stderr
    assert "exchanges an ID token only once" in result.stderr
    never_printed(result.stdout + result.stderr, id_token)
