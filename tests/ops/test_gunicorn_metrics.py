"""Gunicorn with several worker processes, as in the container: /metrics sums every process's
gate counters (prometheus_client multiprocess mode), and each request logs one JSON line."""

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from releasegate.accounts.tokens import token_create
from tests.builders import submitted_release
from tests.conftest import Personas
from tests.ops.conftest import ROOT, base_env, run_python

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

METRICS_TOKEN = "gunicorn-test-metrics-token-0123456789"
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_add_up_gate_queries_served_by_every_gunicorn_process(
    personas: Personas, tmp_path: Path
) -> None:
    release = submitted_release(personas.project, personas.requester)
    _, token = token_create(
        actor=personas.actor("sme"), kind="personal", name="poller", user=personas.sme
    )
    port = free_port()
    multiproc = tmp_path / "prometheus"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "METRICS_TOKEN": METRICS_TOKEN,
        "WEB_CONCURRENCY": "2",
        "PORT": str(port),
    }
    log = (tmp_path / "web.log").open("wb")
    server = subprocess.Popen(
        [GUNICORN, "releasegate.wsgi", "--config", "python:releasegate.ops.gunicorn_conf"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()
            time.sleep(0.1)

        def ask_gate(_: int) -> int:
            response = httpx.get(
                f"{base}/api/v1/releases/{release.pk}/gate",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            return response.status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(ask_gate, range(24)))
        assert statuses == [200] * 24

        scraped = httpx.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
        )
        assert scraped.status_code == 200
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scraped.text)
            for sample in family.samples
        }
        assert samples[("releasegate_gate_queries_total", (("outcome", "blocked"),))] == 24
        # more than one process answered, each writing its own file
        assert len(list(multiproc.glob("counter_*.db"))) >= 2
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    lines = [
        json.loads(line)
        for line in (tmp_path / "web.log").read_text().splitlines()
        if line.startswith("{")
    ]
    gate_lines = [line for line in lines if line.get("path", "").endswith("/gate")]
    assert len(gate_lines) == 24
    assert all(line["status"] == 200 and line["user_id"] == personas.sme.pk for line in gate_lines)
    assert token not in (tmp_path / "web.log").read_text()


PRELOAD_CHECK = """
import threading
from releasegate.ops import gunicorn_conf
import releasegate.wsgi
from django.db import connections
assert gunicorn_conf.preload_app
open_connections = [c.alias for c in connections.all() if c.connection is not None]
print(open_connections, threading.active_count())
"""


def test_the_preloaded_app_opens_no_connection_and_starts_no_thread_before_the_fork() -> None:
    # gunicorn imports releasegate.wsgi once, in the master, and forks every worker from it: a
    # database connection or a thread made by the import would be shared by every worker.
    env = base_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="localhost",
        CELERY_BROKER_URL="memory://",
    )
    done = run_python(PRELOAD_CHECK, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[] 1"
