"""Benchmark: GET /api/v1/gate with a service token, side by side with a bare DRF view.

    .venv/bin/python bench/gate_api.py [--seconds 8] [--concurrency 4] [--rounds 2] [--threads 1]

Creates a scratch PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/rg_bench_gate), migrates it, seeds a release with full facts
(five evidence items, seven passed checks, two approvals, a lifted veto, earlier releases), serves
the app with gunicorn (2 workers: sync by default, gthread with --threads; DEBUG off) on loopback,
and measures both endpoints in the same run, interleaved, with a small thread pool of keep-alive
HTTP clients. The bare view is mounted only inside this benchmark (see `application`). Prints
requests/s, p50, p99 and the ratio; the scratch database is dropped at the end.
"""

import argparse
import http.client
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/rg_bench_gate"
GATE_PATH = "/api/v1/gate?project=bench-assistant&version=2.0.0"
BARE_PATH = "/bench/bare"

# -- the WSGI application gunicorn serves: releasegate plus the bare view -------------------------

_app: Any = None
urlpatterns: list[Any] = []


def _build_app() -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasegate.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.urls import include, path
    from rest_framework.permissions import AllowAny
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class BareView(APIView):
        """The floor: Django and DRF with no authentication, no database, a constant body."""

        authentication_classes: list[Any] = []
        permission_classes = [AllowAny]

        def get(self, request: Request) -> Response:
            return Response({"cleared": True})

    urlpatterns[:] = [
        path(BARE_PATH.lstrip("/"), BareView.as_view()),
        path("", include("releasegate.urls")),
    ]
    settings.ROOT_URLCONF = __name__
    return get_wsgi_application()


def application(environ: dict[str, Any], start_response: Any) -> Any:
    global _app
    if _app is None:
        _app = _build_app()
    return _app(environ, start_response)


# -- setting up ------------------------------------------------------------------------------------


def _env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        CELERY_BROKER_URL="memory://",
        DJANGO_SETTINGS_MODULE="releasegate.settings",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "bench")]),
    )
    return env


def _recreate_database(database_url: str, *, drop_only: bool = False) -> None:
    import psycopg

    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


SEED = r"""
import django
django.setup()
from django.contrib.auth import get_user_model
from releasegate.accounts.actors import Actor
from releasegate.accounts.tokens import token_create
from releasegate.checks.services import check_result_record
from releasegate.releases.models import Veto
from releasegate.releases.services import (
    approval_give, evidence_attach, project_create, release_create, release_submit, role_grant,
    veto_cast,
)
from releasegate.releases.selectors import gate_decision, gate_release_queryset
from tests.builders import DEFAULT_CHECKS, EVIDENCE, digest_of, document

system = Actor.system_actor()
User = get_user_model()
project = project_create(slug="bench-assistant", name="Bench assistant", actor=system)
people = {}
for name in ("requester", "security", "sme", "admin"):
    people[name] = User.objects.create_user(name, password=None)
    role_grant(project=project, user=people[name], role=name, actor=system)
as_ = {name: Actor.for_user(user) for name, user in people.items()}

def full_release(version):
    release = release_create(project=project, actor=as_["requester"], version=version,
                             artifact_digest=digest_of(version), environment="production")
    for kind in EVIDENCE:
        evidence_attach(release=release, actor=as_["requester"], kind=kind, document=document(kind))
    release_submit(release=release, actor=as_["requester"])
    release.refresh_from_db()
    for check in DEFAULT_CHECKS:
        check_result_record(
            release=release, actor=system, check=check, status="passed", summary="ok"
        )
    return release

for version in ("1.0.0", "1.1.0"):
    old = full_release(version)
    veto = veto_cast(release=old, actor=as_["security"], role="security", reason="old finding")
    from releasegate.releases.services import veto_lift
    veto_lift(veto=veto, actor=as_["security"], reason="fixed")
release = full_release("2.0.0")
approval_give(release=release, actor=as_["security"], role="security")
approval_give(release=release, actor=as_["sme"], role="sme")
decision = gate_decision(gate_release_queryset().get(pk=release.pk))
assert decision.cleared, decision.blockers
_, raw = token_create(actor=as_["admin"], kind="service", name="bench", project=project,
                      scopes=["gate:read"])
print(raw)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", BARE_PATH)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start serving in time")


# -- measuring -------------------------------------------------------------------------------------


def _load(
    port: int, path: str, headers: dict[str, str], seconds: float, concurrency: int
) -> dict[str, float]:
    """Keep `concurrency` keep-alive clients busy for `seconds`; every answer must be a 200."""
    stop = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: list[str] = []

    def client(mine: list[float]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                failures.append(repr(error))
                continue
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                failures.append(f"status {response.status}")
        conn.close()

    threads = [threading.Thread(target=client, args=(mine,)) for mine in latencies]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    every = sorted(latency for mine in latencies for latency in mine)
    if failures or not every:
        raise SystemExit(f"{path}: {len(failures)} failed requests, e.g. {failures[:3]}")
    return {
        "requests": len(every),
        "rps": len(every) / elapsed,
        "p50": statistics.median(every) * 1000,
        "p99": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
    }


def _merge(runs: list[dict[str, float]]) -> dict[str, float]:
    total = sum(r["requests"] for r in runs)
    return {
        "requests": total,
        "rps": statistics.fmean(r["rps"] for r in runs),
        "p50": statistics.fmean(r["p50"] for r in runs),
        "p99": max(r["p99"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="per endpoint and round (max 60)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (max 32)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (max 5)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="gunicorn threads per worker (1: sync workers; more: gthread, max 8)",
    )
    args = parser.parse_args()
    seconds = min(max(args.seconds, 1.0), 60.0)
    concurrency = min(max(args.concurrency, 1), 32)
    rounds = min(max(args.rounds, 1), 5)
    threads = min(max(args.threads, 1), 8)

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    env = _env(database_url)
    _recreate_database(database_url)
    server = None
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run(
            [PYTHON, "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        token = seeded.stdout.strip().splitlines()[-1]
        port = _free_port()
        server = subprocess.Popen(
            [
                str(Path(PYTHON).with_name("gunicorn")),
                "gate_api:application",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--threads",
                str(threads),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until_serving(port, time.monotonic() + 60)
        gate_headers = {"Authorization": f"Bearer {token}"}
        # Warm both workers and both paths (first request builds the app and opens connections).
        _load(port, BARE_PATH, {}, 1.5, concurrency)
        _load(port, GATE_PATH, gate_headers, 1.5, concurrency)
        bare_runs, gate_runs = [], []
        for _ in range(rounds):
            bare_runs.append(_load(port, BARE_PATH, {}, seconds, concurrency))
            gate_runs.append(_load(port, GATE_PATH, gate_headers, seconds, concurrency))
        bare, gate = _merge(bare_runs), _merge(gate_runs)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        _recreate_database(database_url, drop_only=True)

    kind = "sync workers" if threads == 1 else f"gthread workers x {threads} threads"
    print(
        f"gunicorn 2 {kind}, DEBUG off, PostgreSQL; {concurrency} clients, "
        f"{rounds} x {seconds:.0f}s per endpoint, interleaved"
    )
    print(f"{'endpoint':<44} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, result in (
        ("bare DRF view (constant body)", bare),
        ("GET /api/v1/gate (service token)", gate),
    ):
        print(
            f"{name:<44} {result['requests']:>9.0f} {result['rps']:>8.1f} "
            f"{result['p50']:>8.2f} {result['p99']:>8.2f}"
        )
    ratio = gate["rps"] / bare["rps"]
    print(f"gate / bare throughput: {ratio:.2f} (target >= 0.50)")
    return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
