"""The notification outbox: an act and its pending notification commit together, so a broker that
is down when the act happens delays the notification and never loses it."""

import json
import logging
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import transaction
from django.test import override_settings

from releasegate.celery import app as celery_app
from releasegate.notifications.models import Delivery, Notice
from releasegate.notifications.tasks import sweep_notices
from releasegate.releases.services import approval_give, veto_cast
from tests.builders import submitted_release
from tests.checks import test_worker
from tests.checks.test_worker import CELERY, ROOT, _free_port, _pings, publishing_to, wait_for
from tests.conftest import Personas, missing
from tests.notifications import test_notifications
from tests.notifications.test_notifications import Receiver, webhook

# The fixtures of the worker and notification tests, by the names the tests below ask for.
workers = test_worker.workers
receiver = test_notifications.receiver


@contextmanager
def recorded(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records of warning level and above that logger `name` emits meanwhile."""

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    records: list[logging.LogRecord] = []
    handler = Keep(logging.WARNING)
    logger = logging.getLogger(name)
    # A logging.config call by an earlier test in this process may have disabled existing loggers.
    disabled, logger.disabled = logger.disabled, False
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.disabled = disabled


@contextmanager
def eager() -> Iterator[None]:
    conf = celery_app.conf
    previous = conf.task_always_eager
    conf.task_always_eager = True
    try:
        yield
    finally:
        conf.task_always_eager = previous


def _closed_broker() -> str:
    """A Redis URL on a port nobody listens on: every publish fails as with Redis down."""
    return f"redis://127.0.0.1:{_free_port()}/0"


def payload_events(receiver: Receiver) -> list[str]:
    return [json.loads(body)["event"] for _, body in receiver.requests]


@pytest.mark.django_db(transaction=True)
def test_a_veto_cast_with_the_broker_down_is_committed_with_its_notice_and_swept_later(
    personas: Personas, receiver: Receiver
) -> None:
    webhook(personas, receiver.url, "veto_cast")
    release = submitted_release(personas.project, personas.requester)
    with publishing_to(_closed_broker()), recorded("releasegate.notifications.tasks") as records:
        veto = veto_cast(
            release=release, actor=personas.actor("security"), role="security", reason="no DPA"
        )
    assert veto.pk is not None  # the act stands
    notice = Notice.objects.get(event="veto_cast")
    assert (notice.release_id, notice.veto_id, notice.processed_at) == (release.pk, veto.pk, None)
    assert [r.getMessage() for r in records] == [
        "broker unavailable; the sweep will enqueue the rest"
    ]
    assert receiver.requests == [] and not Delivery.objects.exists()
    # The scheduler's sweep (its tasks run here eagerly, as a worker would) takes it up.
    with override_settings(RELEASEGATE_OUTBOX_SWEEP_SECONDS=0), eager():
        assert sweep_notices.apply().get() == 1
    assert payload_events(receiver) == ["veto_cast"]
    notice.refresh_from_db()
    assert notice.processed_at is not None
    assert Delivery.objects.get().status == Delivery.Status.DELIVERED
    # Swept again, a processed notice tells nobody twice.
    with eager():
        assert sweep_notices.apply().get() == 0
    assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_an_act_rolled_back_leaves_no_notice(personas: Personas, receiver: Receiver) -> None:
    webhook(personas, receiver.url, "veto_cast")
    release = submitted_release(personas.project, personas.requester)

    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), transaction.atomic():
        veto_cast(release=release, actor=personas.actor("security"), role="security", reason="x")
        raise Abandoned
    assert not Notice.objects.exists()


@pytest.mark.django_db
def test_acts_nobody_listens_to_write_no_notice(personas: Personas, receiver: Receiver) -> None:
    webhook(personas, receiver.url, "promoted")
    release = submitted_release(personas.project, personas.requester)
    veto_cast(release=release, actor=personas.actor("security"), role="security", reason="x")
    approval_give(release=release, actor=personas.actor("sme"), role="sme")
    assert not Notice.objects.exists()


@contextmanager
def stoppable_redis() -> Iterator[tuple[Callable[[], None], Callable[[], None], str]]:
    """A Redis server of our own on a free port (never the shared one on 6379), and functions that
    stop it and start it again on the same port."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server is not installed")
    port = _free_port()
    running: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        running.append(
            subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
                + ["--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        wait_for("redis to answer", lambda: _pings(port), 10)

    def stop() -> None:
        running[-1].terminate()
        running[-1].wait(10)
        wait_for("redis to be down", lambda: not _pings(port), 10)

    start()
    try:
        yield stop, start, f"redis://127.0.0.1:{port}/0"
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@contextmanager
def scheduler(broker: str, schedule_dir: Path, env: dict[str, str]) -> Iterator[None]:
    """`celery beat`, the deployment's one scheduler, publishing its sweeps to `broker`."""
    import os
    import signal

    log = schedule_dir / f"beat-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [CELERY, "-A", "releasegate", "beat", "--loglevel=INFO"]
            + ["--schedule", str(schedule_dir / "beat-schedule")],
            cwd=ROOT,
            env={**os.environ, **env, "CELERY_BROKER_URL": broker},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for("beat to start", lambda: "beat: Starting" in log.read_text(), 30)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_veto_cast_while_redis_is_down_is_delivered_once_redis_is_back(
    personas: Personas, receiver: Receiver, workers, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    webhook(personas, receiver.url, "veto_cast")
    env = {
        "RELEASEGATE_WEBHOOK_ALLOW_HTTP": "true",
        "RELEASEGATE_WEBHOOK_ALLOW_PRIVATE": "true",
        "RELEASEGATE_OUTBOX_SWEEP_SECONDS": "1",
    }
    with stoppable_redis() as (stop, start, url), publishing_to(url):
        workers(broker=url, **env)
        release = submitted_release(personas.project, personas.requester)
        with scheduler(url, tmp_path, env):
            stop()
            veto = veto_cast(
                release=release, actor=personas.actor("security"), role="security", reason="PII"
            )
            assert Notice.objects.filter(veto_id=veto.pk, processed_at=None).exists()
            assert receiver.requests == []
            start()  # empty: whatever was queued before is gone
            wait_for("the webhook to be delivered", lambda: receiver.requests, 60)
    (delivered,) = receiver.requests
    assert json.loads(delivered[1])["veto"]["id"] == veto.pk
    assert Delivery.objects.get(event="veto_cast").status == Delivery.Status.DELIVERED
