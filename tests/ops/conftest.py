"""Helpers for the ops tests: production-like environments for subprocesses."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def env_example() -> dict[str, str]:
    """docker/.env.example as a dict, blanks filled the way an operator would."""
    values: dict[str, str] = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    values["SECRET_KEY"] = secrets.token_urlsafe(50)
    values["METRICS_TOKEN"] = secrets.token_urlsafe(32)
    values["POSTGRES_PASSWORD"] = secrets.token_urlsafe(16)
    return values


def base_env(**overrides: str) -> dict[str, str]:
    """A clean environment: only PATH and HOME from ours, so no test default leaks in."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    env.update(overrides)
    return env


def run_python(
    code: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_manage(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
