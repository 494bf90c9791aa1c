"""A short run of the load harness (bench/load.py): concurrent API clients doing the whole story
against gunicorn, a Celery worker and beat on Redis, on PostgreSQL."""

import pytest
from django.db import connection

from bench.load import Config, print_report, run
from tests.conftest import REDIS_URL

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_under_concurrent_load_nothing_fails_deadlocks_sticks_or_slips_past_a_veto() -> None:
    database_url = f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"
    config = Config(clients=8, projects=4, seconds=20, settle_timeout=30)
    report = run(config, database_url=database_url, broker=REDIS_URL)
    print_report(report)
    assert report["stories"] > 0 and report["promoted"] > 0, report
    assert report["server_errors"] == 0, report["server_error_samples"]
    assert report["transport_errors"] == [], report["transport_errors"]
    assert report["deadlocks"] == 0
    assert report["settled_after_s"] is not None, f"{report['unsettled_checks']} checks unsettled"
    assert report["promotions_past_a_veto"] == 0
    assert report["audit_intact"], report["audit"]
