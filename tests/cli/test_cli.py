"""The `releasegate` command against a live server, run as CI runs it: a subprocess.

Exit codes: 0 cleared, 1 blocked, 2 usage/auth/not found, 3 unreachable.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from releasegate.accounts.actors import Actor
from releasegate.releases.services import approval_give
from tests.api.conftest import service_token
from tests.builders import digest_of, pass_checks, submitted_release

pytestmark = pytest.mark.django_db(transaction=True)

CLI = str(Path(sys.executable).with_name("releasegate"))
EVERY_SCOPE = ("gate:read", "releases:write", "checks:write", "releases:promote")


def run(*args: str, token: str | None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RELEASEGATE_TOKEN"}
    if token is not None:
        env["RELEASEGATE_TOKEN"] = token
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def token(personas: Any) -> str:
    return service_token(personas, *EVERY_SCOPE)[1]


PROD = ("--environment", "production")


def _waiting_release(personas: Any, version: str = "1.0.0") -> Any:
    """In review, evidence and checks complete, security approved: only the sme is missing."""
    release = submitted_release(personas.project, personas.requester, version=version)
    pass_checks(release)
    approval_give(release=release, actor=personas.actor("security"), role="security")
    return release


def _cleared(personas: Any, version: str = "1.0.0") -> Any:
    release = _waiting_release(personas, version)
    approval_give(release=release, actor=personas.actor("sme"), role="sme")
    return release


def _gate_args(live_server: Any, version: str = "1.0.0") -> list[str]:
    return [
        "gate",
        "--url",
        live_server.url,
        "--project",
        "support-assistant",
        "--version",
        version,
        "--environment",
        "production",
    ]


def test_cleared_release_exits_0_and_the_token_is_never_printed(live_server, personas, token):
    _cleared(personas)
    result = run(*_gate_args(live_server), token=token)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cleared: support-assistant 1.0.0")
    assert token not in result.stdout + result.stderr


def test_blocked_release_exits_1_with_one_blocker_per_line(live_server, personas, token):
    _waiting_release(personas)
    result = run(*_gate_args(live_server), token=token)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("blocked: support-assistant 1.0.0")
    assert lines[1:] == ["approval_missing: sme approval needed (0 of 1)."]


def test_gate_by_digest_with_json_prints_the_decision(live_server, personas, token):
    release = _cleared(personas)
    result = run(
        "gate",
        "--url",
        live_server.url,
        "--digest",
        release.artifact_digest,
        "--json",
        "--environment",
        "production",
        token=token,
    )
    assert result.returncode == 0
    decision = json.loads(result.stdout)
    assert decision["release"]["id"] == release.pk and decision["cleared"] is True


@pytest.mark.parametrize(
    "args, token_kind",
    [
        (["gate", "--project", "support-assistant", *PROD], "valid"),  # no version nor digest
        (["gate", "--project", "support-assistant", "--version", "1.0.0", *PROD], "missing"),
        (["gate", "--project", "support-assistant", "--version", "1.0.0", *PROD], "forged"),
        (["gate", "--project", "support-assistant", "--version", "9.9.9", *PROD], "valid"),
        (["gate", "--digest", digest_of("nothing"), "--wait", "soon", *PROD], "valid"),
        (["gate", "--project", "support-assistant", "--version", "1.0.0"], "valid"),  # no env
        (
            [
                "report-check",
                "--release",
                "1",
                "--check",
                "sbom_valid",
                "--status",
                "green",
                "--external-id",
                "x",
            ],
            "valid",
        ),
    ],
)
def test_usage_auth_and_not_found_exit_2(live_server, personas, token, args, token_kind):
    _cleared(personas)
    chosen = {"valid": token, "missing": None, "forged": token[:-5] + "XXXXX"}[token_kind]
    result = run(args[0], "--url", live_server.url, *args[1:], token=chosen)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == "" or "cleared" not in result.stdout


def test_unreachable_server_exits_3(personas, token):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    result = run(
        "gate",
        "--url",
        f"http://127.0.0.1:{port}",
        "--digest",
        digest_of("a"),
        "--environment",
        "production",
        token=token,
    )
    assert result.returncode == 3
    assert "cannot reach" in result.stderr


def test_wait_turns_0_when_a_reviewer_approves_during_the_wait(live_server, personas, token):
    release = _waiting_release(personas)
    env_first = {"RELEASEGATE_POLL_FIRST_SECONDS": "0.3"}
    env = {**{k: v for k, v in os.environ.items()}, **env_first, "RELEASEGATE_TOKEN": token}
    process = subprocess.Popen(
        [CLI, *_gate_args(live_server), "--wait", "60s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The CLI reports each wait on stderr: once it has been told "blocked", approve.
        first_wait = process.stderr.readline()
        assert first_wait.startswith("waiting"), first_wait
        assert process.poll() is None
        approval_give(release=release, actor=Actor.for_user(personas.sme), role="sme")
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert stdout.startswith("cleared: support-assistant 1.0.0")


def test_wait_that_runs_out_exits_1(live_server, personas, token):
    _waiting_release(personas)
    started = time.monotonic()
    result = run(*_gate_args(live_server), "--wait", "2s", token=token)
    assert result.returncode == 1
    assert 1.5 <= time.monotonic() - started < 30
    assert "approval_missing" in result.stdout


def test_promote_exits_1_when_blocked_and_0_when_cleared(live_server, personas, token):
    blocked = _waiting_release(personas, "1.0.0")
    result = run("promote", "--url", live_server.url, "--release", str(blocked.pk), token=token)
    assert result.returncode == 1
    assert "approval_missing: sme approval needed (0 of 1)." in result.stdout.splitlines()
    cleared = _cleared(personas, "2.0.0")
    result = run("promote", "--url", live_server.url, "--release", str(cleared.pk), token=token)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("promoted: support-assistant 2.0.0")


def test_report_check_records_a_result(live_server, personas, token):
    release = submitted_release(personas.project, personas.requester)
    result = run(
        "report-check",
        "--url",
        live_server.url,
        "--release",
        str(release.pk),
        "--check",
        "external_ci",
        "--status",
        "passed",
        "--external-id",
        "gh-1",
        "--summary",
        "ok",
        "--details-url",
        "https://ci.example.com/1",
        token=token,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"recorded: external_ci passed on release {release.pk}"
    assert release.check_results.get().external_id == "gh-1"


def _cleared_for_staging(personas: Any) -> Any:
    release = submitted_release(
        personas.project, personas.requester, version="2.0.0", environment="staging"
    )
    pass_checks(release)
    approval_give(release=release, actor=personas.actor("security"), role="security")
    approval_give(release=release, actor=personas.actor("sme"), role="sme")
    return release


def _gate(live_server: Any, environment: str, secret: str) -> Any:
    return run(
        "gate",
        "--url",
        live_server.url,
        "--project",
        "support-assistant",
        "--version",
        "2.0.0",
        "--environment",
        environment,
        token=secret,
    )


def test_a_staging_clearance_exits_1_for_a_production_deploy(
    live_server,
    personas,
    token,
):
    _cleared_for_staging(personas)
    production = _gate(live_server, "production", token)
    assert production.returncode == 1, production.stderr
    assert production.stdout.splitlines()[1] == (
        "wrong_environment: The release is for staging, not production."
    )
    staging = _gate(live_server, "staging", token)
    assert staging.returncode == 0, staging.stderr
    assert staging.stdout.startswith("cleared: support-assistant 2.0.0")


def test_the_gate_command_needs_the_environment(live_server, personas, token):
    _cleared_for_staging(personas)
    result = run(
        "gate",
        "--url",
        live_server.url,
        "--project",
        "support-assistant",
        "--version",
        "2.0.0",
        token=token,
    )
    assert result.returncode == 2
    assert "--environment" in result.stderr
