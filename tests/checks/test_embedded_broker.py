"""The embedded default: a worker and the beat scheduler on kombu's file broker, with no Redis."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from releasegate.checks.models import CheckResult
from tests.builders import DEFAULT_CHECKS, submitted_release
from tests.checks.test_worker import ROOT, final_results, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CELERY = str(Path(sys.executable).with_name("celery"))


def test_worker_and_beat_on_the_file_broker_check_a_release_without_redis(
    personas, advisory_db, tmp_path
):
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "CELERY_BROKER_URL": "filesystem://",
        "REDIS_URL": "",
        "RELEASEGATE_DATA_DIR": str(tmp_path),
        "RELEASEGATE_SWEEP_SECONDS": "1",
    }
    # Submitted before the worker and scheduler start: only beat's sweep can get it checked.
    release = submitted_release(personas.project, personas.requester)
    assert not CheckResult.objects.filter(release=release).exists()
    procs = []
    try:
        for role in ("worker", "beat"):
            log = open(tmp_path / f"{role}.log", "wb")  # noqa: SIM115
            args = [CELERY, "-A", "releasegate", role, "--loglevel=INFO"]
            if role == "worker":
                args += ["--concurrency=1", "--without-gossip", "--without-mingle"]
            procs.append(
                subprocess.Popen(
                    args,
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        results = wait_for("the sweep and the worker", lambda: final_results(release), 40)
        assert set(results.values()) == {"passed"}, results
        assert (tmp_path / "broker" / "queue").is_dir()
        assert len(results) == len(DEFAULT_CHECKS)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
