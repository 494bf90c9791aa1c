"""Benchmark: the gate API beside two bare apps, in the same run, under the same gunicorn.

    .venv/bin/python bench/gate_api.py [--seconds 10] [--connections 16] [--rounds 2]

Three apps, each served by gunicorn with releasegate's production configuration
(`releasegate.ops.gunicorn_conf`, 2 sync workers, DEBUG off) on loopback:

- releasegate, `GET /api/v1/gate?project=…&version=…&environment=production` with a service
  token, on a scratch PostgreSQL database (BENCH_DATABASE_URL, default
  postgres://postgres@127.0.0.1:5432/rg_bench_gate) seeded with a release with full facts (five
  evidence items, seven passed checks, two approvals, a lifted veto, earlier releases);
- the floor: a bare Django + DRF app of its own (bench/bare_settings.py: no middleware, no
  authentication, no database) answering a constant body;
- the one-read floor: the same bare app reading PostgreSQL once per request (`SELECT 1` on a kept
  connection).

They are loaded one after the other, alternating, with wrk (Debian's package, installed when
missing and running as root) at 2 threads and --connections keep-alive connections. Prints
requests/s, p50 and p99 for each, the CPU each request cost its gunicorn workers and PostgreSQL
(read from /proc: PostgreSQL on this machine), and the gate's ratios to both floors.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from deployed import production_environment

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/rg_bench_gate"
GATE_PATH = "/api/v1/gate?project=bench-assistant&version=2.0.0&environment=production"


# -- setting up ------------------------------------------------------------------------------------


def _env(database_url: str) -> dict[str, str]:
    env = {**os.environ, **production_environment()}
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL="memory://",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(BENCH)]),
        WEB_CONCURRENCY="2",
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


def _serve(app: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(PYTHON).with_name("gunicorn")),
            app,
            "--config",
            "python:releasegate.ops.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, port


def _wait_until_serving(port: int, path: str, headers: dict[str, str], deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server on port {port} did not answer {path} in time")


def _wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
        )
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    return found


# -- measuring -------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _stat(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _cpu(server: int, database: str) -> dict[str, float]:
    """CPU seconds so far of a gunicorn server's workers (the live ones, and those it reaped)
    and of the PostgreSQL backends connected to `database` on this machine."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {"web": 0.0, "postgres": 0.0}
    master = _stat(server)
    if master is not None:  # children's time: workers recycled and reaped
        found["web"] += (int(master[13]) + int(master[14])) / tick
    for pid in filter(str.isdigit, os.listdir("/proc")):
        stat = _stat(pid)
        if stat is None:
            continue
        seconds = (int(stat[11]) + int(stat[12])) / tick
        if int(stat[1]) == server:
            found["web"] += seconds
            continue
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            found[f"postgres:{pid}"] = seconds
    return found


def _cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    used = {"web": after["web"] - before["web"], "postgres": 0.0}
    for key, seconds in after.items():
        if key.startswith("postgres:"):
            used["postgres"] += seconds - before.get(key, 0.0)
    return used


def _load(
    wrk: str,
    port: int,
    path: str,
    headers: dict[str, str],
    seconds: float,
    connections: int,
    cpu: Callable[[], dict[str, float]] | None = None,
) -> dict[str, float]:
    """wrk for `seconds`; every answer must be a 2xx (wrk counts the others). With `cpu`, also
    the CPU microseconds per request of the server's workers and of PostgreSQL."""
    command = [wrk, "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    before = cpu() if cpu else None
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    used = _cpu_used(before, cpu()) if cpu and before else {"web": 0.0, "postgres": 0.0}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise SystemExit(f"{path}: failed requests:\n{out}")
    requests = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "requests": requests,
        "web_us": used["web"] / requests * 1e6,
        "postgres_us": used["postgres"] / requests * 1e6,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
    }


def _merge(runs: list[dict[str, float]]) -> dict[str, float]:
    requests = sum(r["requests"] for r in runs)
    return {
        "requests": requests,
        # CPU per request, where the runs measured it (admission.py's do not).
        "web_us": sum(r.get("web_us", 0.0) * r["requests"] for r in runs) / requests,
        "postgres_us": sum(r.get("postgres_us", 0.0) * r["requests"] for r in runs) / requests,
        "rps": sum(r["rps"] for r in runs) / len(runs),
        "p50": sum(r["p50"] for r in runs) / len(runs),
        "p99": max(r["p99"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per app and round (max 60)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (max 64)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (max 5)")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 1.0), 60.0)
    connections = min(max(args.connections, 1), 64)
    rounds = min(max(args.rounds, 1), 5)
    wrk = _wrk()

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    env = _env(database_url)
    metrics_dir = tempfile.mkdtemp(prefix="releasegate-bench-metrics-")
    _recreate_database(database_url)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        seeded = subprocess.run(
            [PYTHON, "-c", SEED], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        )
        token = seeded.stdout.strip().splitlines()[-1]
        gate_headers = {"Authorization": f"Bearer {token}"}
        bare_env = {**env, "DJANGO_SETTINGS_MODULE": "bare_settings"}
        apps: dict[str, tuple[str, dict[str, str], str, dict[str, str]]] = {
            "bare DRF app (no database)": ("bare_wsgi:application", bare_env, "/bare", {}),
            "bare DRF app + SELECT 1 (one read)": (
                "bare_wsgi:application",
                {**bare_env, "BARE_DATABASE_URL": database_url},
                "/one-read",
                {},
            ),
            "releasegate GET /api/v1/gate": (
                "releasegate.wsgi:application",
                {**env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir},
                GATE_PATH,
                gate_headers,
            ),
        }
        ports: dict[str, int] = {}
        cpus: dict[str, Callable[[], dict[str, float]]] = {}
        database = urlparse(database_url).path.lstrip("/")
        for name, (app, app_env, _, _) in apps.items():
            server, ports[name] = _serve(app, app_env)
            servers.append(server)
            cpus[name] = lambda pid=server.pid: _cpu(pid, database)
        for name, (_, _, path, headers) in apps.items():
            _wait_until_serving(ports[name], path, headers, time.monotonic() + 60)
            _load(wrk, ports[name], path, headers, 2, connections)  # warm every worker
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in apps}
        for _ in range(rounds):
            for name, (_, _, path, headers) in apps.items():
                found = _load(wrk, ports[name], path, headers, seconds, connections, cpus[name])
                runs[name].append(found)
        results = {name: _merge(found) for name, found in runs.items()}
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        _recreate_database(database_url, drop_only=True)
        shutil.rmtree(metrics_dir, ignore_errors=True)

    print(
        "gunicorn (releasegate.ops.gunicorn_conf) 2 sync workers each, DEBUG off, PostgreSQL; "
        f"wrk -t2 -c{connections}, {rounds} x {seconds:.0f}s per app, alternating"
    )
    print(
        f"{'app':<40} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'web CPU µs':>11} {'PG CPU µs':>10}"
    )
    for name, result in results.items():
        print(
            f"{name:<40} {result['requests']:>9.0f} {result['rps']:>8.1f} "
            f"{result['p50']:>8.2f} {result['p99']:>8.2f}"
            f" {result['web_us']:>11.0f} {result['postgres_us']:>10.0f}"
        )
    print("(CPU µs: per request, of the server's gunicorn workers and of PostgreSQL's backends)")
    names = list(results)
    gate, bare, one_read = results[names[2]], results[names[0]], results[names[1]]
    print(f"gate / bare floor:     {gate['rps'] / bare['rps']:.2f}")
    print(f"gate / one-read floor: {gate['rps'] / one_read['rps']:.2f} (target >= 0.75, goal 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
