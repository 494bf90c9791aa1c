"""/metrics: Prometheus text with gate outcomes, vetoes, promotions, check results and task
latency; open with DEBUG, otherwise only with the bearer METRICS_TOKEN."""

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from releasegate.notifications.tasks import sweep_notices
from releasegate.releases.services import release_promote, veto_cast
from tests.builders import submitted_release
from tests.conftest import Personas
from tests.releases.gatehelpers import cleared_release, decide

TOKEN = "metrics-token-for-tests-0123456789"


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with override_settings(METRICS_TOKEN=TOKEN):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def gate(samples: dict, outcome: str) -> float:  # type: ignore[type-arg]
    return samples.get(("releasegate_gate_queries_total", (("outcome", outcome),)), 0.0)


def test_metrics_count_gate_queries_by_outcome_vetoes_promotions_and_checks(
    client: Client, personas: Personas
) -> None:
    before = scrape(client)
    blocked = submitted_release(personas.project, personas.requester, version="1.0.0")
    cleared = cleared_release(personas, version="2.0.0")
    for _ in range(3):
        decide(blocked)
    decide(cleared)
    decide(cleared)
    release_promote(release=cleared, actor=personas.actor("requester"))
    veto_cast(
        release=blocked, actor=personas.actor("security"), role="security", reason="leaks PII"
    )

    after = scrape(client)
    assert gate(after, "blocked") - gate(before, "blocked") == 3
    assert gate(after, "cleared") - gate(before, "cleared") == 2
    assert after[("releasegate_vetoes_total", ())] == 1
    assert after[("releasegate_vetoes_active", ())] == 1
    assert after[("releasegate_promotions_total", ())] == 1
    assert after[("releasegate_check_results", (("status", "passed"),))] == 7
    assert after[("releasegate_check_results", (("status", "failed"),))] == 0
    assert after[("releasegate_notification_deliveries", (("status", "failed"),))] == 0


def test_metrics_record_task_latency(client: Client, personas: Personas) -> None:
    key = (
        "releasegate_task_duration_seconds_count",
        (("state", "SUCCESS"), ("task", "releasegate.ops.tasks.sweep_notices")),
    )
    before = scrape(client).get(key, 0.0)
    sweep_notices.apply()
    sweep_notices.apply()
    assert scrape(client)[key] - before == 2


@pytest.mark.django_db
def test_metrics_are_not_found_in_production_without_a_token(client: Client) -> None:
    with override_settings(METRICS_TOKEN=""):
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


@pytest.mark.django_db
def test_metrics_need_the_exact_bearer_token(client: Client) -> None:
    with override_settings(METRICS_TOKEN=TOKEN):
        missing = client.get("/metrics")
        wrong = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x")
        basic = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")
        right = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert missing.status_code == wrong.status_code == basic.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert b"releasegate_gate_queries" not in missing.content
    assert right.status_code == 200
    assert b"releasegate_gate_queries" in right.content


@pytest.mark.django_db
def test_metrics_are_open_in_development(client: Client) -> None:
    with override_settings(DEBUG=True, METRICS_TOKEN=""):
        response = client.get("/metrics")
    assert response.status_code == 200
    assert b"# TYPE releasegate_promotions_total counter" in response.content
