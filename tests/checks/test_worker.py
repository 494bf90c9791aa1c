"""A real Celery worker process on Redis, against the test database.

The worker is `celery -A releasegate worker` started as a subprocess with DATABASE_URL naming the
test database; this process publishes to the same Redis (database 15, or a Redis of its own on
another port for the restart test). Every wait polls the database with a deadline.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.db import connection

from releasegate.audit.models import AuditEvent
from releasegate.celery import app as celery_app
from releasegate.checks.models import CheckResult
from releasegate.checks.tasks import sweep
from releasegate.releases.selectors import gate_decision, gate_release_queryset
from releasegate.releases.services import approval_give, policy_change
from tests.builders import DEFAULT_CHECKS, confirmed, submitted_release
from tests.checks.ci_server import FakeCI
from tests.conftest import REDIS_URL, missing

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def wait_for(what: str, condition: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    def __init__(self, broker: str, log_dir: Path, **env: str) -> None:
        self.broker = broker
        self.log = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
            "CELERY_BROKER_URL": broker,
            "RELEASEGATE_CHECK_SOFT_SECONDS": "6",
            "RELEASEGATE_CHECK_HARD_SECONDS": "8",
            "RELEASEGATE_CHECK_MAX_RETRIES": "1",
            "RELEASEGATE_CHECK_RETRY_BACKOFF_SECONDS": "1",
            "RELEASEGATE_EXTERNAL_CI_TIMEOUT_SECONDS": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Worker":
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    CELERY,
                    "-A",
                    "releasegate",
                    "worker",
                    "--loglevel=INFO",
                    "--concurrency=2",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-n",
                    f"test-{uuid.uuid4().hex[:6]}@%h",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for("the worker to be ready", lambda: " ready." in self.log.read_text(), 30)
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash or OOM kill would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def publishing_to(broker: str) -> Iterator[None]:
    """Point this process's Celery app (used by the signal receivers and the sweep) at `broker`."""
    previous = celery_app.conf.broker_url
    # Celery reads CELERY_BROKER_URL from the environment before its configuration, and kombu
    # keeps connection and producer pools per broker URL: forget ours, never close them.
    previous_env = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = broker
    celery_app.conf.broker_url = broker
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        celery_app.conf.broker_url = previous
        if previous_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = previous_env


@pytest.fixture
def workers(transactional_db, tmp_path):
    started: list[Worker] = []

    def start(broker: str = REDIS_URL, **env: str) -> Worker:
        worker = Worker(broker, tmp_path, **env).start()
        started.append(worker)
        return worker

    redis.Redis.from_url(REDIS_URL).flushdb()
    with publishing_to(REDIS_URL):
        yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def ci():
    fake = FakeCI().start()
    yield fake
    fake.stop()


def final_results(release, checks=DEFAULT_CHECKS):
    rows = CheckResult.objects.filter(
        release=release,
        manifest_digest=release.manifest_digest,
        status__in=["passed", "failed", "error"],
    )
    found = {r.check_name: r.status for r in rows}
    return found if set(checks) <= set(found) else None


def decision(release):
    return gate_decision(gate_release_queryset().get(pk=release.pk))


def require_external_ci(personas, ci, fmt="gitlab"):
    # Only external_ci required: dropping the others loosens the gate, so security confirms.
    confirmed(
        policy_change(
            project=personas.project,
            actor=personas.actor("admin"),
            changes={
                "required_checks": ["external_ci"],
                "external_ci": {"url": ci.url, "format": fmt},
            },
        ),
        by=personas.security,
    )


def sweep_until(what: str, condition: Callable[[], object], timeout: float) -> object:
    """Run the scheduler's sweep every half second, as beat would, until `condition` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        sweep.apply()
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_submitting_runs_every_check_on_the_worker_and_clears_the_gate(
    personas, advisory_db, workers
):
    workers()
    release = submitted_release(personas.project, personas.requester)  # enqueued after commit
    results = wait_for("every check to finish", lambda: final_results(release), 30)
    assert set(results.values()) == {"passed"}, results
    approval_give(release=release, actor=personas.actor("security"), role="security")
    approval_give(release=release, actor=personas.actor("sme"), role="sme")
    assert decision(release).cleared, decision(release).blockers


def test_a_worker_killed_mid_check_then_restarted_yields_exactly_one_result(personas, workers, ci):
    ci.hold.set()  # the CI system holds the request: the check is in flight until we kill it
    ci.body = {"status": "success"}
    require_external_ci(personas, ci)
    env = {
        "RELEASEGATE_CHECK_SOFT_SECONDS": "4",
        "RELEASEGATE_CHECK_HARD_SECONDS": "5",
        "RELEASEGATE_EXTERNAL_CI_TIMEOUT_SECONDS": "10",
    }
    first = workers(**env)
    release = submitted_release(personas.project, personas.requester)
    wait_for("the worker to call the CI system", lambda: ci.requests, 15)
    assert CheckResult.objects.get(release=release, check_name="external_ci").status == "running"
    first.kill()
    ci.hold.clear()
    ci.release.set()
    workers(**env)
    # The message died unacknowledged with the worker; the sweep enqueues the check again once the
    # dead worker's claim (hard limit + 5 s) has lapsed, and the new worker takes it over.
    sweep_until(
        "the check to be taken over and finish", lambda: final_results(release, ["external_ci"]), 30
    )
    rows = CheckResult.objects.filter(release=release, check_name="external_ci")
    assert [(r.status, r.attempts) for r in rows] == [("passed", 2)]
    recorded = AuditEvent.objects.filter(action="check_recorded", release_id=release.pk)
    assert [e.data["status"] for e in recorded] == ["passed"]
    assert not [b for b in decision(release).blockers if b.code.startswith("check_")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def own_redis() -> Iterator[Callable[[], None]]:
    """A Redis server of our own (never the shared one on 6379), without persistence, and a
    function that kills and restarts it empty."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed")
    port = _free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        wait_for("redis to answer", lambda: _pings(port), 10)

    def restart() -> None:
        procs[-1].kill()
        procs[-1].wait(10)
        start()

    start()
    try:
        yield restart, f"redis://127.0.0.1:{port}/0"  # type: ignore[misc]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def queued_checks(queue: redis.Redis) -> int:
    messages = [json.loads(m) for m in queue.lrange("celery", 0, -1)]
    return sum(m["headers"]["task"] == "releasegate.checks.run_check" for m in messages)


def test_redis_restarted_under_a_sweep_loses_no_check(personas, advisory_db, workers):
    with own_redis() as (restart, url), publishing_to(url):
        queue = redis.Redis.from_url(url)
        release = submitted_release(personas.project, personas.requester)  # enqueued, no worker
        assert queued_checks(queue) == len(DEFAULT_CHECKS)
        restart()  # Redis comes back empty: every queued check is lost
        assert queued_checks(queue) == 0
        workers(broker=url)
        assert sweep.apply().get() == len(DEFAULT_CHECKS)
        restart()  # and again, under the worker, while the sweep's messages are in flight
        results = sweep_until(
            "every check to finish after the restarts", lambda: final_results(release), 45
        )
        assert set(results.values()) == {"passed"}, results
        counts = {
            c: CheckResult.objects.filter(release=release, check_name=c).count()
            for c in DEFAULT_CHECKS
        }
        assert set(counts.values()) == {1}, counts


def test_a_ci_that_times_out_blocks_with_error_then_recovers_when_it_answers(personas, workers, ci):
    ci.hold.set()
    ci.body = {"status": "success"}
    require_external_ci(personas, ci)
    workers()
    release = submitted_release(personas.project, personas.requester)
    wait_for(
        "the check to give up",
        lambda: CheckResult.objects.filter(
            release=release, check_name="external_ci", status="error"
        ).exists(),
        20,
    )
    row = CheckResult.objects.get(release=release, check_name="external_ci")
    assert "did not answer in time" in row.summary
    assert len(ci.requests) == 2  # one retry, with backoff, then fail closed
    blockers = decision(release).blockers
    assert [(b.code, b.details["status"]) for b in blockers if b.details.get("check")] == [
        ("check_failed", "error")
    ]
    ci.hold.clear()
    ci.release.set()
    sweep_until(
        "the check to recover",
        lambda: CheckResult.objects.filter(
            release=release, check_name="external_ci", status="passed"
        ).exists(),
        20,
    )
    assert not [b for b in decision(release).blockers if b.details.get("check")]
