"""Render time of the release page, the reviewer's workspace, with a large release: an SBOM of
1,000 components, 50 check results, every evidence item and a previous release to compare with.

Runs against a throwaway database test_<name> (created and dropped here) on the server
DATABASE_URL names (default postgres://postgres@127.0.0.1:5432/rg_bench):

    .venv/bin/python bench/page_release.py -n 200

Prints p50/p99 over N renders (after a warm-up) and the queries one render makes. The database
connection is kept open between renders, as a production server with persistent connections
does, so the numbers are the page's own work.
"""

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasegate.settings")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("RELEASEGATE_FAST_PASSWORD_HASHER", "true")
os.environ.setdefault("CELERY_BROKER_URL", "memory://")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rg_bench")


def build(components: int, checks: int) -> int:
    from releasegate.checks.models import CheckResult
    from releasegate.releases.services import evidence_attach
    from tests.builders import document, pass_checks, submitted_release
    from tests.conftest import make_personas

    people = make_personas()
    submitted_release(people.project, people.requester, version="1.0.0")
    release = submitted_release(people.project, people.requester, version="1.1.0")
    sbom = document("sbom")
    sbom["components"] = [
        {"type": "library", "name": f"lib{i}", "version": "1.0.0", "purl": f"pkg:pypi/lib{i}@1.0.0"}
        for i in range(components)
    ]
    evidence_attach(release=release, actor=people.actor("requester"), kind="sbom", document=sbom)
    pass_checks(release)
    release.refresh_from_db()
    CheckResult.objects.bulk_create(
        CheckResult(
            release=release,
            check_name="external_ci",
            manifest_digest=release.manifest_digest,
            status="passed",
            source=CheckResult.Source.CI,
            external_id=f"run-{i}",
            summary=f"pipeline run {i}",
        )
        for i in range(max(0, checks - 7))
    )
    return release.pk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="renders to time (default 200)")
    parser.add_argument("--components", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=50)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections, connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    setup_test_environment()
    request_started.disconnect(reset_queries)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    connection.settings_dict["CONN_MAX_AGE"] = None  # the test client reconnects the closer
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        release_id = build(args.components, args.checks)
        client = Client()
        client.force_login(get_user_model().objects.get(username="security"))
        url = f"/releases/{release_id}/"
        for _ in range(10):
            assert client.get(url).status_code == 200
        with CaptureQueriesContext(connection) as queries:
            size = len(client.get(url).content)
        query_count = len(queries)
        times = []
        for _ in range(args.n):
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        cuts = statistics.quantiles(times, n=100)
        print(
            f"release page ({args.components} SBOM components, {args.checks} check results, "
            f"{connection.vendor}): n={args.n} p50={cuts[49]:.1f} ms p99={cuts[98]:.1f} ms "
            f"max={max(times):.1f} ms; {query_count} queries, {size // 1024} KiB per render"
        )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
