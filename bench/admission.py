"""Benchmark: POST /api/v1/admission/production (a pod with 5 containers) beside GET /api/v1/gate.

    .venv/bin/python bench/admission.py [--seconds 8] [--concurrency 4] [--rounds 2]

Same set-up as bench/gate_api.py (whose helpers it uses): a scratch PostgreSQL database
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/rg_bench_admission), five
releases promoted to production with full facts (evidence, seven passed checks, two approvals),
releasegate's own gunicorn configuration with 2 workers, DEBUG off, on loopback. The review is
a real AdmissionReview of a Pod whose five containers run the five releases' images (five distinct
digests: five gate questions); every answer must be 200 and `allowed`. Both endpoints are
measured in the same run, interleaved. Prints requests/s, p50 and p99; exits 1 when the admission
p99 is above 20 ms.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from gate_api import (
    GATE_PATH,
    PYTHON,
    ROOT,
    _env,
    _merge,
    _recreate_database,
    _serve,
    _wait_until_serving,
)

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/rg_bench_admission"
ADMISSION_PATH = "/api/v1/admission/production"
P99_TARGET_MS = 20.0

SEED = r"""
import django
django.setup()
from django.contrib.auth import get_user_model
from releasegate.accounts.actors import Actor
from releasegate.accounts.tokens import token_create
from releasegate.checks.services import check_result_record
from releasegate.releases.services import (
    approval_give, evidence_attach, project_create, release_create, release_promote,
    release_submit, role_grant,
)
from tests.builders import DEFAULT_CHECKS, EVIDENCE, digest_of, document

system = Actor.system_actor()
User = get_user_model()
project = project_create(slug="bench-assistant", name="Bench assistant", actor=system)
people = {}
for name in ("requester", "security", "sme", "admin"):
    people[name] = User.objects.create_user(name, password=None)
    role_grant(project=project, user=people[name], role=name, actor=system)
as_ = {name: Actor.for_user(user) for name, user in people.items()}
digests = []
for version in ("2.0.0", "2.0.0-sidecar", "2.0.0-proxy", "2.0.0-metrics", "2.0.0-init"):
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
    approval_give(release=release, actor=as_["security"], role="security")
    approval_give(release=release, actor=as_["sme"], role="sme")
    release_promote(release=release, actor=as_["requester"])
    digests.append(release.artifact_digest)
_, gate = token_create(actor=as_["admin"], kind="service", name="gate", project=project,
                       scopes=["gate:read"])
_, admission = token_create(actor=as_["admin"], kind="service", name="cluster", project=project,
                            scopes=["admission:review"])
print(" ".join(digests))
print(gate)
print(admission)
"""


def pod_review(digests: list[str]) -> bytes:
    containers = [
        {"name": f"c{i}", "image": f"registry.example.com/bench/part{i}@{digest}"}
        for i, digest in enumerate(digests)
    ]
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "bench",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:ci:deployer"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "bench", "namespace": "bench"},
                "spec": {"containers": containers},
            },
            "dryRun": False,
        },
    }
    return json.dumps(review).encode()


def _load(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    seconds: float,
    concurrency: int,
) -> dict[str, float]:
    """Keep `concurrency` keep-alive clients busy for `seconds`; every answer must be a 200 (and
    an allowed review, for the admission endpoint)."""
    stop = time.monotonic() + seconds
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: list[str] = []

    def client(mine: list[float]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                content = response.read()
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                failures.append(repr(error))
                continue
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                failures.append(f"status {response.status}")
            elif body is not None and not json.loads(content)["response"]["allowed"]:
                failures.append(f"denied: {content[:200]!r}")
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="per endpoint and round (max 60)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (max 32)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (max 5)")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 1.0), 60.0)
    concurrency = min(max(args.concurrency, 1), 32)
    rounds = min(max(args.rounds, 1), 5)

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    env = _env(database_url)
    _recreate_database(database_url)
    server = None
    metrics_dir = ""
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run(
            [PYTHON, "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        digests_line, gate_token, admission_token = seeded.stdout.strip().splitlines()[-3:]
        review = pod_review(digests_line.split())
        # releasegate as deployed: its gunicorn configuration, 2 workers (WEB_CONCURRENCY).
        metrics_dir = tempfile.mkdtemp(prefix="rg-bench-metrics-")
        server, port = _serve(
            "releasegate.wsgi:application", {**env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        )
        gate_headers = {"Authorization": f"Bearer {gate_token}"}
        _wait_until_serving(port, GATE_PATH, gate_headers, time.monotonic() + 60)
        gate = ("GET", GATE_PATH, gate_headers, None)
        admission = (
            "POST",
            ADMISSION_PATH,
            {"Authorization": f"Bearer {admission_token}", "Content-Type": "application/json"},
            review,
        )
        _load(port, *gate, 1.5, concurrency)  # warm both workers and both paths
        _load(port, *admission, 1.5, concurrency)
        gate_runs, admission_runs = [], []
        for _ in range(rounds):
            gate_runs.append(_load(port, *gate, seconds, concurrency))
            admission_runs.append(_load(port, *admission, seconds, concurrency))
        gate_result, admission_result = _merge(gate_runs), _merge(admission_runs)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        _recreate_database(database_url, drop_only=True)
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    print(
        f"gunicorn (releasegate's configuration, 2 workers), DEBUG off, PostgreSQL; "
        f"{concurrency} clients, {rounds} x {seconds:.0f}s per endpoint, interleaved"
    )
    print(f"{'endpoint':<52} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, result in (
        ("GET /api/v1/gate (one release)", gate_result),
        ("POST /api/v1/admission/production (pod, 5 images)", admission_result),
    ):
        print(
            f"{name:<52} {result['requests']:>9.0f} {result['rps']:>8.1f} "
            f"{result['p50']:>8.2f} {result['p99']:>8.2f}"
        )
    print(f"admission p99 {admission_result['p99']:.2f} ms (target <= {P99_TARGET_MS:.0f} ms)")
    return 0 if admission_result["p99"] <= P99_TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
