"""The compose file and Dockerfile name only commands and paths the project really has.

Docker cannot run here, so the files are parsed and every command checked against the code.
"""

import importlib
import re
import shlex
from typing import Any

import pytest
import yaml
from django.core.management import get_commands

from releasegate.celery import app as celery_app
from tests.ops.conftest import DOCKER, ROOT

SERVICES = {"web", "worker", "scheduler", "migrate", "db", "redis"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_compose_defines_every_service_with_health_check_and_restart_policy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) >= SERVICES
    for name in SERVICES:
        service = services[name]
        test = service["healthcheck"]["test"]
        assert test and test[0] in {"CMD", "CMD-SHELL"}, name
        assert service["restart"] in {"always", "unless-stopped"} or service["restart"].startswith(
            "on-failure"
        ), name


def test_web_runs_gunicorn_on_the_project_wsgi_app_with_a_real_config(
    compose: dict[str, Any],
) -> None:
    command = _command(compose["services"]["web"])
    assert command[0] == "gunicorn"
    module, _, attribute = command[1].partition(":")
    assert getattr(importlib.import_module(module), attribute or "application")
    config = command[command.index("--config") + 1]
    assert config.startswith("python:")
    conf = importlib.import_module(config.removeprefix("python:"))
    assert callable(conf.child_exit) and callable(conf.on_starting)
    assert conf.bind.endswith(":8000")


def test_worker_and_scheduler_run_the_project_celery_app(compose: dict[str, Any]) -> None:
    worker = _command(compose["services"]["worker"])
    scheduler = _command(compose["services"]["scheduler"])
    for command, sub in ((worker, "worker"), (scheduler, "beat")):
        assert command[:3] == ["celery", "-A", "releasegate"]
        assert command[3] == sub
    assert importlib.import_module("releasegate").celery_app is celery_app
    assert celery_app.main == "releasegate"
    # The notification tasks live where autodiscovery looks (<installed app>.tasks).
    from celery.loaders.base import find_related_module
    from django.conf import settings

    assert "releasegate.notifications" in settings.INSTALLED_APPS
    tasks = find_related_module("releasegate.notifications", "tasks").__name__
    assert tasks == "releasegate.notifications.tasks"


def test_tasks_keep_the_names_the_broker_and_the_schedule_know_them_by() -> None:
    """Retries waiting in the broker and the beat schedule name a task; a task moved to another
    module keeps its registered name, or those messages would be dropped as unknown."""
    from django.conf import settings

    registered = set(celery_app.tasks)
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= registered
    assert {
        "releasegate.checks.run_check",
        "releasegate.checks.sweep",
        "releasegate.ops.tasks.notify_release_event",
        "releasegate.ops.tasks.deliver_notification",
        "releasegate.ops.tasks.sweep_notices",
        "releasegate.ops.tasks.sweep_deliveries",
        "releasegate.accounts.tasks.tell_people",
    } <= registered


def test_migrate_runs_once_before_the_processes_that_need_the_schema(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    command = _command(services["migrate"])
    assert command[:3] == ["python", "manage.py", "migrate"]
    assert "migrate" in get_commands()
    for name in ("web", "worker", "scheduler"):
        assert (
            services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )


def test_health_checks_call_probes_that_exist(compose: dict[str, Any]) -> None:
    from releasegate.ops import probe

    for name in ("web", "migrate", "scheduler"):
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[1:4] == ["python", "-m", "releasegate.ops.probe"], name
        assert probe.main(["probe", "nonsense"]) == 2
        assert test[4] in {"web", "broker", "database"}
    worker = compose["services"]["worker"]["healthcheck"]["test"][1]
    assert worker.startswith("celery -A releasegate inspect ping")


def test_the_scheduler_is_never_replicated(compose: dict[str, Any]) -> None:
    scheduler = compose["services"]["scheduler"]
    assert "deploy" not in scheduler or scheduler["deploy"].get("replicas", 1) == 1


def test_example_environment_covers_what_compose_interpolates(compose: dict[str, Any]) -> None:
    text = (DOCKER / "compose.yaml").read_text()
    needed = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = (DOCKER / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert needed <= defined
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "METRICS_TOKEN", "DEBUG"} <= defined


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_multi_stage_slim_and_runs_as_a_non_root_user() -> None:
    instructions = _dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) == 2
    assert stages[0].endswith("AS builder") and "slim" in stages[1]
    runtime_start = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    runtime = instructions[runtime_start:]
    runtime_runs = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    assert "build-essential" not in runtime_runs and "gcc" not in runtime_runs
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert "collectstatic" in runtime_runs


def test_dockerfile_copies_paths_that_exist_and_starts_real_entry_points() -> None:
    instructions = _dockerfile_instructions()
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
    cmd = next(rest for keyword, rest in reversed(instructions) if keyword == "CMD")
    assert cmd.startswith(
        '["gunicorn", "releasegate.wsgi", "--config", "python:releasegate.ops.gunicorn_conf"'
    )
    healthcheck = next(rest for keyword, rest in instructions if keyword == "HEALTHCHECK")
    assert '"-m", "releasegate.ops.probe", "web"' in healthcheck
    importlib.import_module("releasegate.ops.probe")
