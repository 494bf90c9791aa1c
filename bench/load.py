"""Load harness: concurrent API clients doing the whole story against gunicorn, with real Celery
workers on Redis computing the checks, on PostgreSQL, for a bounded time.

    .venv/bin/python bench/load.py [--clients 16] [--projects 4] [--seconds 60]
    .venv/bin/python bench/load.py --compare [--clients 16] [--seconds 25]

Each client (a thread with its own keep-alive connection) loops over one story on a project of
its own (client i works on project i mod P): create a release, attach the five evidence items,
submit, approve as security and SME, then one of: veto (carried forward; with --compare, this
release only) and lift it, then poll the gate and promote; poll the gate and promote; or race a
promotion against a veto (two requests released at once). The web server is gunicorn
(4 processes x 4 threads), the worker `celery worker` (2 processes), and `celery beat` runs the
sweeps, as deployed.

It prints writes/s (2xx answers to POST and PUT), p50/p99 per endpoint, the 5xx count, deadlocks
(`pg_stat_database.deadlocks` before and after), how long the checks take to settle once the
load stops, the worker's checks/s, promotions made while a veto blocked them (from the database)
and whether `verify_audit` passes. `--compare` runs the same load over 50 projects, then over
1, and prints the ratio of their write throughputs.

It uses a database of its own, rg_load_bench (recreated), and Redis database 14
(LOAD_REDIS_URL); the test in tests/load/ calls `run` against the test database instead.
"""

import argparse
import io
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DB_NAME = "rg_load_bench"
BROKER = os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/14")
API = "/api/v1"
WRITE_METHODS = frozenset({"POST", "PUT"})


@dataclass(frozen=True)
class Config:
    clients: int = 16
    projects: int = 4
    seconds: float = 60.0
    web_workers: int = 4
    web_threads: int = 4
    worker_concurrency: int = 2
    sweep_seconds: int = 10
    settle_timeout: float = 60.0
    # How long a client polls the gate for its checks before promoting anyway (and meeting 409).
    poll_timeout: float = 20.0
    # The veto-and-lift story's veto scope; --compare vetoes one release only, so that clients of
    # one project do not block each other's releases (stories of the same length either way).
    veto_scope: str = "carry_forward"
    seed: int = 7


@dataclass(frozen=True)
class Team:
    slug: str
    tokens: dict[str, str]  # role -> bearer token of that project's person


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    writes: int = 0
    server_errors: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    stories: int = 0
    promoted: int = 0
    races: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def record(self, endpoint: str, method: str, status: int, seconds: float, body: str) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            self.codes[status] += 1
            if method in WRITE_METHODS and 200 <= status < 300:
                self.writes += 1
            if status >= 500:
                self.server_errors.append(f"{status} {endpoint}: {' '.join(body.split())[:200]}")


class Client:
    """One API client: a keep-alive connection, timing every request under its endpoint name."""

    def __init__(self, base: str, stats: Stats) -> None:
        import httpx

        self.http = httpx.Client(base_url=base, timeout=60.0)
        self.stats = stats

    def call(
        self, endpoint: str, method: str, path: str, token: str, body: Any = None
    ) -> tuple[int, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        try:
            response = self.http.request(method, API + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            with self.stats.lock:
                self.stats.transport_errors.append(f"{endpoint}: {type(exc).__name__}: {exc}")
            return 0, None
        took = time.perf_counter() - started
        self.stats.record(endpoint, method, response.status_code, took, response.text)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    def close(self) -> None:
        self.http.close()


def _create_release(c: Client, team: Team, version: str) -> int | None:
    status, body = c.call(
        "POST /releases",
        "POST",
        "/releases",
        team.tokens["requester"],
        {
            "project": team.slug,
            "version": version,
            "artifact_digest": "sha256:" + secrets.token_hex(32),
            "environment": "production",
            "summary": "load harness",
        },
    )
    return body["id"] if status == 201 else None


def _prepare(c: Client, team: Team, release_id: int) -> bool:
    from tests.builders import EVIDENCE

    requester = team.tokens["requester"]
    for kind, document in EVIDENCE.items():
        status, _ = c.call(
            "PUT /evidence", "PUT", f"/releases/{release_id}/evidence/{kind}", requester, document
        )
        if status != 200:
            return False
    status, _ = c.call("POST /submit", "POST", f"/releases/{release_id}/submit", requester)
    if status != 200:
        return False
    for role in ("security", "sme"):
        status, _ = c.call(
            "POST /signoffs",
            "POST",
            f"/releases/{release_id}/signoffs",
            team.tokens[role],
            {"role": role, "decision": "approve"},
        )
        if status != 201:
            return False
    return True


def _veto(c: Client, team: Team, release_id: int, scope: str) -> tuple[int, Any]:
    return c.call(
        "POST /signoffs (veto)",
        "POST",
        f"/releases/{release_id}/signoffs",
        team.tokens["security"],
        {"role": "security", "decision": "veto", "reason": "load harness veto", "scope": scope},
    )


def _poll_until_settled(c: Client, team: Team, release_id: int, deadline: float) -> bool:
    """Poll the gate until no check is pending; whether it is cleared then."""
    while True:
        status, body = c.call(
            "GET /gate", "GET", f"/releases/{release_id}/gate", team.tokens["requester"]
        )
        if status != 200:
            return False
        if body["cleared"]:
            return True
        codes = {b["code"] for b in body["blockers"]}
        if codes - {"check_pending"} or time.monotonic() > deadline:
            return False
        time.sleep(0.25)


def _promote(c: Client, team: Team, release_id: int) -> int:
    status, _ = c.call(
        "POST /promote", "POST", f"/releases/{release_id}/promote", team.tokens["requester"]
    )
    return status


def _race(base: str, stats: Stats, c: Client, team: Team, release_id: int) -> None:
    """A promotion and a veto sent at the same instant, on two connections."""
    other = Client(base, stats)
    start = threading.Barrier(2)
    results: dict[str, int] = {}

    def promote() -> None:
        start.wait()
        results["promote"] = _promote(c, team, release_id)

    def veto() -> None:
        start.wait()
        results["veto"] = _veto(other, team, release_id, "release")[0]

    threads = [threading.Thread(target=promote), threading.Thread(target=veto)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    outcome = "promoted first" if results.get("promote") == 200 else "veto first"
    with stats.lock:
        stats.races[outcome] += 1
        stats.promoted += results.get("promote") == 200


def client_loop(
    index: int, base: str, teams: list[Team], stop_at: float, stats: Stats, config: Config
) -> None:
    rng = random.Random(config.seed * 1000 + index)
    team = teams[index % len(teams)]
    c = Client(base, stats)
    tag = uuid.uuid4().hex[:6]
    n = 0
    try:
        while time.monotonic() < stop_at:
            n += 1
            release_id = _create_release(c, team, f"1.{index}.{n}-{tag}")
            if release_id is None or not _prepare(c, team, release_id):
                continue
            kind = rng.randrange(4)
            if kind == 0:
                status, veto = _veto(c, team, release_id, config.veto_scope)
                if status == 201:
                    c.call(
                        "POST /lift",
                        "POST",
                        f"/releases/{release_id}/vetoes/{veto['id']}/lift",
                        team.tokens["security"],
                        {"reason": "fixed"},
                    )
            deadline = min(time.monotonic() + config.poll_timeout, stop_at + 5)
            cleared = _poll_until_settled(c, team, release_id, deadline)
            if kind == 1 and cleared:
                _race(base, stats, c, team, release_id)
            else:
                promoted = _promote(c, team, release_id) == 200
                with stats.lock:
                    stats.promoted += promoted
            with stats.lock:
                stats.stories += 1
    finally:
        c.close()


# Setup, processes, measurements --------------------------------------------------------------


def make_teams(count: int, prefix: str) -> list[Team]:
    """Projects with a requester, a security lead and an SME each, and a personal token each."""
    from django.contrib.auth import get_user_model

    from releasegate.accounts.actors import Actor
    from releasegate.accounts.tokens import token_create
    from releasegate.checks.advisories import advisories_import
    from releasegate.checks.models import Advisory
    from releasegate.releases.demo import DEMO_ADVISORIES
    from releasegate.releases.services import project_create, role_grant

    if not Advisory.objects.exists():
        advisories_import(path=DEMO_ADVISORIES)
    system = Actor.system_actor()
    User = get_user_model()
    teams = []
    for i in range(count):
        slug = f"{prefix}-{i}"
        project = project_create(slug=slug, name=f"Load {prefix} {i}", actor=system)
        tokens = {}
        for role in ("requester", "security", "sme"):
            user = User.objects.create_user(f"{slug}-{role}")
            role_grant(project=project, user=user, role=role, actor=system)
            _, raw = token_create(actor=system, kind="personal", name="load", user=user)
            tokens[role] = raw
        teams.append(Team(slug=slug, tokens=tokens))
    return teams


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _worker_answers(broker: str) -> bool:
    """Ping the workers on `broker` with an app of its own: Celery prefers CELERY_BROKER_URL from
    the environment to any broker it is given, so that is set for the while."""
    from celery import Celery

    previous = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = broker
    try:
        # Not the current app: shared tasks of this process would publish through it.
        pinger = Celery("releasegate-load", broker=broker, set_as_current=False)
        try:
            return bool(pinger.control.ping(timeout=0.5))
        finally:
            pinger.close()
    finally:
        if previous is None:
            del os.environ["CELERY_BROKER_URL"]
        else:
            os.environ["CELERY_BROKER_URL"] = previous


@contextmanager
def services(config: Config, database_url: str, broker: str, logs: Path) -> Iterator[str]:
    """gunicorn, a Celery worker and celery beat against `database_url` and `broker`; yields the
    web server's base URL. Their output goes to files in `logs`."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker,
        "RELEASEGATE_SWEEP_SECONDS": str(config.sweep_seconds),
        # One JSON line per request and per task would cost the 2 cores more than some acts.
        "LOG_LEVEL": "WARNING",
    }
    port = free_port()
    commands = {
        "web": [
            str(BIN / "gunicorn"),
            "releasegate.wsgi",
            f"--workers={config.web_workers}",
            f"--threads={config.web_threads}",
            f"--bind=127.0.0.1:{port}",
            "--keep-alive=30",
        ],
        "worker": [
            str(BIN / "celery"),
            "-A",
            "releasegate",
            "worker",
            f"--concurrency={config.worker_concurrency}",
            "--without-gossip",
            "--without-mingle",
            "-n",
            f"load-{uuid.uuid4().hex[:6]}@%h",
        ],
        "beat": [
            str(BIN / "celery"),
            "-A",
            "releasegate",
            "beat",
            f"--schedule={logs / 'beat-schedule'}",
        ],
    }
    procs = []
    try:
        for name, command in commands.items():
            with open(logs / f"{name}.log", "wb") as out:
                procs.append(
                    subprocess.Popen(
                        command,
                        cwd=ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        base = f"http://127.0.0.1:{port}"
        _wait("gunicorn", lambda: _answers(base + "/healthz"), 60)
        _wait("the worker", lambda: _worker_answers(broker), 60)
        yield base
    except RuntimeError as exc:
        tails = {p.name: p.read_text(errors="replace")[-2000:] for p in logs.glob("*.log")}
        raise RuntimeError(f"{exc}; the processes' logs end with {tails}") from None
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def deadlocks() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        # Statistics are flushed by each backend at most once a second; read a fresh snapshot.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def unsettled_checks() -> int:
    """Required checks of releases in review with no final result on their current evidence."""
    from releasegate.checks.models import CheckResult
    from releasegate.releases.models import Release

    final = {"passed", "failed", "error"}
    releases = Release.objects.filter(state=Release.State.IN_REVIEW).select_related(
        "project__current_policy"
    )
    done = set(
        CheckResult.objects.filter(
            release__state=Release.State.IN_REVIEW, status__in=final
        ).values_list("release_id", "check_name", "manifest_digest")
    )
    return sum(
        (r.pk, check, r.manifest_digest) not in done
        for r in releases
        for check in (r.project.current_policy.required_checks if r.project.current_policy else ())
    )


def promotions_past_a_veto() -> int:
    """Promotions made while a veto blocked the release: cast on it, or carried forward to it
    (same project and environment from an earlier release, or the same artifact), before the
    promotion and not lifted by then."""
    from django.db.models import Exists, OuterRef, Q

    from releasegate.releases.models import Promotion, Veto

    at = OuterRef("promoted_at")
    blocking = Veto.objects.filter(
        Q(lifted_at__isnull=True) | Q(lifted_at__gt=at),
        Q(release_id=OuterRef("release_id"))
        | Q(scope=Veto.Scope.CARRY_FORWARD)
        & (
            Q(
                project_id=OuterRef("release__project_id"),
                environment=OuterRef("release__environment"),
                release_id__lt=OuterRef("release_id"),
            )
            | Q(artifact_digest=OuterRef("release__artifact_digest"))
        ),
        created_at__lt=at,
    )
    return Promotion.objects.filter(Exists(blocking)).count()


def audit_verdict() -> tuple[bool, str]:
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command("verify_audit", stdout=out)
    except CommandError as exc:
        return False, str(exc)
    return True, out.getvalue().strip()


def worker_rate(since: Any) -> tuple[int, float]:
    """Check results the workers recorded since `since`, and their rate from first to last."""
    from django.db.models import Count, Max, Min

    from releasegate.checks.models import CheckResult

    row = CheckResult.objects.filter(
        source=CheckResult.Source.WORKER,
        status__in=["passed", "failed", "error"],
        updated_at__gte=since,
    ).aggregate(n=Count("id"), first=Min("updated_at"), last=Max("updated_at"))
    if not row["n"] or row["first"] == row["last"]:
        return row["n"] or 0, 0.0
    return row["n"], row["n"] / (row["last"] - row["first"]).total_seconds()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run(config: Config, *, database_url: str, broker: str, prefix: str = "load") -> dict[str, Any]:
    """Set up the projects, start the processes, load them for `config.seconds`, measure."""
    import redis
    from django.utils import timezone

    redis.Redis.from_url(broker).flushdb()
    teams = make_teams(config.projects, prefix)
    stats = Stats()
    with tempfile.TemporaryDirectory(prefix="releasegate-load-") as tmp:
        with services(config, database_url, broker, Path(tmp)) as base:
            deadlocks_before = deadlocks()
            began_at = timezone.now()
            started = time.monotonic()
            stop_at = started + config.seconds
            clients = [
                threading.Thread(target=client_loop, args=(i, base, teams, stop_at, stats, config))
                for i in range(config.clients)
            ]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
            loaded = time.monotonic() - started
            stopped = time.monotonic()
            settle: float | None = None
            while time.monotonic() - stopped < config.settle_timeout:
                if unsettled_checks() == 0:
                    settle = time.monotonic() - stopped
                    break
                time.sleep(0.25)
            left = unsettled_checks()
            checks, rate = worker_rate(began_at)
            time.sleep(1.1)  # let the servers' statistics reach pg_stat_database
            new_deadlocks = deadlocks() - deadlocks_before
        intact, audit = audit_verdict()
    endpoints = {
        name: {
            "count": len(values),
            "p50_ms": round(1000 * percentile(values, 0.5), 1),
            "p99_ms": round(1000 * percentile(values, 0.99), 1),
        }
        for name, values in sorted(stats.latencies.items())
    }
    return {
        "config": config.__dict__,
        "seconds": round(loaded, 1),
        "stories": stats.stories,
        "requests": sum(stats.codes.values()),
        "writes": stats.writes,
        "writes_per_s": round(stats.writes / loaded, 1),
        "codes": dict(sorted(stats.codes.items())),
        "server_errors": len(stats.server_errors),
        "server_error_samples": stats.server_errors[:10],
        "transport_errors": stats.transport_errors[:10],
        "endpoints": endpoints,
        "deadlocks": new_deadlocks,
        "settled_after_s": None if settle is None else round(settle, 1),
        "unsettled_checks": left,
        "worker_checks": checks,
        "worker_checks_per_s": round(rate, 1),
        "promoted": stats.promoted,
        "races": dict(stats.races),
        "promotions_past_a_veto": promotions_past_a_veto(),
        "audit_intact": intact,
        "audit": audit,
    }


def print_report(report: dict[str, Any]) -> None:
    c = report["config"]
    print(
        f"{c['clients']} clients over {c['projects']} projects for {report['seconds']} s; "
        f"gunicorn {c['web_workers']}x{c['web_threads']}, worker concurrency "
        f"{c['worker_concurrency']}, sweep every {c['sweep_seconds']} s"
    )
    print(
        f"  stories {report['stories']}, requests {report['requests']}, answers {report['codes']}"
    )
    print(f"  writes: {report['writes']} = {report['writes_per_s']} writes/s")
    print(f"  {'endpoint':<24} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for name, e in report["endpoints"].items():
        print(f"  {name:<24} {e['count']:>6} {e['p50_ms']:>8} {e['p99_ms']:>8}")
    print(f"  5xx: {report['server_errors']}")
    for sample in report["server_error_samples"]:
        print(f"    {sample}")
    if report["transport_errors"]:
        print(f"  transport errors: {report['transport_errors']}")
    print(f"  deadlocks (pg_stat_database): {report['deadlocks']}")
    settled = report["settled_after_s"]
    print(
        "  checks settled "
        + (f"{settled} s after the load stopped" if settled is not None else "NOT within limit")
        + f" ({report['unsettled_checks']} left)"
    )
    print(f"  worker: {report['worker_checks']} checks at {report['worker_checks_per_s']} checks/s")
    print(f"  promoted: {report['promoted']}; races: {report['races']}")
    print(f"  promotions past a veto (database): {report['promotions_past_a_veto']}")
    print(f"  verify_audit: {'intact' if report['audit_intact'] else 'BROKEN'}: {report['audit']}")


def _recreate_database() -> str:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB_NAME}")
    return f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


def _production_like_environment() -> None:
    """DEBUG off, as deployed (bench/deployed.py), with a static root and the broker."""
    from bench.deployed import production_environment

    os.environ.update(
        {
            **production_environment(),
            "STATIC_ROOT": tempfile.mkdtemp(prefix="releasegate-load-static-"),
            "CELERY_BROKER_URL": BROKER,
        }
    )


def _fresh_database() -> str:
    """Every run on a new database, so a second run does not meet the first one's rows."""
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    database_url = _recreate_database()
    call_command("migrate", verbosity=0)
    return database_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--projects", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--compare", action="store_true", help="50 projects versus 1")
    parser.add_argument("--json", action="store_true", help="also print each report as JSON")
    args = parser.parse_args()
    if args.seconds > 60:
        parser.error("--seconds: at most 60 (the machine is shared)")
    sys.path.insert(0, str(ROOT))
    _production_like_environment()
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
    import django

    django.setup()
    runs = [50, 1] if args.compare else [args.projects]
    reports = []
    for number, projects in enumerate(runs):
        config = Config(
            clients=args.clients,
            projects=projects,
            seconds=args.seconds,
            veto_scope="release" if args.compare else "carry_forward",
        )
        database_url = _fresh_database()
        report = run(config, database_url=database_url, broker=BROKER, prefix=f"p{number}")
        print_report(report)
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        reports.append(report)
        print()
    if args.compare:
        many, one = reports
        ratio = many["writes_per_s"] / one["writes_per_s"] if one["writes_per_s"] else 0.0
        print(
            f"write throughput: 50 projects {many['writes_per_s']}/s, 1 project "
            f"{one['writes_per_s']}/s: ratio {ratio:.2f} (target >= 0.9)"
        )


if __name__ == "__main__":
    main()
