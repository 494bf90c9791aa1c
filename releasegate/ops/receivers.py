"""Signal receivers: metrics from the gate, request ids and task latency across Celery."""

import logging
import os
import time
from contextvars import Token
from pathlib import Path
from typing import Any

from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
)
from django.db import close_old_connections
from django.dispatch import receiver

from releasegate.ops import metrics
from releasegate.ops.context import current_request_id, request_id_var
from releasegate.releases.gate import GateDecision
from releasegate.releases.signals import gate_evaluated

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "request_id"


@receiver(gate_evaluated, dispatch_uid="ops.metrics.gate_evaluated")
def count_gate_query(sender: Any, decision: GateDecision, **kwargs: Any) -> None:
    # No database here: the gate endpoint's query count is pinned.
    metrics.GATE_QUERIES.labels(outcome="cleared" if decision.cleared else "blocked").inc()


@before_task_publish.connect(dispatch_uid="ops.request_id.publish")
def add_request_id_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


_running: dict[str, tuple[float, Token[str | None]]] = {}


def _request_id_of(task: Any) -> str | None:
    request = task.request
    found = getattr(request, REQUEST_ID_HEADER, None)
    if not found and isinstance(getattr(request, "headers", None), dict):
        found = request.headers.get(REQUEST_ID_HEADER)
    return found if isinstance(found, str) else None


@task_prerun.connect(dispatch_uid="ops.db.prerun")
def drop_unusable_connections(task: Any, **kwargs: Any) -> None:
    """What Django does at each request's start, at each task's (the connection is kept across
    tasks, see CELERY_DB_REUSE_MAX): close a connection that broke or outlived CONN_MAX_AGE."""
    if not getattr(task.request, "is_eager", False):
        close_old_connections()


@task_prerun.connect(dispatch_uid="ops.task.prerun")
def task_started(task_id: str, task: Any, **kwargs: Any) -> None:
    # A task enqueued outside a request (by the scheduler) is known by its own id.
    token = request_id_var.set(_request_id_of(task) or current_request_id() or task_id)
    _running[task_id] = (time.perf_counter(), token)


@task_postrun.connect(dispatch_uid="ops.task.postrun")
def task_finished(task_id: str, task: Any, state: str | None = None, **kwargs: Any) -> None:
    started = _running.pop(task_id, None)
    if started is None:
        return
    began, token = started
    metrics.TASK_DURATION.labels(task=task.name, state=state or "UNKNOWN").observe(
        time.perf_counter() - began
    )
    request_id_var.reset(token)


@worker_init.connect(dispatch_uid="ops.metrics.worker_init")
def clear_stale_worker_metrics(**kwargs: Any) -> None:
    # A restarted container keeps its files; the previous run's processes are gone.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()


@worker_ready.connect(dispatch_uid="ops.metrics.worker_ready")
def serve_worker_metrics(**kwargs: Any) -> None:
    """Workers have no web server: with RELEASEGATE_WORKER_METRICS_PORT set, the main worker
    process serves its pool's task metrics (multiprocess mode) for Prometheus."""
    from django.conf import settings
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    port = settings.RELEASEGATE_WORKER_METRICS_PORT
    if not port:
        return
    registry = CollectorRegistry()
    if metrics.multiprocess_mode():
        MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    start_http_server(port, addr=settings.RELEASEGATE_WORKER_METRICS_ADDR, registry=registry)
    logger.info("worker metrics served", extra={"port": port})


@worker_process_shutdown.connect(dispatch_uid="ops.metrics.worker_process_shutdown")
def forget_dead_worker_process(**kwargs: Any) -> None:
    if metrics.multiprocess_mode():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())
