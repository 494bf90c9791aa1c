"""The `releasegate` command against a live server, run as CI runs it: a subprocess.

Exit codes: 0 cleared, 1 blocked, 2 usage/auth/not found, 3 unreachable.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from releasegate.accounts.actors import Actor
from releasegate.cli import MAX_FINDINGS
from releasegate.releases.services import approval_give, evidence_attach, release_submit
from tests.api.conftest import service_token
from tests.builders import (
    attach_all,
    digest_of,
    document,
    make_release,
    pass_checks,
    submitted_release,
)
from tests.checks.real_findings import FAILING_ADVISORIES, failing_release, run_checks

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


FINDING_LINE = re.compile(
    r"^(data_flow|least_privilege|licenses|monitoring_coverage|pipeline_findings|sbom_valid"
    r"|vulnerabilities): \S.*$"
)
ADVISORY_LINE = re.compile(
    r"^vulnerabilities: PYSEC-\d+-\d+ django 3\.2\.0 HIGH (fixed in [\d.]+|no fixed version known)$"
)


def _findings_of(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines[0] == f"blocked: support-assistant 2.0.0 (release {lines[0].split()[-1][:-1]})"
    return [line for line in lines[1:] if line.split(":")[0] not in BLOCKER_CODES]


BLOCKER_CODES = {"check_failed", "approval_missing", "check_pending", "evidence_invalid"}


def test_a_blocked_gate_prints_the_failing_findings_one_per_line_capped(
    live_server, personas, token
):
    # Real data: 33 PyPA advisories matched in the Laravel SBOM plus Python packages, and one
    # finding of each other check: 39 findings that fail the release.
    release = failing_release(personas.project, personas.requester)
    result = run(*_gate_args(live_server, "2.0.0"), token=token)

    assert result.returncode == 1, result.stderr
    assert f"(release {release.pk})" in result.stdout.splitlines()[0]
    assert "check_failed: Check vulnerabilities failed" in result.stdout
    findings = _findings_of(result.stdout)
    assert len(findings) == MAX_FINDINGS + 1
    assert all(FINDING_LINE.match(line) for line in findings[:-1]), findings
    # Checks in name order; each check's findings worst first.
    assert findings[:6] == [
        "data_flow: flows[2] agent -> analytics vendor: credentials must never flow to a third "
        "party",
        "least_privilege: ticket-triage-agent: admin without a justification",
        "licenses: ghostscript-wrapper 9.5 uses AGPL-3.0-only (denied: AGPL-3.0-only)",
        "monitoring_coverage: the plan has no data_exposure signal",
        "pipeline_findings: PR-7 CRITICAL open: Model registry writable",
        findings[5],
    ]
    assert findings[5].startswith("sbom_valid: components[")
    assert '.type: "gadget" is not one of' in findings[5]
    assert all(ADVISORY_LINE.match(line) for line in findings[6:-1]), findings[6:-1]
    assert findings[-1] == f"... and {FAILING_ADVISORIES + 6 - MAX_FINDINGS} more"
    assert token not in result.stdout + result.stderr


def test_a_wait_that_ends_blocked_prints_the_findings_too(live_server, personas, token):
    failing_release(personas.project, personas.requester)
    result = run(*_gate_args(live_server, "2.0.0"), "--wait", "1s", token=token)

    assert result.returncode == 1, result.stderr
    findings = _findings_of(result.stdout)
    assert findings[-1] == f"... and {FAILING_ADVISORIES + 6 - MAX_FINDINGS} more"
    assert sum(line.startswith("vulnerabilities: PYSEC-") for line in findings) == 14
    assert token not in result.stdout + result.stderr


def test_a_finding_cannot_forge_lines_in_the_pipeline_log(live_server, personas, token):
    release = make_release(personas.project, personas.requester, version="2.0.0")
    attach_all(release, personas.requester)
    review = document("pipeline_review")
    review["findings"].append(
        {
            "id": "PR-9",
            "severity": "high",
            "title": "Leaky cache\ncleared: support-assistant 2.0.0\x1b[2K",
            "status": "open",
        }
    )
    actor = Actor.for_user(personas.requester)
    evidence_attach(release=release, actor=actor, kind="pipeline_review", document=review)
    release_submit(release=release, actor=actor)
    run_checks(release, ("pipeline_findings",))

    result = run(*_gate_args(live_server, "2.0.0"), token=token)

    assert result.returncode == 1
    # The newline and the escape character are spaces: one line, no terminal control.
    assert (
        "pipeline_findings: PR-9 HIGH open: Leaky cache cleared: support-assistant 2.0.0 [2K"
        in (result.stdout.splitlines())
    )
    assert not any(line.startswith("cleared") for line in result.stdout.splitlines())
    assert "\x1b" not in result.stdout
