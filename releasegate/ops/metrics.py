"""Prometheus metrics.

Two sources, each chosen for what it counts:

- Events that happen inside a process and leave no row (a gate query answered, a task's run time)
  are prometheus_client counters and histograms. Gunicorn and Celery run several processes, so when
  PROMETHEUS_MULTIPROC_DIR is set each process writes its values to a memory-mapped file there and
  a scrape sums the files (prometheus_client's multiprocess mode). That keeps the hot path free of
  network round trips: the gate endpoint pays one in-memory increment.
- Facts the database already holds (vetoes cast and active, promotions, check results and
  notification deliveries by status) are counted at scrape time. They are exact for the whole
  fleet, whichever process or container wrote them, and survive restarts; a scrape costs four
  aggregate queries.
"""

import os
from collections.abc import Iterable

from django.db.models import Count, Q
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

GATE_QUERIES = Counter(
    "releasegate_gate_queries",
    "Gate evaluations answered to a caller (API, pages, CLI), by outcome.",
    ["outcome"],
)
TASK_DURATION = Histogram(
    "releasegate_task_duration_seconds",
    "Run time of Celery tasks, by task name and final state.",
    ["task", "state"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class DatabaseCollector(Collector):
    """Counts read from the database when Prometheus scrapes."""

    def collect(self) -> Iterable[Metric]:
        from releasegate.checks.models import CheckResult, CheckStatus
        from releasegate.releases.models import Promotion, Veto

        vetoes = Veto.objects.aggregate(
            cast=Count("id"), active=Count("id", filter=Q(lifted_at__isnull=True))
        )
        cast = CounterMetricFamily("releasegate_vetoes", "Vetoes cast, ever.")
        cast.add_metric([], vetoes["cast"])
        yield cast
        active = GaugeMetricFamily("releasegate_vetoes_active", "Vetoes not lifted.")
        active.add_metric([], vetoes["active"])
        yield active

        promotions = CounterMetricFamily("releasegate_promotions", "Releases promoted, ever.")
        promotions.add_metric([], Promotion.objects.count())
        yield promotions

        by_status = {
            row["status"]: row["n"]
            for row in CheckResult.objects.order_by().values("status").annotate(n=Count("id"))
        }
        checks = GaugeMetricFamily(
            "releasegate_check_results",
            "Stored check results (latest per release, check and evidence manifest), by status.",
            labels=["status"],
        )
        for status in CheckStatus.values:
            checks.add_metric([status], by_status.get(status, 0))
        yield checks

        from releasegate.notifications.models import Delivery

        by_outcome = {
            row["status"]: row["n"]
            for row in Delivery.objects.order_by().values("status").annotate(n=Count("id"))
        }
        deliveries = GaugeMetricFamily(
            "releasegate_notification_deliveries",
            "Notification deliveries (e-mail and webhook), by status.",
            labels=["status"],
        )
        for status in Delivery.Status.values:
            deliveries.add_metric([status], by_outcome.get(status, 0))
        yield deliveries


def render() -> bytes:
    """The exposition text: this process's (or all processes') metrics, then the database's."""
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector())
    if multiprocess_mode():
        processes = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(processes)
        return generate_latest(processes) + generate_latest(database)
    return generate_latest(REGISTRY) + generate_latest(database)
