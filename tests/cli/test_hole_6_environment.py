"""Hole 6 through the CLI: a release cleared for staging does not clear a production deploy."""

from typing import Any

import pytest

from releasegate.releases.services import approval_give
from tests.builders import pass_checks, submitted_release
from tests.cli.test_cli import run, token  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)


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


def test_hole_6_staging_clearance_exits_1_for_a_production_deploy(
    live_server,
    personas,
    token,  # noqa: F811
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


def test_the_gate_command_needs_the_environment(live_server, personas, token):  # noqa: F811
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
